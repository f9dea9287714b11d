import type { Command } from "commander";
import { ExitCode, TknockError } from "../../src/errors.js";
import type { ClientContext } from "../context.js";
import { parseTimeOffset } from "./knock.js";

/** `tknock set NAME --time-offset S`: local settings of a stored profile (the URI itself never changes here). */
export function registerSet(program: Command, ctx: ClientContext): void {
  program
    .command("set")
    .description("change a stored profile's local settings")
    .argument("<name>", "a profile name, or the host or address of a profile")
    .option("--time-offset <seconds>", "add this to the clock for every knock of this profile (0 removes it)", parseTimeOffset)
    .action(async (name: string, flags: { timeOffset?: number }, self: Command) => {
      if (flags.timeOffset === undefined) throw new TknockError("TKNOCK_USAGE", "set needs a setting to change: --time-offset SECONDS", ExitCode.usage);
      const store = ctx.openStore(self);
      const entry = store.find(name);
      await store.setTimeOffset(entry.name, flags.timeOffset);
      ctx.io.out(flags.timeOffset === 0 ? `${entry.name}: no clock offset` : `${entry.name}: every knock adds ${flags.timeOffset} s to this clock`);
    });
}
