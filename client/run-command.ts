import { spawn } from "node:child_process";
import { constants } from "node:os";
import { ExitCode, TknockError } from "../src/errors.js";

/**
 * Runs the command after `--` with this terminal, and returns its exit code (128+N when killed by signal N, as
 * shells report it). The parent ignores Ctrl-C while it runs: the terminal delivers it to the child too, and the
 * child decides. SIGTERM and SIGHUP sent to tknock alone are passed on.
 */
export function runCommand(argv: readonly string[]): Promise<number> {
  const [cmd, ...args] = argv;
  if (cmd === undefined) return Promise.resolve(0);
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: "inherit" });
    const forward = (sig: NodeJS.Signals) => (): void => {
      child.kill(sig);
    };
    const handlers: [NodeJS.Signals, () => void][] = [
      ["SIGINT", () => {}],
      ["SIGTERM", forward("SIGTERM")],
      ["SIGHUP", forward("SIGHUP")],
    ];
    for (const [sig, h] of handlers) process.on(sig, h);
    const cleanup = (): void => {
      for (const [sig, h] of handlers) process.off(sig, h);
    };
    child.once("error", (err: NodeJS.ErrnoException) => {
      cleanup();
      reject(new TknockError("TKNOCK_COMMAND_NOT_RUN", `cannot run ${cmd}: ${err.code ?? err.message}`, ExitCode.commandNotRun, { cause: err }));
    });
    child.once("exit", (code, signal) => {
      cleanup();
      resolve(code ?? 128 + (signal !== null ? (constants.signals[signal] ?? 0) : 0));
    });
  });
}
