/**
 * The client's locks: the store's (`profiles.json.lock`, around every read-modify-write) and a profile's knock
 * lock (`NAME.knock.lock`, one knock at a time). They sit in front of every ssh, so taking one must cost a few
 * system calls, not proper-lockfile's load (graceful-fs, signal-exit) and its mtime bookkeeping.
 *
 * A lock is a file created with O_EXCL (atomic on local filesystems and NFSv3+) holding one line: the owner's
 * pid, its start time (/proc/PID/stat field 22, so a reused pid is told apart) and its host name. It is stale,
 * and taken over at once, when on this host no process has that pid, the process with that pid started at
 * another time, or it is a zombie. A lock from another host (a home folder on NFS), a stopped holder, a file
 * without a readable owner and the directory lock of older tknock versions (proper-lockfile) cannot be judged
 * by pid: they are stale when not refreshed for staleMs; a holder refreshes its lock's mtime every staleMs / 2.
 * Taking over holds a second short lock (`<lock>.takeover`), so two processes that both saw a stale lock never
 * remove a lock one of them has just taken.
 */
import { closeSync, lstatSync, openSync, readFileSync, rmdirSync, unlinkSync, utimesSync, writeSync, type Stats } from "node:fs";
import { hostname } from "node:os";
import { ExitCode, TknockError } from "../src/errors.js";
import type { FileLockOptions } from "../src/file-lock.js";
import { errnoCode, knownFsError } from "../src/fs-errors.js";

export type PidLockOptions = FileLockOptions & {
  /** The error to report for a file error of the lock itself (e.g. in the store's own words); undefined: the default. */
  readonly fsError?: (cause: unknown) => TknockError | undefined;
};

type Owner = { readonly pid: number; readonly startTicks: string | undefined; readonly host: string };

/** What a look at a lock found: who holds it (if readable) and whether it may be taken over. */
type Seen = { readonly stat: Stats; readonly text: string | undefined; readonly owner: Owner | undefined; readonly stale: boolean };

/** Pid, state and start time of a process from /proc (Linux); undefined where /proc cannot tell. */
function procStat(pid: number): { state: string; startTicks: string } | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "latin1");
  } catch {
    return undefined;
  }
  // The command name (field 2) may hold spaces and parentheses: fields are counted after its last ')'.
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  const state = fields[0];
  const startTicks = fields[19];
  return state !== undefined && startTicks !== undefined ? { state, startTicks } : undefined;
}

let self: string | undefined;
function ownerLine(): string {
  self ??= `${process.pid} ${procStat(process.pid)?.startTicks ?? "-"} ${hostname()}\n`;
  return self;
}

function parseOwner(text: string): Owner | undefined {
  const m = /^(\d+) (\d+|-) (\S+)\n$/.exec(text);
  if (m === null) return undefined;
  return { pid: Number(m[1]), startTicks: m[2] === "-" ? undefined : m[2], host: m[3] as string };
}

/** On this host: "dead" (stale now), "alive", or "stopped" (alive, but its lock may go stale by age). */
function holderState(owner: Owner): "dead" | "alive" | "stopped" {
  try {
    process.kill(owner.pid, 0);
  } catch (err) {
    // EPERM: the process exists and belongs to another user.
    if (errnoCode(err) === "ESRCH") return "dead";
  }
  const proc = procStat(owner.pid);
  if (proc === undefined) return "alive"; // no /proc (or hidden by hidepid): the pid is all there is to go by
  if (proc.state === "Z" || proc.state === "X") return "dead";
  if (owner.startTicks !== undefined && proc.startTicks !== owner.startTicks) return "dead"; // the pid was reused
  return proc.state === "T" || proc.state === "t" ? "stopped" : "alive";
}

/** Looks at the lock; undefined when there is none. */
function inspect(lockPath: string, staleMs: number, nowMs: number): Seen | undefined {
  let stat: Stats;
  let text: string | undefined;
  try {
    stat = lstatSync(lockPath);
    text = stat.isFile() ? readFileSync(lockPath, "latin1") : undefined;
  } catch (err) {
    if (errnoCode(err) === "ENOENT") return undefined;
    throw err;
  }
  const old = nowMs - stat.mtimeMs > staleMs;
  const owner = text === undefined ? undefined : parseOwner(text);
  if (owner === undefined || owner.host !== hostname()) return { stat, text, owner, stale: old };
  const state = holderState(owner);
  return { stat, text, owner, stale: state === "dead" || (state === "stopped" && old) };
}

