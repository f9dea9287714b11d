/**
 * The nflog listener with the kernel prefilter (issue 12, config `prefilter`, on by default): the gate logs to the
 * NFLOG group the first ports of the current windows' sequences (set `starts`) from any source, and their later
 * ports and the random tripwires (set `watch`) only from sources that sent a first port lately, so a sweep reaches
 * the daemon as tripwire hits, which the matcher counts as wrong knocks.
 */
import { type ChildProcess } from "node:child_process";
import { afterAll, beforeAll, expect, it } from "vitest";
import { buildFloodSender } from "../../bench/flood-sender.js";
import { TknockLab } from "../../lab/tknock-lab.js";
import { ascendingSweepOpensNothing, knockOpensForItsSourceOnlyAndReplayIsRefused, startWithListener } from "./listener-scenarios.js";
import { describeAsRoot } from "../support/root.js";

const RANGE = { min: 40000, max: 44999 };
const GROUP = 18;

describeAsRoot("end to end: the nflog listener with the kernel prefilter", () => {
  let t: TknockLab;
  let service: ChildProcess | undefined;

  beforeAll(async () => {
    buildFloodSender();
    t = await TknockLab.create({ openSeconds: 5, extraConfig: { knockRange: RANGE } });
    service = await startWithListener(t, { listener: "nflog", nflogGroup: GROUP, prefilter: true });
  }, 120_000);

  afterAll(async () => {
    service?.kill();
    await t?.destroy();
  });

  const setElements = async <T>(name: string): Promise<T[]> => {
    const r = await t.lab.exec("server", ["nft", "-j", "list", "set", "inet", "tknock", name]);
    if (r.code !== 0) throw new Error(`nft list set ${name}: ${r.stderr}`);
    const doc = JSON.parse(r.stdout) as { nftables: { set?: { elem?: unknown[] } }[] };
    // Elements of a set with timeouts come as { elem: { val, expires } }.
    return (doc.nftables.find((i) => i.set)?.set?.elem ?? []).map((e) =>
      typeof e === "object" && e !== null && "elem" in e ? (e.elem as { val: T }).val : (e as T),
    );
  };

  it("when the daemon runs then its gate logs first ports from anyone in batches and the other watched ports at once only from active sources, and the sets hold ports of the range", async () => {
    const table = await t.lab.exec("server", ["nft", "list", "table", "inet", "tknock"]);
    const log = `log group ${GROUP} snaplen 128 queue-threshold 1`;
    expect(table.stdout).toContain(`th dport @starts th dport != @instant log group ${GROUP} snaplen 128 queue-threshold 64`);
    expect(table.stdout).toContain(`th dport @instant ${log}`);
    expect(table.stdout).toContain(`th dport @watch ip saddr @active4 update @active4 { ip saddr } ${log} drop`);
    expect(table.stdout).toContain(`th dport ${RANGE.min}-${RANGE.max} drop`);
    const starts = await setElements<number>("starts");
    const others = await setElements<number>("watch");
    expect(starts.length).toBeGreaterThanOrEqual(2); // the first ports of T-1, T, T+1
    expect(others.length).toBeGreaterThan(12);
    expect(starts.length + others.length).toBeLessThan((RANGE.max - RANGE.min + 1) / 4);
    expect([...starts, ...others].every((p) => p >= RANGE.min && p <= RANGE.max)).toBe(true);
    expect(others.some((p) => starts.includes(p))).toBe(false);
    const status = await t.server(["status"]);
    expect(status.stdout).toContain(`prefilter: on, ${starts.length} first ports and ${others.length} other ports watched`);
  });

  it("when the client knocks then the port opens for the client only; a replay from another host is refused and recorded", async () => {
    await knockOpensForItsSourceOnlyAndReplayIsRefused(t);
  }, 60_000);

  it("when a third host sweeps the whole knock range in ascending order then nothing opens and it is recorded as brute force", async () => {
    await ascendingSweepOpensNothing(t, RANGE);
    // The sweep touched first ports, so the kernel made it active and logged its other watched ports.
    expect(await setElements<string>("active4")).toContain(t.lab.host("other").ipv4);
  }, 60_000);
});
