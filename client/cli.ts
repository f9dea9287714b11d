import { Command } from "commander";
import { configureProgram, type CliIo } from "../src/cli-io.js";
import { ExitCode } from "../src/errors.js";
import { registerAdd } from "./commands/add.js";
import { registerKnock } from "./commands/knock.js";
import { registerProfileCommands } from "./commands/profiles.js";
import { registerProxy } from "./commands/proxy.js";
import { registerSequence } from "./commands/sequence.js";
import { registerSet } from "./commands/set.js";
import { createContext } from "./context.js";
import { realDeps, type ClientDeps } from "./knock.js";

export const CLIENT_EXIT_CODES_HELP = `
A HOST that is also a command name (add, list, ...) is knocked with \`tknock knock HOST\`.
The store is ~/.config/tknock/profiles.json (mode 0600); --store DIR or TKNOCK_HOME=DIR moves it.

Exit codes (each error's code and fix: docs/errors.md):
  ${ExitCode.ok}  ok
  ${ExitCode.usage}  usage, profile or store problem
  ${ExitCode.network}  network error (could not send knocks or reach the host)
  ${ExitCode.notOpened}  knocked, but the port did not open in time (--wait, proxy), or this window's steps are used
     and --no-wait-window was given
  ${ExitCode.system}  system: the host failed (a filesystem full or read-only, a lock file that cannot be made)
  N  with -- COMMAND: the command's exit code (${ExitCode.commandNotRun}: it could not be started)`;

export function createClientCli(io: CliIo, deps: Partial<ClientDeps> = {}): Command {
  const ctx = createContext(io, { ...realDeps, ...deps });
  const program = configureProgram(new Command("tknock"), io)
    .description("time-based rotating port knocks: open a port on a tknock-server for your address")
    .usage("[options] HOST [knock options] [-- COMMAND ARGS...]\n       tknock [options] <command> ...")
    .version("0.1.0")
    .option("--store <dir>", "the folder of the profile store (default: $TKNOCK_HOME, else ~/.config/tknock)")
    .addHelpText("after", CLIENT_EXIT_CODES_HELP);
  registerKnock(program, ctx);
  registerAdd(program, ctx);
  registerProfileCommands(program, ctx);
  registerSet(program, ctx);
  registerSequence(program, io, (cmd) => ctx.openStore(cmd));
  registerProxy(program, ctx);
  return program;
}
