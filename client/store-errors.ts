/**
 * The client store's file errors as one line with a fix that fits a personal store: becoming root is never the
 * fix here. The usual cause is a store folder created by `sudo tknock ...`, which then belongs to root.
 */
import { statSync } from "node:fs";
import { homedir } from "node:os";
import { dirname } from "node:path";
import { ExitCode, TknockError } from "../src/errors.js";
import { errnoCode, knownFsError } from "../src/fs-errors.js";

/** For raw file errors the CLI did not map (e.g. `add --qr FILE`). */
export const CLIENT_PERMISSION_FIX = "check who owns it and its mode (ls -l): tknock needs no root except for --transport raw";

function ownerOf(paths: readonly string[]): number | undefined {
  for (const p of paths) {
    try {
      return statSync(p).uid;
    } catch {
      // Not there or not visible: try the next one.
    }
  }
  return undefined;
}

/** A TknockError for a refused permission, read-only or full filesystem on the store; undefined otherwise. */
export function storeAccessError(storePath: string, cause: unknown): TknockError | undefined {
  const code = errnoCode(cause);
  const dir = dirname(storePath);
  if (code !== "EACCES" && code !== "EPERM") return knownFsError(cause, "write", `store ${storePath}`);
  const refused = (cause as NodeJS.ErrnoException).path ?? storePath;
  const me = process.getuid?.();
  const owner = ownerOf([storePath, dir, refused]);
  let fix: string;
  if (owner !== undefined && me !== undefined && owner !== me) {
    const who = owner === 0 ? "root" : `uid ${owner}`;
    const home = homedir();
    fix = dir.startsWith(`${home}/`)
      ? `it belongs to ${who} (was tknock run with sudo?): take it back with sudo chown -R $(id -un) ${dir}`
      : `it belongs to ${who}: run tknock as that user, or use a store of your own (--store DIR or TKNOCK_HOME)`;
  } else if (owner !== undefined && owner === me) {
    fix = `it is yours but its mode forbids this: chmod 700 ${dir} && chmod 600 ${storePath}`;
  } else {
    fix = `use a store folder you may write (--store DIR or TKNOCK_HOME)`;
  }
  const on = refused === storePath ? "" : ` on ${refused}`;
  return new TknockError("TKNOCK_PERMISSION", `cannot use store ${storePath} (permission denied${on}): ${fix}`, ExitCode.usage, { cause });
}
