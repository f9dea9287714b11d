/**
 * The nflog listener in the lab (issue 12): the real `tknock-server run` with `listener: "nflog"` installs a
 * `log group N` rule for the knock range in its gate and reads that NFLOG group with `tcpdump -i nflog:N`. A
 * userspace NFLOG group is per network namespace and needs no net.netfilter.nf_log_all_netns (that sysctl only
 * concerns the kernel-log backend), so unlike the log listener's suite this one changes nothing on the host.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { type ChildProcess } from "node:child_process";
import { afterAll, beforeAll, expect, it } from "vitest";
import { buildFloodSender, startFlood } from "../../bench/flood-sender.js";
import { sleep, TknockLab } from "../../lab/tknock-lab.js";
import { describeAsRoot } from "../support/root.js";

const RANGE = { min: 40000, max: 44999 };
const GROUP = 17;

describeAsRoot("end to end: the nflog listener", () => {
  let t: TknockLab;
  let service: ChildProcess | undefined;

  beforeAll(async () => {
    buildFloodSender();
    t = await TknockLab.create({ openSeconds: 5, extraConfig: { knockRange: RANGE } });
    const config = JSON.parse(readFileSync(t.configPath, "utf8")) as Record<string, unknown>;
    writeFileSync(t.configPath, JSON.stringify({ ...config, listener: "nflog", nflogGroup: GROUP }, null, 2));
    service = t.startService(t.protectPort);
    await t.enrollClient("alice");
    await t.startDaemon();
  }, 120_000);

  afterAll(async () => {
    service?.kill();
    await t?.destroy();
  });

  it("when the client knocks then the port opens for the client only; a replay from another host is refused and recorded", async () => {
    const seq = JSON.parse(await t.serverOk(["sequence", "alice", "--json"])) as { ports: number[] };
    await t.sendSyns("client", seq.ports);
    await t.waitForLog((l) => l.msg === "opened" && l["client"] === "alice", 5000);
    const probe = await t.probe("client", t.protectPort);
    expect(probe.state).toBe("open");
    expect(probe.data).toContain("hello from the protected service");
    expect((await t.probe("other", t.protectPort)).state).toBe("filtered");

    await t.sendSyns("other", seq.ports);
    const deadline = Date.now() + 5000;
    let replays: unknown[] = [];
    while (Date.now() < deadline && replays.length === 0) {
      replays = (await t.replays()).filter((r) => r.kind === "replay" && r.source === t.lab.host("other").ipv4);
      if (replays.length === 0) await sleep(200);
    }
    expect(replays.length).toBe(1);
    expect((await t.probe("other", t.protectPort)).state).toBe("filtered");
  }, 60_000);

  it("when a third host sweeps the whole knock range in ascending order then nothing opens and it is recorded as brute force", async () => {
    const third = t.lab.host("other");
    const mark = t.logCount;
    const span = RANGE.max - RANGE.min + 1;
    const report = await startFlood(t.lab, "other", {
      dst: t.serverAddr,
      rate: 20_000,
      maxPackets: span,
      maxSeconds: 30,
      portRange: RANGE,
      ascending: true,
      sources: "fixed4",
      source: third.ipv4,
    }).done;
    expect(report.sent).toBe(span);
    await t.waitForLog((l) => l.msg === "brute force: many failed sequences from one source" && l["src"] === third.ipv4, 5000, mark);
    await sleep(500);
    expect(t.logsSince(mark).filter((l) => l.msg === "opened")).toEqual([]);
    expect((await t.probe("other", t.protectPort)).state).toBe("filtered");
  }, 60_000);

  it("when the daemon runs then its gate logs the knock range to the NFLOG group and tcpdump reads nflog:N", async () => {
    const table = await t.lab.exec("server", ["nft", "list", "table", "inet", "tknock"]);
    expect(table.stdout).toContain(`th dport ${RANGE.min}-${RANGE.max} log group ${GROUP} snaplen 128 queue-threshold 1`);
  });
});
