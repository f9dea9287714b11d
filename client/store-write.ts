/**
 * The step record's write of the store file, without conf: a knock runs in front of every ssh and conf's load
 * (with atomically and its exit hooks) is a few ms of every start. It writes what conf writes (JSON indented with
 * tabs, mode 0600) the way conf's atomic write does: a new file beside the store, then rename over it, through a
 * symlinked store to its target, keeping the owner of the file it replaces.
 *
 * Durability. The file's data is fsynced before the rename: the store holds the secrets, and on filesystems that
 * do not order a rename after the data it replaces (XFS, btrfs without flushoncommit) a power cut could otherwise
 * leave an empty profiles.json, every profile lost for a step record. The folder is not fsynced: that would only
 * make the rename itself durable, and losing it takes a kernel crash or power cut within seconds of the knock.
 * The old record then comes back, so the next knock may resend the last step: a step the server accepted it
 * refuses as a replay (the server records it durably before opening), and only while the step is still within
 * the server's skew (a minute or so by default), so only if the machine is back up and knocking by then. One
 * refused knock at worst, never a second opening from one step.
 */
import { closeSync, fchownSync, fsyncSync, openSync, realpathSync, renameSync, statSync, unlinkSync, writeSync } from "node:fs";

export const STORE_FILE_MODE = 0o600;

/** conf's serialization, so either writer's file reads the same and diffs stay small. */
export function serializeStore(value: unknown): string {
  return JSON.stringify(value, undefined, "\t");
}

/** Replaces the file at path with text: temp file, fsync, rename. Throws the raw fs error. */
export function writeStoreFile(path: string, text: string): void {
  let target = path;
  try {
    target = realpathSync(path);
  } catch {
    // Not there yet (or a dangling link, which the rename replaces): write the path itself.
  }
  let owner: { uid: number; gid: number } | undefined;
  try {
    const st = statSync(target);
    owner = { uid: st.uid, gid: st.gid };
  } catch {
    owner = undefined;
  }
  const temp = `${target}.tmp-${process.pid}-${Date.now().toString(36)}`;
  const fd = openSync(temp, "wx", STORE_FILE_MODE);
  try {
    try {
      writeSync(fd, text);
      // Only root may give a file away: `sudo tknock` on a user's store must leave it that user's.
      const root = process.getuid?.() === 0;
      if (root && owner !== undefined && (owner.uid !== 0 || owner.gid !== process.getgid?.())) fchownSync(fd, owner.uid, owner.gid);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temp, target);
  } catch (err) {
    try {
      unlinkSync(temp);
    } catch {
      // Renamed already, or never made.
    }
    throw err;
  }
}
