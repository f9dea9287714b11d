/** The one-daemon-per-state-dir lock: real pid files in a temp directory, real processes for liveness. */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { acquireDaemonLock, DAEMON_LOCK_FILE, inspectDaemonLock, parseStartTicks, processStartTicks } from "../../server/daemon-lock.js";

describe("daemon lock", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "tknock-lock-"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const lockPath = (): string => join(dir, DAEMON_LOCK_FILE);

  /** A pid that belonged to a process which has exited. */
  function deadPid(): number {
    const r = spawnSync("true");
    if (r.pid === undefined) throw new Error("could not spawn true");
    return r.pid;
  }

  it("when the lock is free then it is taken and inspect shows this process alive; release frees it", async () => {
    const lock = await acquireDaemonLock(dir);
    expect(JSON.parse(readFileSync(lockPath(), "utf8"))).toMatchObject({ pid: process.pid });
    expect(inspectDaemonLock(dir)).toMatchObject({ alive: true, holder: { pid: process.pid } });
    lock.release();
    expect(existsSync(lockPath())).toBe(false);
    expect(inspectDaemonLock(dir)).toEqual({ holder: undefined, alive: false });
  });

  it("when a live daemon holds it then a second acquire fails with TKNOCK_ALREADY_RUNNING naming its pid, and the holder keeps it", async () => {
    const lock = await acquireDaemonLock(dir);
    const second = await acquireDaemonLock(dir).catch((e: unknown) => e);
    expect(second).toMatchObject({ code: "TKNOCK_ALREADY_RUNNING", exitCode: 1, message: expect.stringContaining(`pid ${process.pid}`) });
    expect(inspectDaemonLock(dir).alive).toBe(true);
    lock.release();
  });

  it("when the holder has died (SIGKILL leaves the file) then the lock is stale and taken over", async () => {
    writeFileSync(lockPath(), JSON.stringify({ pid: deadPid(), startTicks: "1", startedAt: "2026-01-01T00:00:00.000Z" }));
    expect(inspectDaemonLock(dir).alive).toBe(false);
    const lock = await acquireDaemonLock(dir);
    expect(lock.holder.pid).toBe(process.pid);
    lock.release();
  });

  it("when the recorded pid now belongs to a process that started at another time then the lock is stale", async () => {
    writeFileSync(lockPath(), JSON.stringify({ pid: process.pid, startTicks: "1", startedAt: "2026-01-01T00:00:00.000Z" }));
    expect(inspectDaemonLock(dir).alive).toBe(false);
    const lock = await acquireDaemonLock(dir);
    lock.release();
  });

  it("when the file is garbage then it holds no lock", async () => {
    writeFileSync(lockPath(), "{not json");
    expect(inspectDaemonLock(dir)).toEqual({ holder: undefined, alive: false });
    (await acquireDaemonLock(dir)).release();
  });

  it("when the file was taken over by another daemon then release leaves it alone", async () => {
    const lock = await acquireDaemonLock(dir);
    const other = JSON.stringify({ pid: 1, startTicks: processStartTicks(1), startedAt: "x" });
    writeFileSync(lockPath(), other);
    lock.release();
    expect(readFileSync(lockPath(), "utf8")).toBe(other);
  });

  it("when the command name holds spaces and parentheses then the start time is still field 22", () => {
    const stat = "4242 (a) (b c) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 50";
    expect(parseStartTicks(stat)).toBe("987654");
    expect(processStartTicks(process.pid)).toMatch(/^\d+$/);
  });
});
