/**
 * File-system errors as one line that names the file and the fix. A refused permission is the common case on a
 * server (a sysadmin forgot sudo): it must never surface as "internal error" nor suggest a chown when the fix is
 * to be root.
 */
import { ExitCode, TknockError } from "./errors.js";

export type FsAction = "read" | "write" | "create" | "lock" | "open" | "remove" | "access";

export const RUN_AS_ROOT = "run as root or with sudo";

/** EACCES, EPERM, EROFS: the process is not allowed to do this here. */
export function isPermissionError(err: unknown): boolean {
  const code = errnoCode(err);
  return code === "EACCES" || code === "EPERM" || code === "EROFS";
}

export function errnoCode(err: unknown): string | undefined {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === "string" ? code : undefined;
}

export function isRoot(): boolean {
  return process.getuid?.() === 0;
}

/**
 * The fix for a refused permission when the caller has none better: root is not refused by modes, so as root the
 * cause is an attribute (chattr +i), a mount option or a security module, and "use sudo" would be wrong.
 */
export function defaultPermissionFix(): string {
  return isRoot() ? "refused even to root: check its attributes (lsattr) and how its filesystem is mounted" : RUN_AS_ROOT;
}

/**
 * A TknockError for the errors a user can fix (permissions, read-only or full filesystem), else undefined.
 * `what` names the file as the user knows it ("clients file /etc/tknock/clients.json"); `permissionFix` replaces
 * the default advice (the client's own store is not fixed by becoming root).
 */
export function knownFsError(err: unknown, action: FsAction, what: string, permissionFix?: string): TknockError | undefined {
  const code = errnoCode(err);
  const options = { cause: err };
  if (code === "EACCES" || code === "EPERM") {
    return new TknockError(
      "TKNOCK_PERMISSION",
      `cannot ${action} ${what} (permission denied): ${permissionFix ?? defaultPermissionFix()}`,
      ExitCode.usage,
      options,
    );
  }
  if (code === "EROFS") {
    return new TknockError(
      "TKNOCK_READ_ONLY_FS",
      `cannot ${action} ${what}: its filesystem is read-only: remount it read-write or choose another path`,
      ExitCode.system,
      options,
    );
  }
  if (code === "ENOSPC" || code === "EDQUOT") {
    return new TknockError(
      "TKNOCK_NO_SPACE",
      `cannot ${action} ${what}: no space left on its filesystem (${code}): free some space and try again`,
      ExitCode.system,
      options,
    );
  }
  return undefined;
}

/**
 * The error for a file that could not be read. `what` names it with its path ("clients file /etc/..."). A file that
 * does not exist is TKNOCK_FILE_MISSING when the caller says how to make it (`missingFix`); otherwise a missing
 * file is just unreadable.
 */
export function readFileError(cause: unknown, what: string, opts: { missingFix?: string; permissionFix?: string } = {}): TknockError {
  const code = errnoCode(cause);
  if (code === "ENOENT" && opts.missingFix !== undefined) {
    return new TknockError("TKNOCK_FILE_MISSING", `${what} does not exist: ${opts.missingFix}`, ExitCode.usage, { cause });
  }
  return (
    knownFsError(cause, "read", what, opts.permissionFix) ??
    new TknockError("TKNOCK_FILE_UNREADABLE", `${what} cannot be read (${code ?? "error"}): check the path and its permissions`, ExitCode.usage, { cause })
  );
}

/** knownFsError, or a generic one-line error with the errno code for anything else. */
export function fsError(err: unknown, action: FsAction, what: string, permissionFix?: string): TknockError {
  if (err instanceof TknockError) return err;
  return (
    knownFsError(err, action, what, permissionFix) ??
    new TknockError(
      "TKNOCK_FILE_ERROR",
      `cannot ${action} ${what} (${errnoCode(err) ?? (err instanceof Error ? err.message : "error")}): check the path and its permissions`,
      ExitCode.usage,
      { cause: err },
    )
  );
}

/**
 * A TknockError whose cause is a refused permission but whose message gives no fix (modules that word file
 * errors generically), reworded with the fix; anything else unchanged.
 */
export function withPermissionFix(err: unknown, action: FsAction, what: string, permissionFix?: string): unknown {
  if (err instanceof TknockError && err.code !== "TKNOCK_PERMISSION" && isPermissionError(err.cause)) {
    return knownFsError(err.cause, action, what, permissionFix) ?? err;
  }
  return err;
}

const SYSCALL_ACTIONS: Readonly<Record<string, FsAction>> = {
  open: "open",
  read: "read",
  scandir: "read",
  stat: "read",
  lstat: "read",
  readlink: "read",
  access: "access",
  write: "write",
  rename: "write",
  copyfile: "write",
  chmod: "write",
  chown: "write",
  utime: "write",
  mkdir: "create",
  symlink: "create",
  link: "create",
  unlink: "remove",
  rmdir: "remove",
  rm: "remove",
};

/**
 * The last net under the CLIs: a raw file-system error (it carries syscall and path) that no command mapped
 * becomes one line naming the path and the fix instead of "internal error". Other errors pass through.
 */
export function userErrorOf(err: unknown, permissionFix?: string): unknown {
  if (err instanceof TknockError || !(err instanceof Error)) return err;
  const e = err as NodeJS.ErrnoException;
  if (typeof e.path !== "string") return err;
  return knownFsError(err, SYSCALL_ACTIONS[e.syscall ?? ""] ?? "access", e.path, permissionFix) ?? err;
}
