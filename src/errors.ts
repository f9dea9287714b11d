/**
 * Every error meant for a user carries a stable code (match on it in tests) and the exit code the CLI returns;
 * docs/errors.md lists every code with its exit code and fix (test/unit/error-codes.test.ts keeps it complete).
 * bin.ts files are the only place that turns one into a line on stderr and a process exit code.
 */
export const ExitCode = {
  ok: 0,
  usage: 1, // usage, config, profile or file problem: the fix is in the command, its files or its rights
  network: 2, // could not send knocks or reach the host
  notOpened: 3, // knocked, but the port did not open in time
  unhealthy: 4, // tknock-server status: daemon down, gate missing, capture failing or daemon stuck
  system: 5, // the host failed: nft or tcpdump failed or cannot run, a filesystem is full or read-only
  internal: 70, // a bug: an error no code describes (sysexits' EX_SOFTWARE)
  commandNotRun: 127, // the command after `--` could not be started, as shells and env(1) report it
} as const;

export type TknockCode = `TKNOCK_${string}`;

export class TknockError extends Error {
  constructor(
    readonly code: TknockCode,
    message: string,
    readonly exitCode: number = ExitCode.usage,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A profile, URI or config value that breaks the protocol's rules. */
export class InvalidProfileError extends TknockError {
  constructor(
    /** The profile field at fault, named as in the URI: secret, period, knocks, ports, exclude, proto. */
    readonly field: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super("TKNOCK_INVALID_PROFILE", message, ExitCode.usage, options);
  }
}

export class InvalidUriError extends TknockError {
  constructor(
    readonly parameter: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super("TKNOCK_INVALID_URI", message, ExitCode.usage, options);
  }
}

export class ConfigError extends TknockError {
  constructor(
    readonly issues: readonly string[],
    source: string,
  ) {
    super("TKNOCK_INVALID_CONFIG", `${source}: ${issues.join("; ")}`, ExitCode.usage);
  }
}

/** One line for the user; a stack only when TKNOCK_DEBUG=1. */
export function formatErrorForUser(err: unknown, debug: boolean): { line: string; exitCode: number } {
  if (err instanceof TknockError) {
    return { line: `error: ${err.message}${debug && err.stack ? `\n${err.stack}` : ""}`, exitCode: err.exitCode };
  }
  const detail = debug && err instanceof Error ? `\n${err.stack ?? err.message}` : "";
  return { line: `internal error (TKNOCK_DEBUG=1 for a stack trace)${detail}`, exitCode: ExitCode.internal };
}
