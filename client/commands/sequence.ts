import type { Command } from "commander";
import type { CliIo } from "../../src/cli-io.js";
import { parseIntOption } from "../../src/cli-io.js";
import { ExitCode, TknockError } from "../../src/errors.js";
import { formatSequence } from "../../src/protocol/sequence-text.js";
import { parseProfileUri } from "../../src/protocol/profile-uri.js";
import type { KnockProfile } from "../../src/protocol/profile.js";
import type { ProfileStore } from "../store.js";

export type SequenceOptions = { uri?: string; at?: number; json?: boolean };

/** Prints the step and ports of a profile at a time: the shell's way to check the protocol vectors. */
export function printSequence(io: CliIo, profile: KnockProfile, atUnixSeconds: number | undefined, json: boolean): void {
  io.out(formatSequence(profile, atUnixSeconds === undefined ? io.clock.nowMs() : atUnixSeconds * 1000, json));
}

/** openStore is only called for a profile name: `sequence --uri` never touches (or creates) a store. */
export function registerSequence(program: Command, io: CliIo, openStore?: (cmd: Command) => ProfileStore): void {
  program
    .command("sequence")
    .description("print the knock sequence of a profile for the current (or a given) time")
    .argument("[name]", "a stored profile (name or host)")
    .option("--uri <uri>", "an otpauth:// enrolment URI")
    .option("--at <unixSeconds>", "the time, in Unix seconds, 0 to 2^40 (default: now)", parseIntOption("--at", 0, 2 ** 40))
    .option("--json", 'print {"step":N,"ports":[...],"proto":"tcp"}')
    .action((name: string | undefined, opts: SequenceOptions, self: Command) => {
      if (name !== undefined && opts.uri !== undefined) {
        throw new TknockError("TKNOCK_USAGE", "give a profile name or --uri URI, not both", ExitCode.usage);
      }
      if (opts.uri !== undefined) {
        printSequence(io, parseProfileUri(opts.uri), opts.at, opts.json === true);
        return;
      }
      if (name === undefined || openStore === undefined) {
        throw new TknockError("TKNOCK_USAGE", "sequence needs a profile NAME or --uri URI", ExitCode.usage);
      }
      printSequence(io, openStore(self).find(name).profile, opts.at, opts.json === true);
    });
}
