/**
 * Replay protection across restarts of the real daemon (issue 9 item 8): a future step spent by a skew refusal,
 * and a step refused because the state directory was full, both stay refused after a restart. The state directory
 * is a 256 KiB tmpfs mounted for this test only (unmounted in afterAll), so "full" is real ENOSPC.
 */
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { describeAsRoot } from "../support/root.js";
import { sleep, TknockLab } from "../../lab/tknock-lab.js";

const SKEW_PERIOD = 10;

describeAsRoot("end to end: replay protection survives restarts", () => {
  let t: TknockLab;
  let stateDir: string;
  let mounted = false;

  beforeAll(async () => {
    t = await TknockLab.create({ openSeconds: 5 });
    stateDir = join(t.dir, "small-state");
    mkdirSync(stateDir, { mode: 0o700 });
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=256k,mode=0700", "tknock-test-state", stateDir]);
    mounted = true;
    copyFileSync(join(t.stateDir, "state.json"), join(stateDir, "state.json")); // as init wrote it: no step yet
    const config = JSON.parse(readFileSync(t.configPath, "utf8")) as Record<string, unknown>;
    writeFileSync(t.configPath, JSON.stringify({ ...config, stateDir }, null, 2));
    await t.enrollClient("alice");
    await t.enrollClient("bob", ["--period", String(SKEW_PERIOD)]);
    await t.startDaemon();
  }, 60_000);

  afterAll(async () => {
    await t?.stopDaemon().catch(() => undefined);
    if (mounted) execFileSync("umount", [stateDir]);
    await t?.destroy();
  });

  async function sequenceAt(name: string, unixSeconds: number): Promise<{ step: number; ports: number[] }> {
    return JSON.parse(await t.serverOk(["sequence", name, "--json", "--at", String(unixSeconds)])) as { step: number; ports: number[] };
  }

  async function restart(): Promise<number> {
    await t.stopDaemon();
    const mark = t.logCount;
    await t.startDaemon();
    return mark;
  }

  it("when a knock two windows ahead is refused as skew then after a restart its replay from another host is refused once its window comes", async () => {
    // Well inside a window, so the knock's step stays two ahead while it is sent.
    const leftMs = SKEW_PERIOD * 1000 - (Date.now() % (SKEW_PERIOD * 1000));
    if (leftMs < 3000) await sleep(leftMs + 50);
    const ahead = await sequenceAt("bob", Math.floor(Date.now() / 1000) + 2 * SKEW_PERIOD);
    let mark = t.logCount;
    await t.sendSyns("client", ahead.ports, 1);
    await t.waitForLog((l) => l.msg === "knock refused" && l["reason"] === "skew" && l["step"] === ahead.step, 5000, mark);
    expect(JSON.parse(readFileSync(join(stateDir, "state.json"), "utf8"))).toMatchObject({ spentSteps: { bob: [ahead.step] } });

    mark = await restart();
    // Wait until the step is a candidate (T + 1 = ahead.step), then replay it from the other host.
    while (Math.floor(Date.now() / 1000 / SKEW_PERIOD) < ahead.step - 1) await sleep(200);
    await t.sendSyns("other", ahead.ports, 1);
    const refused = await t.waitForLog((l) => l.msg === "knock refused" && l["src"] === t.lab.host("other").ipv4, 5000, mark);
    expect(refused).toMatchObject({ reason: "replay", client: "bob", step: ahead.step });
    expect((await t.probe("other", t.protectPort)).state).toBe("filtered");
  }, 60_000);

  it("when the state directory is full then the knock does not open, and after space is freed and the daemon restarts its replay from another host is refused", async () => {
    // Room for the rest of the test's logs, not for a new state file.
    const filler = join(stateDir, "filler");
    try {
      execFileSync("dd", ["if=/dev/zero", `of=${filler}`, "bs=4k", "count=1000"], { stdio: "ignore" });
    } catch {
      // dd stops at ENOSPC: that is the point
    }
    const leftMs = 30_000 - (Date.now() % 30_000);
    if (leftMs < 8000) await sleep(leftMs + 50);
    const now = await sequenceAt("alice", Math.floor(Date.now() / 1000));
    let mark = t.logCount;
    await t.sendSyns("client", now.ports, 1);
    await t.waitForLog((l) => l.msg === "could not persist the accepted step; not opening" && l["client"] === "alice", 5000, mark);
    expect((await t.probe("client", t.protectPort)).state).toBe("filtered");

    rmSync(filler); // the admin frees space and restarts
    mark = await restart();
    const warning = await t.waitForLog((l) => typeof l.msg === "string" && l.msg.includes("failing closed"), 1000, mark);
    expect(warning.msg).toContain("after a failed write");
    await t.sendSyns("other", now.ports, 1);
    const refused = await t.waitForLog((l) => l.msg === "knock refused" && l["src"] === t.lab.host("other").ipv4 && l["client"] === "alice", 5000, mark);
    expect(refused).toMatchObject({ reason: "replay", step: now.step });
    expect((await t.probe("other", t.protectPort)).state).toBe("filtered");
  }, 90_000);
});
