import { lstatSync, readlinkSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { loadClientsFile, writeFileAtomic } from "./config/load.js";
import type { ClientsFile } from "./config/schema.js";
import { ExitCode, TknockError } from "../src/errors.js";
import { withFileLock } from "../src/file-lock.js";
import { errnoCode, fsError, readFileError, RUN_AS_ROOT } from "../src/fs-errors.js";

/**
 * The clients file holds every secret: refuse to use it unless only its owner can read it, and never print
 * a secret from it.
 */
export function checkClientsFilePermissions(path: string): void {
  let mode: number;
  let uid: number;
  try {
    const st = statSync(path);
    mode = st.mode;
    uid = st.uid;
  } catch (cause) {
    throw readFileError(cause, `clients file ${path}`, { missingFix: "create it with `tknock-server init`" });
  }
  const me = process.getuid?.();
  // Someone else's file: when we are not root the fix is to become the owner (root, normally), not to chown.
  if (me !== undefined && me !== 0 && uid !== me) {
    const who = uid === 0 ? RUN_AS_ROOT : `run as its owner (uid ${uid}) or as root`;
    throw new TknockError("TKNOCK_PERMISSION", `cannot read clients file ${path} (it belongs to ${uid === 0 ? "root" : `uid ${uid}`}): ${who}`, ExitCode.usage);
  }
  if ((mode & 0o077) !== 0) {
    throw new TknockError(
      "TKNOCK_CLIENTS_PERMISSIONS",
      `clients file ${path} is readable by others (mode ${(mode & 0o777).toString(8)}): chmod 600 ${path}`,
      ExitCode.usage,
    );
  }
  if (me !== undefined && uid !== me) {
    throw new TknockError(
      "TKNOCK_CLIENTS_OWNER",
      `clients file ${path} is owned by uid ${uid}, not by root who runs tknock-server: whoever owns it can change the secrets: chown root ${path}`,
      ExitCode.usage,
    );
  }
}

export function readClients(path: string): ClientsFile {
  checkClientsFilePermissions(path);
  return loadClientsFile(path);
}

/**
 * The file a write to `path` must replace: `path` itself, or, when it is a symlink (a clients file kept in a
 * configuration-management checkout, say), the file it points to, so the link survives every write. The target
 * need not exist yet.
 */
export function clientsWriteTarget(path: string): string {
  let current = resolve(path);
  for (let hops = 0; hops < 40; hops++) {
    let isLink: boolean;
    try {
      isLink = lstatSync(current).isSymbolicLink();
    } catch (cause) {
      if (errnoCode(cause) === "ENOENT") return current;
      throw fsError(cause, "read", `clients file ${path}`);
    }
    if (!isLink) return current;
    current = resolve(dirname(current), readlinkSync(current));
  }
  throw new TknockError("TKNOCK_FILE_ERROR", `clients file ${path} is a loop of symlinks: point it at a regular file`, ExitCode.usage);
}

/**
 * Runs one read-modify-write of the clients file under its lock (`<file>.lock` beside the real file, so every
 * name of a symlinked file shares one lock): two `enroll`s both land, and a `revoke` is never undone by an
 * `enroll` that read the file before it.
 */
export function withClientsLock<T>(path: string, fn: () => T | Promise<T>): Promise<T> {
  return withFileLock(clientsWriteTarget(path), fn);
}

/** Replaces the clients file atomically (mode 600); through a symlink, the file it points to. */
export function writeClients(path: string, file: ClientsFile): void {
  const target = clientsWriteTarget(path);
  try {
    writeFileAtomic(target, `${JSON.stringify(file, null, 2)}\n`, 0o600);
  } catch (cause) {
    throw fsError(cause, "write", `clients file ${target === resolve(path) ? path : `${path} (-> ${target})`}`);
  }
}
