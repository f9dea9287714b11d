/**
 * One daemon per state directory. Two daemons on one state dir would each keep their own matcher and replay
 * window, write the same state.json and fight over the same nftables table.
 *
 * The lock is a pid file, `daemon.pid`, holding the owner's pid and its start time as the kernel reports it
 * (/proc/PID/stat field 22). It is not a proper-lockfile lock: that one must be refreshed every few seconds, and
 * a daemon whose event loop stalls under a flood would lose it while still running. A pid file needs no refresh;
 * it is stale when no process has that pid, or the process with that pid started at another time (the pid was
 * reused after a crash or a SIGKILL). Taking the lock (read, check, write) holds a short proper-lockfile lock, so
 * two daemons starting together cannot both see a stale file and both take it.
 */
import { readFileSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import { writeFileAtomic } from "./config/load.js";
import { ExitCode, TknockError } from "../src/errors.js";
import { withFileLock } from "../src/file-lock.js";

export const DAEMON_LOCK_FILE = "daemon.pid";

export type LockHolder = {
  readonly pid: number;
  /** Process start time in clock ticks since boot (/proc/PID/stat), to tell a reused pid apart. */
  readonly startTicks: string | null;
  readonly startedAt: string;
};

export type DaemonLock = {
  readonly path: string;
  readonly holder: LockHolder;
  /**
   * Removes the pid file if it is still ours; synchronous so it can run on the way out of a process, and a plain
   * function (no `this`) so it can be passed as the exit listener itself.
   */
  readonly release: () => void;
};

/** Takes the lock of stateDir, or fails with TKNOCK_ALREADY_RUNNING naming the running daemon's pid. */
export async function acquireDaemonLock(stateDir: string, nowMs = Date.now()): Promise<DaemonLock> {
  const path = join(stateDir, DAEMON_LOCK_FILE);
  const me: LockHolder = { pid: process.pid, startTicks: processStartTicks(process.pid), startedAt: new Date(nowMs).toISOString() };
  await withFileLock(
    path,
    () => {
      const holder = readLockHolder(path);
      if (holder !== undefined && holderAlive(holder)) {
        throw new TknockError(
          "TKNOCK_ALREADY_RUNNING",
          `tknock-server is already running with state directory ${stateDir} (pid ${holder.pid}, since ${holder.startedAt}): stop it first (systemctl stop tknock-server, or kill ${holder.pid})`,
          ExitCode.usage,
        );
      }
      writeFileAtomic(path, `${JSON.stringify(me)}\n`, 0o644);
    },
    { waitMs: 1000 },
  );
  return {
    path,
    holder: me,
    release: () => {
      const now = readLockHolder(path);
      if (now?.pid !== me.pid || now.startTicks !== me.startTicks) return;
      try {
        unlinkSync(path);
      } catch {
        // Already gone: nothing to release.
      }
    },
  };
}

/** Who holds the lock of stateDir and whether that process is alive (for `status`). */
export function inspectDaemonLock(stateDir: string): { holder: LockHolder | undefined; alive: boolean } {
  const holder = readLockHolder(join(stateDir, DAEMON_LOCK_FILE));
  return { holder, alive: holder !== undefined && holderAlive(holder) };
}

export function readLockHolder(path: string): LockHolder | undefined {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return undefined;
    if (code === "EACCES" || code === "EPERM") {
      throw new TknockError("TKNOCK_PERMISSION", `cannot read ${path} (${code}): run as root or with sudo`, ExitCode.usage, { cause });
    }
    throw new TknockError("TKNOCK_STATE_DIR", `cannot read ${path} (${code ?? String(cause)}): check the state directory`, ExitCode.usage, { cause });
  }
  try {
    const o = JSON.parse(text) as Partial<LockHolder>;
    if (typeof o.pid !== "number" || !Number.isSafeInteger(o.pid) || o.pid <= 0) return undefined;
    return { pid: o.pid, startTicks: typeof o.startTicks === "string" ? o.startTicks : null, startedAt: typeof o.startedAt === "string" ? o.startedAt : "?" };
  } catch {
    // A torn or foreign file holds no lock: a daemon writes it atomically, so this is not a running daemon's.
    return undefined;
  }
}

export function holderAlive(holder: LockHolder): boolean {
  const ticks = processStartTicks(holder.pid);
  if (ticks !== null) return holder.startTicks === null || ticks === holder.startTicks;
  if (procAvailable()) return false; // no such process
  // No /proc at all: ask the kernel (a reused pid cannot be told apart then).
  try {
    process.kill(holder.pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Field 22 of /proc/PID/stat (starttime); the command name before it may hold spaces and parentheses. */
export function processStartTicks(pid: number): string | null {
  try {
    return parseStartTicks(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return null;
  }
}

export function parseStartTicks(stat: string): string | null {
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // fields[0] is field 3 (state), so field 22 is fields[19].
  const ticks = fields[19];
  return ticks !== undefined && /^\d+$/.test(ticks) ? ticks : null;
}

function procAvailable(): boolean {
  return processStartTicks(process.pid) !== null;
}
