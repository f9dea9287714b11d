/**
 * Checks made before a command writes anything, so that a command that cannot finish fails before its first
 * write instead of leaving half its files behind (`tknock-server init` once wrote two files and then failed on
 * the third). access(2) answers for the real uid, which is who runs these commands.
 */
import { accessSync, constants, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { ExitCode, TknockError } from "../src/errors.js";
import { defaultPermissionFix, errnoCode, fsError } from "../src/fs-errors.js";

/** The path itself or its closest ancestor that exists. */
function nearestExisting(path: string, what: string): { path: string; isDir: boolean } {
  let current = resolve(path);
  for (;;) {
    try {
      return { path: current, isDir: statSync(current).isDirectory() };
    } catch (cause) {
      const code = errnoCode(cause);
      const parent = dirname(current);
      if (code !== "ENOENT" || parent === current) {
        if (code === "ENOTDIR")
          throw new TknockError(
            "TKNOCK_NOT_A_DIRECTORY",
            `cannot create ${what}: a part of ${path} is a file, not a directory: choose another path`,
            ExitCode.usage,
            { cause },
          );
        throw fsError(cause, "read", `${what} (looking at ${current})`);
      }
      current = parent;
    }
  }
}

function checkWritableDir(dir: string, target: string, what: string): void {
  try {
    accessSync(dir, constants.W_OK | constants.X_OK);
  } catch (cause) {
    const code = errnoCode(cause);
    if (code === "EACCES" || code === "EPERM") {
      throw new TknockError(
        "TKNOCK_PERMISSION",
        `cannot write ${what} ${target}: ${dir} is not writable for this user: ${defaultPermissionFix()}`,
        ExitCode.usage,
        { cause },
      );
    }
    throw fsError(cause, "write", `${what} ${target}`);
  }
}

/** Throws unless the directory exists and is writable, or can be created (its closest existing ancestor is writable). */
export function checkCanCreateDir(dir: string, what: string): void {
  const found = nearestExisting(dir, `${what} ${dir}`);
  if (!found.isDir) {
    throw new TknockError(
      "TKNOCK_NOT_A_DIRECTORY",
      `cannot create ${what} ${dir}: ${found.path} is a file, not a directory: choose another path`,
      ExitCode.usage,
    );
  }
  checkWritableDir(found.path, dir, what);
}

/**
 * Throws unless `file` can be written: replaced by a rename (`inPlace` false: the directory must be writable) or
 * overwritten where it is (`inPlace` true: an existing file must itself be writable).
 */
export function checkCanWriteFile(file: string, what: string, opts: { inPlace: boolean }): void {
  const found = nearestExisting(file, `${what} ${file}`);
  if (found.path === resolve(file)) {
    if (found.isDir) throw new TknockError("TKNOCK_NOT_A_FILE", `cannot write ${what} ${file}: it is a directory: give a file name`, ExitCode.usage);
    if (opts.inPlace) {
      try {
        accessSync(file, constants.W_OK);
      } catch (cause) {
        throw fsError(cause, "write", `${what} ${file}`);
      }
      return;
    }
    checkWritableDir(dirname(found.path), file, what);
    return;
  }
  if (!found.isDir) {
    throw new TknockError(
      "TKNOCK_NOT_A_DIRECTORY",
      `cannot write ${what} ${file}: ${found.path} is a file, not a directory: choose another path`,
      ExitCode.usage,
    );
  }
  checkWritableDir(found.path, file, what);
}
