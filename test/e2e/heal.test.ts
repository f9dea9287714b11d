/**
 * The gate heals itself: with the real daemon running in the lab's server namespace, a firewall reload
 * (`nft flush ruleset`) or a deleted table must not leave the protected port open. Hosts: client 198.18.0.1,
 * server 198.18.0.2, other 198.18.0.3.
 */
import type { ChildProcess } from "node:child_process";
import { afterAll, beforeAll, expect, it } from "vitest";
import { describeAsRoot } from "../support/root.js";
import { sleep, TknockLab } from "../../lab/tknock-lab.js";

const PERIOD = 10;
const OPEN_SECONDS = 60; // outlives the whole suite: the grant opened at the start must come back after each flush

describeAsRoot("end to end: the gate heals itself", () => {
  let t: TknockLab;
  let service: ChildProcess;

  beforeAll(async () => {
    t = await TknockLab.create({ openSeconds: OPEN_SECONDS });
    service = t.startService(t.protectPort);
    await t.enrollClient("alice", ["--period", String(PERIOD)]);
    await t.enrollClient("bob", ["--period", String(PERIOD)]);
    await t.startDaemon();
    const r = await t.client(["alice", "--wait", "5"]);
    if (r.code !== 0) throw new Error(`alice's knock did not open: ${r.stderr}`);
  }, 60_000);

  afterAll(async () => {
    service?.kill();
    await t?.destroy();
  });

  for (const command of [
    ["nft", "flush", "ruleset"],
    ["nft", "delete", "table", "inet", "tknock"],
  ]) {
    it(`when \`${command.join(" ")}\` runs while the daemon runs then 2 s later the port is filtered for others, the open grant is back, and the repair is logged as an error`, async () => {
      expect((await t.probe("client", t.protectPort)).state).toBe("open");
      expect((await t.probe("other", t.protectPort)).state).toBe("filtered");
      const mark = t.logCount;
      const r = await t.lab.exec("server", command);
      expect(r.code, r.stderr).toBe(0);
      await sleep(2000);

      expect((await t.probe("other", t.protectPort)).state).toBe("filtered");
      const client = await t.probe("client", t.protectPort);
      expect(client.state).toBe("open");
      expect(client.data).toContain("hello from the protected service");
      const repairs = t.logsSince(mark).filter((l) => l.level === 50 && l["problem"] === "table missing");
      expect(repairs.length).toBeGreaterThanOrEqual(1);
      expect(repairs[0]?.["grantsRestored"]).toBe(1);
    }, 30_000);
  }

  it("when the gate was restored then a new knock still opens, for its own host only", async () => {
    const r = await t.client(["bob", "--wait", "5"], { host: "other" });
    expect(r.code, r.stderr).toBe(0);
    expect((await t.probe("other", t.protectPort)).state).toBe("open");
    const firewallErrors = t.logsSince(0).filter((l) => l.msg === "firewall open failed");
    expect(firewallErrors).toEqual([]);
  }, 30_000);
});
