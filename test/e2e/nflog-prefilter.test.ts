/**
 * The nflog listener with the kernel prefilter (issue 12, config `prefilter`, on by default): the gate logs to the
 * NFLOG group only the ports in its `watch` set (the sequences of the current windows plus random tripwires), so
 * a sweep reaches the daemon only as tripwire hits, which the matcher counts as wrong knocks.
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

  it("when the daemon runs then its gate logs only the ports of its watch set to the NFLOG group, and the set holds ports of the range", async () => {
    const table = await t.lab.exec("server", ["nft", "list", "table", "inet", "tknock"]);
    expect(table.stdout).toMatch(new RegExp(`th dport ${RANGE.min}-${RANGE.max} th dport @watch log group ${GROUP} snaplen 128 queue-threshold 1`));
    expect(table.stdout).toContain(`th dport ${RANGE.min}-${RANGE.max} drop`);
    const set = await t.lab.exec("server", ["nft", "-j", "list", "set", "inet", "tknock", "watch"]);
    const doc = JSON.parse(set.stdout) as { nftables: { set?: { elem?: number[] } }[] };
    const ports = doc.nftables.find((i) => i.set)?.set?.elem ?? [];
    expect(ports.length).toBeGreaterThan(12);
    expect(ports.length).toBeLessThan((RANGE.max - RANGE.min + 1) / 4);
    expect(ports.every((p) => p >= RANGE.min && p <= RANGE.max)).toBe(true);
  });

  it("when the client knocks then the port opens for the client only; a replay from another host is refused and recorded", async () => {
    await knockOpensForItsSourceOnlyAndReplayIsRefused(t);
  }, 60_000);

  it("when a third host sweeps the whole knock range in ascending order then nothing opens and it is recorded as brute force", async () => {
    await ascendingSweepOpensNothing(t, RANGE);
  }, 60_000);
});
