import { Command, CommanderError, InvalidArgumentError } from "commander";
import { ExitCode, formatErrorForUser } from "./errors.js";
import { userErrorOf } from "./fs-errors.js";
import { systemClock, type Clock } from "./ports.js";

/** What a CLI may touch of the outside world; tests inject their own. */
export type CliIo = {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly clock: Clock;
  /** Standard streams for commands that pipe (client `proxy`) or read input. */
  readonly stdin: NodeJS.ReadableStream;
  readonly stdout: NodeJS.WritableStream;
};

export function processIo(): CliIo {
  // A reader that went away (`tknock-server list | head`) gets nothing more; any other write error still ends us.
  process.stdout.on("error", (err: NodeJS.ErrnoException) => {
    if (err.code !== "EPIPE") throw err;
  });
  return {
    out: (t) => process.stdout.write(t.endsWith("\n") ? t : `${t}\n`),
    err: (t) => process.stderr.write(t.endsWith("\n") ? t : `${t}\n`),
    env: process.env,
    clock: systemClock,
    stdin: process.stdin,
    stdout: process.stdout,
  };
}

/** Makes commander report through io and throw instead of exiting, so one place maps errors to exit codes. */
export function configureProgram(program: Command, io: CliIo): Command {
  program.exitOverride().configureOutput({
    writeOut: (s) => io.out(s),
    writeErr: (s) => io.err(s),
  });
  program.showHelpAfterError("(run with --help for usage)");
  return program;
}

export type RunCliOptions = {
  /** The fix printed for a file the user may not touch that no command mapped (default: run as root or with sudo). */
  readonly permissionFix?: string;
};

/** Runs a CLI to completion and returns the exit code; the only place errors become text and codes. */
export async function runCli(program: Command, argv: readonly string[], io: CliIo, options: RunCliOptions = {}): Promise<number> {
  try {
    await program.parseAsync(argv, { from: "user" });
    return ExitCode.ok;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version exit with 0; usage errors were already printed by commander.
      return err.exitCode === 0 ? ExitCode.ok : ExitCode.usage;
    }
    if (err instanceof ExitWith) return err.exitCode;
    const { line, exitCode } = formatErrorForUser(userErrorOf(err, options.permissionFix), io.env["TKNOCK_DEBUG"] === "1");
    io.err(line);
    return exitCode;
  }
}

/** Thrown by a command that finished and wants a particular exit code (e.g. a child command's). */
export class ExitWith extends Error {
  constructor(readonly exitCode: number) {
    super(`exit ${exitCode}`);
  }
}

/** Parses a non-negative integer CLI option value or throws a usage error naming the option. */
export function parseIntOption(name: string, min: number, max: number) {
  return (value: string): number => {
    if (!/^-?\d+$/.test(value.trim()) || Number(value) < min || Number(value) > max) {
      throw new InvalidArgumentError(`${name} must be an integer from ${min} to ${max}.`);
    }
    return Number(value);
  };
}

/** Columns padded to their widest cell (the first row is the header); the last column is not padded. */
export function formatTable(rows: readonly (readonly string[])[]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length))) ?? [];
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join("  ")).join("\n");
}
