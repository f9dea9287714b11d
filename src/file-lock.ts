/**
 * A lock held around every read-modify-write of a shared file (clients.json, the client store, state), so two
 * commands never lose each other's change. proper-lockfile makes `<file>.lock` with mkdir (atomic on every local
 * filesystem) and keeps its mtime fresh while held; a lock whose holder was killed goes stale and is taken over.
 */
import { ExitCode, TknockError } from "./errors.js";
import { knownFsError } from "./fs-errors.js";

export type FileLockOptions = {
  /** How long to keep trying before giving up (ms). Default 10 000. */
  readonly waitMs?: number;
  /** A lock not refreshed for this long belongs to a dead process and is taken over (ms, at least 2000). Default 5000. */
  readonly staleMs?: number;
  /** The fix printed when the lock cannot be made for lack of rights (default: run as root or with sudo). */
  readonly permissionFix?: string;
  /** Called once when another process holds the lock, before waiting for it (e.g. to say so, or to note it). */
  readonly onWait?: () => void;
};

/** Runs fn while holding the lock of `path` (the lock is `<path>.lock`; the file itself need not exist). */
export async function withFileLock<T>(path: string, fn: () => T | Promise<T>, options: FileLockOptions = {}): Promise<T> {
  const waitMs = options.waitMs ?? 10_000;
  const staleMs = Math.max(2000, options.staleMs ?? 5000);
  // Loaded on first use: with graceful-fs and signal-exit it would add to the start of every command.
  const imported = await import("proper-lockfile");
  // A CommonJS module: Node puts module.exports on default, bundlers may not add the named exports.
  const lockfile = (imported as { default?: typeof imported }).default ?? imported;
  let release: () => Promise<void>;
  const deadline = Date.now() + waitMs;
  let delayMs = 5;
  let waited = false;
  // Only a held lock is worth waiting for: proper-lockfile's own retries would also retry EACCES for waitMs.
  for (;;) {
    try {
      release = await lockfile.lock(path, { realpath: false, lockfilePath: `${path}.lock`, stale: staleMs, retries: 0 });
      break;
    } catch (cause) {
      const code = (cause as NodeJS.ErrnoException).code;
      if (code === "ELOCKED" && Date.now() < deadline) {
        if (!waited) options.onWait?.();
        waited = true;
        await new Promise((r) => setTimeout(r, delayMs));
        delayMs = Math.min(50, Math.ceil(delayMs * 1.3));
        continue;
      }
      if (code === "ELOCKED") {
        throw new TknockError(
          "TKNOCK_LOCKED",
          `${path} is locked by another tknock command: try again, or remove ${path}.lock if no tknock command is running`,
          ExitCode.usage,
          { cause },
        );
      }
      const known = knownFsError(cause, "lock", path, options.permissionFix);
      if (known !== undefined) throw known;
      throw new TknockError("TKNOCK_LOCK", `cannot lock ${path} (${code ?? String(cause)}): check that its directory exists and is writable`, ExitCode.system, {
        cause,
      });
    }
  }
  try {
    return await fn();
  } finally {
    await release().catch(() => {});
  }
}
