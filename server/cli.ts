import { Command } from "commander";
import { configureProgram, type CliIo } from "../src/cli-io.js";
import { ExitCode } from "../src/errors.js";
import { DEFAULT_CONFIG_PATH } from "./config/schema.js";
import { registerClientCommands } from "./commands/clients.js";
import { registerInit } from "./commands/init.js";
import { registerRun } from "./commands/run.js";
import { registerFirewall } from "./commands/firewall.js";
import { registerReplays } from "./commands/replays.js";
import { registerStatus } from "./commands/status.js";

export function createServerCli(io: CliIo): Command {
  const program = configureProgram(new Command("tknock-server"), io)
    .description("tknock server: keeps ports closed until a client knocks the current window's sequence")
    .version("0.1.0")
    .option("--config <file>", "config file", DEFAULT_CONFIG_PATH)
    .addHelpText(
      "after",
      `
Exit codes (each error's code and fix: docs/errors.md): ${ExitCode.ok} ok, ${ExitCode.usage} usage/config/file/rights problem
(run: a failed start-up check, or another daemon runs), ${ExitCode.unhealthy} status: not protecting (daemon down or stuck,
gate missing, capture failing), ${ExitCode.system} system: nft or tcpdump failed or is missing, a filesystem is full or
read-only, the state file cannot be written; ${ExitCode.internal} internal error.
Files: config ${DEFAULT_CONFIG_PATH}; clients.json (secrets, mode 600; a symlink is kept) next to it; state in /var/lib/tknock.
Run as root (or with sudo): the files are root's and the gate needs CAP_NET_ADMIN.`,
    );
  registerInit(program, io);
  registerClientCommands(program, io);
  registerRun(program, io);
  registerStatus(program, io);
  registerReplays(program, io);
  registerFirewall(program, io);
  return program;
}
