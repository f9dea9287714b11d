import { createServerCli } from "../../server/cli.js";
import { runCli } from "../../src/cli-io.js";
import { TknockError } from "../../src/errors.js";
import { memoryIo } from "./memory-io.js";

/** One `tknock-server` run in memory: its exit code, what it printed, and what the command threw, if anything. */
export type ServerRun = { code: number; out: string[]; err: string[]; error: unknown };

/** Runs `tknock-server --config CONFIG ARGS` through runCli with a fixed clock. */
export async function runServerCli(configPath: string, args: readonly string[], nowMs: number): Promise<ServerRun> {
  const { io, out, err } = memoryIo({ nowMs });
  const program = createServerCli(io);
  let error: unknown;
  // runCli turns the error into a line and an exit code; the test also wants the error itself, for its code.
  const parseAsync = program.parseAsync.bind(program);
  program.parseAsync = async (...a: Parameters<typeof parseAsync>) => {
    try {
      return await parseAsync(...a);
    } catch (e) {
      error = e;
      throw e;
    }
  };
  const code = await runCli(program, ["--config", configPath, ...args], io);
  return { code, out, err, error };
}

/** The code of the TknockError a run threw; undefined when it threw none. */
export function errorCodeOf(run: ServerRun): string | undefined {
  return run.error instanceof TknockError ? run.error.code : undefined;
}
