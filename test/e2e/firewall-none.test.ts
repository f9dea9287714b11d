/**
 * The log-only backend in the lab: the real daemon with `"firewall": "none"` says at start and in `status` that
 * nothing is protected, matches knocks (a knock is logged as "would open", its replay refused and recorded) and
 * changes nothing in the firewall.
 */
import type { ChildProcess } from "node:child_process";
import { afterAll, beforeAll, expect, it } from "vitest";
import { describeAsRoot } from "../support/root.js";
import { sleep, TknockLab } from "../../lab/tknock-lab.js";
import { startWithListener } from "./listener-scenarios.js";

describeAsRoot("none backend in the lab", () => {
  let t: TknockLab;
  let service: ChildProcess;
  let rulesetBefore: string;

  beforeAll(async () => {
    t = await TknockLab.create({ openSeconds: 3 });
    rulesetBefore = (await t.lab.exec("server", ["nft", "list", "ruleset"])).stdout;
    service = await startWithListener(t, { firewall: "none" });
  }, 60_000);

  afterAll(async () => {
    service?.kill();
    await t?.destroy();
  });

  it("when the daemon runs then its log and status say loudly that nothing is protected, and status exits unhealthy", async () => {
    await t.waitForLog((l) => l.level === 50 && String(l.msg).includes("NOTHING IS PROTECTED"), 1000);
    const status = await t.server(["status"]);
    expect(status.code).toBe(4);
    expect(status.stdout).toMatch(/! firewall "none" \(log only\): NOTHING IS PROTECTED/);
  });

  it("when the client knocks then it is logged as would open, nothing changes in the firewall, and the replay from another host is refused", async () => {
    const seq = JSON.parse(await t.serverOk(["sequence", "alice", "--json"])) as { ports: number[] };
    await t.sendSyns("client", seq.ports);
    await t.waitForLog((l) => l.msg === 'would open (firewall "none": nothing was opened)' && l["client"] === "alice", 5000);
    await t.waitForLog((l) => l.msg === "accepted (firewall none: nothing opened)" && l["client"] === "alice", 5000);
    expect(t.logsSince(0).some((l) => l.msg === "opened")).toBe(false);
    expect((await t.lab.exec("server", ["nft", "list", "ruleset"])).stdout).toBe(rulesetBefore);
    // Nothing is gated: the port answers every host, knock or not.
    expect((await t.probe("other", t.protectPort)).state).toBe("open");
    await t.sendSyns("other", seq.ports);
    const deadline = Date.now() + 5000;
    let replays: unknown[] = [];
    while (Date.now() < deadline && replays.length === 0) {
      replays = (await t.replays()).filter((r) => r.kind === "replay" && r.source === t.lab.host("other").ipv4);
      if (replays.length === 0) await sleep(200);
    }
    expect(replays).toHaveLength(1);
  }, 30_000);
});