function remove(lockPath: string, seen: Seen): void {
  try {
    if (seen.stat.isDirectory()) rmdirSync(lockPath);
    else unlinkSync(lockPath);
  } catch (err) {
    if (errnoCode(err) !== "ENOENT") throw err;
  }
}

function create(lockPath: string): boolean {
  let fd: number;
  try {
    fd = openSync(lockPath, "wx", 0o600);
  } catch (err) {
    if (errnoCode(err) === "EEXIST") return false;
    throw err;
  }
  try {
    writeSync(fd, ownerLine());
  } finally {
    closeSync(fd);
  }
  return true;
}

/** Removes a stale lock unless it changed since it was seen; never waits. False: another process is at it. */
function takeOver(lockPath: string, seen: Seen, staleMs: number): boolean {
  const guard = `${lockPath}.takeover`;
  if (!create(guard)) {
    // Held only for a few system calls: still there means its holder died in between (or is taking over now).
    const g = inspect(guard, Math.min(staleMs, 1000), Date.now());
    if (g?.stale === true) remove(guard, g);
    return false;
  }
  try {
    const now = inspect(lockPath, staleMs, Date.now());
    const same = now !== undefined && now.stat.ino === seen.stat.ino && now.stat.mtimeMs === seen.stat.mtimeMs && now.text === seen.text;
    if (same && now.stale) remove(lockPath, now);
  } finally {
    unlinkSync(guard);
  }
  return true;
}

/** Removes the lock if it is still ours (a lock wrongly judged stale may have been taken over). */
function release(lockPath: string): void {
  try {
    if (readFileSync(lockPath, "latin1") === ownerLine()) unlinkSync(lockPath);
  } catch {
    // Gone already, or unreadable: nothing of ours to remove.
  }
}

function lockError(path: string, cause: unknown, options: PidLockOptions): TknockError {
  const known = options.fsError?.(cause) ?? knownFsError(cause, "lock", path, options.permissionFix);
  if (known !== undefined) return known;
  return new TknockError(
    "TKNOCK_LOCK",
    `cannot lock ${path} (${errnoCode(cause) ?? String(cause)}): check that its directory exists and is writable`,
    ExitCode.system,
    {
      cause,
    },
  );
}

/**
 * Runs fn while holding the lock of `path` (`<path>.lock`; the file itself need not exist). Waits while another
 * live process holds it (options.onWait is called once), up to waitMs, then fails with TKNOCK_LOCKED.
 */
export async function withPidLock<T>(path: string, fn: () => T | Promise<T>, options: PidLockOptions = {}): Promise<T> {
  const lockPath = `${path}.lock`;
  const waitMs = options.waitMs ?? 10_000;
  const staleMs = Math.max(2000, options.staleMs ?? 5000);
  const deadline = Date.now() + waitMs;
  let delayMs = 2;
  let waited = false;
  for (;;) {
    let holder: Owner | undefined;
    try {
      if (create(lockPath)) break;
      const seen = inspect(lockPath, staleMs, Date.now());
      if (seen === undefined) continue; // released in between: try again at once
      if (seen.stale && takeOver(lockPath, seen, staleMs)) continue;
      holder = seen.owner;
    } catch (cause) {
      throw lockError(path, cause, options);
    }
    if (Date.now() >= deadline) {
      const by = holder !== undefined ? ` (pid ${holder.pid} on ${holder.host})` : "";
      throw new TknockError(
        "TKNOCK_LOCKED",
        `${path} is locked by another tknock command${by}: try again, or remove ${lockPath} if no tknock command is running`,
        ExitCode.usage,
      );
    }
    if (!waited) options.onWait?.();
    waited = true;
    await new Promise((r) => setTimeout(r, delayMs));
    delayMs = Math.min(50, Math.ceil(delayMs * 1.5));
  }
  // Only readers on another host (or of a stopped holder) go by age; for them the lock must look fresh.
  const refresh = setInterval(() => {
    try {
      const now = new Date();
      utimesSync(lockPath, now, now);
    } catch {
      // Taken over or removed: release() leaves it alone.
    }
  }, staleMs / 2);
  refresh.unref();
  try {
    return await fn();
  } finally {
    clearInterval(refresh);
    release(lockPath);
  }
}
