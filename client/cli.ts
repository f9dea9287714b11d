import { Command } from "commander";
import { configureProgram, type CliIo } from "../src/cli-io.js";
import { registerSequence } from "./commands/sequence.js";

export const CLIENT_EXIT_CODES_HELP = `
Exit codes:
  0  ok
  1  usage, profile or store problem
  2  network error (could not send knocks or reach the host)
  3  knocked, but the port did not open in time (--wait)`;

export function createClientCli(io: CliIo): Command {
  const program = configureProgram(new Command("tknock"), io)
    .description("time-based rotating port knocks: open a port on a tknock-server for your address")
    .version("0.1.0")
    .addHelpText("after", CLIENT_EXIT_CODES_HELP);
  registerSequence(program, io);
  return program;
}
