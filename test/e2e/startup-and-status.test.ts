/**
 * The daemon's start-up checks, its one-per-state-dir lock and `status`, with the real binaries in a namespace
 * lab (client 198.18.0.1, server 198.18.0.2, other 198.18.0.3). The server namespace holds a sentinel table of
 * its own, standing for the host's firewall: a failed start must leave the whole ruleset as it was.
 */
import type { ChildProcess } from "node:child_process";
import { chmodSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { ExitCode } from "../../src/errors.js";
import { describeAsRoot } from "../support/root.js";
import { JsonLogCollector } from "../../lab/json-log.js";
import { SERVER_BIN, sleep, TknockLab } from "../../lab/tknock-lab.js";

type StatusJson = {
  ok: boolean;
  problems: string[];
  daemon: { running: boolean; pid: number | null; stoppedAt?: string };
  capture: { state: string; lastProblem?: string };
  gate: { present: boolean; name: string };
  grants: unknown[];
};

/** Generous for a Node start on a busy 2-core machine; the bound for a failing start. */
const FAILED_START_MS = 2000;

describeAsRoot("start-up checks, one daemon per state dir, and status, in a namespace lab", () => {
  let t: TknockLab;
  let service: ChildProcess;
  let firstPid: number;

  beforeAll(async () => {
    t = await TknockLab.create();
    service = t.startService(t.protectPort);
    await t.enrollClient("alice");
    const r = await t.lab.exec("server", ["nft", "add", "table", "inet", "sentinel"]);
    if (r.code !== 0) throw new Error(`cannot add the sentinel table: ${r.stderr}`);
  }, 60_000);

  afterAll(async () => {
    service?.kill();
    await t?.destroy();
  });

  async function ruleset(): Promise<string> {
    const r = await t.lab.exec("server", ["nft", "list", "ruleset"]);
    if (r.code !== 0) throw new Error(`nft list ruleset failed: ${r.stderr}`);
    return r.stdout;
  }

  /** A copy of the lab's config with some fields changed (same state dir and clients). */
  function configWith(name: string, change: Record<string, unknown>): string {
    const config = JSON.parse(readFileSync(t.configPath, "utf8")) as Record<string, unknown>;
    const path = join(t.dir, `${name}.json`);
    writeFileSync(path, JSON.stringify({ ...config, ...change }, null, 2));
    return path;
  }

  async function runWith(configPath: string): Promise<{ code: number; stderr: string; ms: number }> {
    const t0 = Date.now();
    const r = await t.lab.exec("server", ["node", SERVER_BIN, "--config", configPath, "run"], { timeoutMs: 15_000 });
    return { code: r.code, stderr: r.stderr, ms: Date.now() - t0 };
  }

  async function status(configPath = t.configPath): Promise<{ code: number; json: StatusJson }> {
    const r = await t.lab.exec("server", ["node", SERVER_BIN, "--config", configPath, "status", "--json"], { timeoutMs: 15_000 });
    try {
      return { code: r.code, json: JSON.parse(r.stdout) as StatusJson };
    } catch {
      throw new Error(`status printed no JSON (exit ${r.code}): ${r.stdout}${r.stderr}`);
    }
  }

  it("when tcpdump is missing then run exits 5 (system) within 2 s with one line naming tcpdump, and the ruleset is unchanged", async () => {
    const before = await ruleset();
    const r = await runWith(configWith("no-tcpdump", { tcpdump: { path: "/nonexistent/tcpdump" } }));
    expect(r.code).toBe(ExitCode.system);
    expect(r.ms).toBeLessThan(FAILED_START_MS);
    const lines = r.stderr.trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/tcpdump not found.*apt-get install tcpdump/);
    expect(await ruleset()).toBe(before);
  });

  it("when the interface does not exist then run exits 1 within 2 s with one line naming it, and the ruleset is unchanged", async () => {
    const before = await ruleset();
    const r = await runWith(configWith("no-interface", { interface: "eth9" }));
    expect(r.code).toBe(ExitCode.usage);
    expect(r.ms).toBeLessThan(FAILED_START_MS);
    const lines = r.stderr.trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/interface eth9 does not exist: set interface in server.json/);
    expect(await ruleset()).toBe(before);
  });

  it("when no daemon has run and there is no gate then status exits non-zero saying both", async () => {
    const { code, json } = await status();
    expect(code).toBe(ExitCode.unhealthy);
    expect(json).toMatchObject({ ok: false, daemon: { running: false }, gate: { present: false } });
  });

  it("when the daemon runs then status exits 0 with its pid, capture working and the gate present", async () => {
    await t.startDaemon();
    // The daemon rewrites its report every second: the first may predate tcpdump's "listening on".
    let { code, json } = await status();
    for (let i = 0; i < 10 && json.capture.state !== "capturing"; i++) {
      await sleep(300);
      ({ code, json } = await status());
    }
    expect(code, JSON.stringify(json.problems)).toBe(0);
    expect(json).toMatchObject({ ok: true, daemon: { running: true }, capture: { state: "capturing" }, gate: { present: true, name: "table inet tknock" } });
    firstPid = json.daemon.pid as number;
    expect(firstPid).toBeGreaterThan(0);
  }, 30_000);

  it("when a second run starts on the same config then it exits 1 naming the running pid, and the first keeps opening on a knock", async () => {
    const before = await ruleset();
    const second = await runWith(t.configPath);
    expect(second.code).toBe(ExitCode.usage);
    expect(second.stderr.trim().split("\n")).toHaveLength(1);
    expect(second.stderr).toContain(`pid ${firstPid}`);
    expect(await ruleset()).toBe(before);

    const knock = await t.client(["alice", "--wait", "10"]);
    expect(knock.code, knock.stderr).toBe(0);
    expect((await t.probe("client", t.protectPort)).state).toBe("open");
    expect((await status()).json.daemon.pid).toBe(firstPid);
  }, 30_000);

  it("when the daemon is stopped then status exits non-zero: daemon not running, the gate still present", async () => {
    expect(await t.stopDaemon("SIGTERM")).toBe(0);
    const { code, json } = await status();
    expect(code).toBe(ExitCode.unhealthy);
    expect(json).toMatchObject({ ok: false, daemon: { running: false, pid: null }, capture: { state: "stopped" }, gate: { present: true } });
    expect(json.daemon.stoppedAt).toEqual(expect.any(String));
  }, 30_000);

  it("when the gate's table is deleted with the daemon down then status exits non-zero naming the missing gate", async () => {
    const r = await t.lab.exec("server", ["nft", "delete", "table", "inet", "tknock"]);
    expect(r.code, r.stderr).toBe(0);
    const { code, json } = await status();
    expect(code).toBe(ExitCode.unhealthy);
    expect(json.gate.present).toBe(false);
    expect(json.problems.join("\n")).toMatch(/gate missing: table inet tknock/);
  });

  it("when capture keeps failing after start then the gate stays, an error is logged and status exits non-zero showing it", async () => {
    // Answers the start-up check's --version, then fails every capture as a broken tcpdump would.
    const fake = join(t.dir, "broken-tcpdump");
    writeFileSync(
      fake,
      '#!/bin/sh\n[ "$1" = --version ] && { echo "tcpdump version 0 (stand-in)"; exit 0; }\necho "broken-tcpdump: capture failed" >&2\nexit 1\n',
    );
    chmodSync(fake, 0o755);
    const config = configWith("broken-capture", { tcpdump: { path: fake } });
    const daemon = t.lab.spawn("server", ["node", SERVER_BIN, "--config", config, "run"]);
    const logs = new JsonLogCollector();
    logs.attach(daemon.stdout);
    try {
      await logs.waitFor((l) => l.msg === "tknock-server running", 10_000);
      const error = await logs.waitFor((l) => l.level >= 50 && /packet capture is not working/.test(l.msg), 10_000);
      expect(String(error["lastProblem"])).toContain("capture failed");
      const { code, json } = await status(config);
      expect(code).toBe(ExitCode.unhealthy);
      expect(json).toMatchObject({ daemon: { running: true }, capture: { state: "failing" }, gate: { present: true } });
      expect(json.problems.join("\n")).toMatch(/packet capture failing/);
      expect((await t.probe("other", t.protectPort)).state).toBe("filtered"); // fail closed
    } finally {
      const exited = new Promise((r) => daemon.once("exit", r));
      daemon.kill("SIGTERM");
      await Promise.race([exited, sleep(5000)]);
    }
  }, 30_000);
});
