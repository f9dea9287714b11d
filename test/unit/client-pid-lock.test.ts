import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { withPidLock } from "../../client/pid-lock.js";
import { TknockError } from "../../src/errors.js";

let dir: string;
let file: string;
let lock: string;
const children: ChildProcess[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "tknock-pid-lock-"));
  file = join(dir, "srv.knock");
  lock = `${file}.lock`;
});
afterEach(() => {
  for (const c of children.splice(0)) c.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

async function errorOf(p: Promise<unknown>): Promise<TknockError | undefined> {
  try {
    await p;
    return undefined;
  } catch (err) {
    if (err instanceof TknockError) return err;
    throw err;
  }
}

/** A live process of this host and its start time as /proc reports it. */
function liveProcess(): { pid: number; startTicks: string; child: ChildProcess } {
  const child = spawn("sleep", ["30"], { stdio: "ignore" });
  children.push(child);
  const pid = child.pid as number;
  const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
  const startTicks = stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19] as string;
  return { pid, startTicks, child };
}

function writeLock(pid: number, startTicks: string, host = hostname(), ageMs = 0): void {
  writeFileSync(lock, `${pid} ${startTicks} ${host}\n`);
  const at = new Date(Date.now() - ageMs);
  utimesSync(lock, at, at);
}

describe("withPidLock (the client's store and knock locks)", () => {
  it("when ten holders run at once then none overlaps another, and the lock is gone afterwards", async () => {
    let inside = 0;
    let most = 0;
    await Promise.all(
      Array.from({ length: 10 }, () =>
        withPidLock(file, async () => {
          inside++;
          most = Math.max(most, inside);
          await new Promise((r) => setTimeout(r, 5));
          inside--;
        }),
      ),
    );
    expect(most).toBe(1);
    expect(existsSync(lock)).toBe(false);
  });

  it("when the lock holds this process's pid and start time then another waits, and the holder's pid is named", async () => {
    let release!: () => void;
    const holder = withPidLock(file, () => new Promise<void>((r) => (release = r)));
    await new Promise((r) => setTimeout(r, 20));
    expect(readFileSync(lock, "latin1")).toMatch(new RegExp(`^${process.pid} \\d+ ${hostname()}\\n$`));
    const err = await errorOf(withPidLock(file, () => 1, { waitMs: 150 }));
    expect(err?.code).toBe("TKNOCK_LOCKED");
    expect(err?.message).toContain(`pid ${process.pid}`);
    release();
    await holder;
    expect(await withPidLock(file, () => 2)).toBe(2);
  });

  it("when a live process holds the lock then it waits, and once that process is killed the lock is taken over at once", async () => {
    const p = liveProcess();
    writeLock(p.pid, p.startTicks);
    let waited = 0;
    expect((await errorOf(withPidLock(file, () => 1, { waitMs: 200, onWait: () => waited++ })))?.code).toBe("TKNOCK_LOCKED");
    expect(waited).toBe(1);
    const gone = new Promise((r) => p.child.once("exit", r));
    p.child.kill("SIGKILL");
    await gone;
    const started = Date.now();
    expect(await withPidLock(file, () => "mine", { waitMs: 5000 })).toBe("mine");
    expect(Date.now() - started).toBeLessThan(500);
  });

  it("when the pid in the lock now belongs to a process that started at another time then the lock is taken over", async () => {
    const p = liveProcess();
    writeLock(p.pid, String(Number(p.startTicks) + 12345));
    expect(await withPidLock(file, () => "mine", { waitMs: 200 })).toBe("mine");
  });

  it("when the pid in the lock has no process then the lock is taken over, however fresh", async () => {
    const gone = spawnSync(process.execPath, ["-e", "0"]).pid;
    writeLock(gone, "1");
    expect(await withPidLock(file, () => "mine", { waitMs: 200 })).toBe("mine");
  });

  it("when the holder is stopped (Ctrl-Z) then its lock is kept while fresh and taken over once older than staleMs", async () => {
    const p = liveProcess();
    p.child.kill("SIGSTOP");
    await new Promise((r) => setTimeout(r, 50));
    writeLock(p.pid, p.startTicks);
    expect((await errorOf(withPidLock(file, () => 1, { waitMs: 150, staleMs: 2000 })))?.code).toBe("TKNOCK_LOCKED");
    writeLock(p.pid, p.startTicks, hostname(), 3000);
    expect(await withPidLock(file, () => "mine", { waitMs: 200, staleMs: 2000 })).toBe("mine");
  });

  it("when the lock comes from another host (a shared home) then it is judged by age: kept while fresh, taken over when stale", async () => {
    writeLock(1, "1", "other-host.example");
    const err = await errorOf(withPidLock(file, () => 1, { waitMs: 150, staleMs: 2000 }));
    expect(err?.code).toBe("TKNOCK_LOCKED");
    expect(err?.message).toContain("on other-host.example");
    writeLock(1, "1", "other-host.example", 3000);
    expect(await withPidLock(file, () => "mine", { waitMs: 200, staleMs: 2000 })).toBe("mine");
  });

  it("when an older tknock left its directory lock (proper-lockfile) then it is kept while fresh and taken over when stale", async () => {
    spawnSync("mkdir", [lock]);
    expect((await errorOf(withPidLock(file, () => 1, { waitMs: 150, staleMs: 2000 })))?.code).toBe("TKNOCK_LOCKED");
    const old = new Date(Date.now() - 60_000);
    utimesSync(lock, old, old);
    expect(await withPidLock(file, () => "mine", { waitMs: 200, staleMs: 2000 })).toBe("mine");
    expect(existsSync(lock)).toBe(false);
  });

  it("when another process took the lock over from this one then releasing leaves that process's lock in place", async () => {
    await withPidLock(file, () => writeFileSync(lock, `1 1 other-host.example\n`));
    expect(readFileSync(lock, "latin1")).toBe("1 1 other-host.example\n");
  });

  it("when the lock's folder does not exist then it fails at once with TKNOCK_LOCK", async () => {
    const started = Date.now();
    expect((await errorOf(withPidLock(join(dir, "missing", "x"), () => 1, { waitMs: 5000 })))?.code).toBe("TKNOCK_LOCK");
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it("when fn throws then the lock is released and the error passes through", async () => {
    await expect(
      withPidLock(file, () => {
        throw new Error("boom");
      }),
    ).rejects.toThrow("boom");
    expect(existsSync(lock)).toBe(false);
  });
});
