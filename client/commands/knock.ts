import { Option, type Command } from "commander";
import { ExitWith, parseIntOption } from "../../src/cli-io.js";
import type { ClientContext } from "../context.js";
import { parseSecondsOption, parseTransport } from "../context.js";
import { knockProfile, waitForOpen, type KnockContext, type KnockOptions } from "../knock.js";
import type { Transport } from "../senders/sender.js";
import type { ProfileStore } from "../store.js";

export const DEFAULT_WAIT_SECONDS = 10;
export const MAX_WAIT_SECONDS = 600;

/**
 * Knocks go back to back: each is its own connect() one event-loop turn after the last (about 0.3 ms apart in the
 * lab), in order on the wire. The shorter the sequence, the fewer spoofed knocks can land inside it (the server
 * tolerates a few: docs/protocol.md section 6); a 10 ms default let 30 spoofed packets a second lock a client out.
 */
export const DEFAULT_DELAY_MS = 0;

export type KnockFlags = { transport?: Transport; delay: number; timeOffset: number };

/** The options `tknock HOST` and `tknock proxy` share. */
export function addKnockOptions(cmd: Command): Command {
  return cmd
    .addOption(
      new Option("--transport <transport>", "tcp: connect and abort (default for tcp profiles); udp: one datagram (udp profiles); raw: crafted SYN (root)").argParser(
        parseTransport,
      ),
    )
    .option("--delay <ms>", "milliseconds between knocks (default 0: back to back, still in order; raise it on a path that reorders packets)", parseIntOption("--delay", 0, 10_000), DEFAULT_DELAY_MS)
    .option("--time-offset <seconds>", "add this to the clock (may be negative): for a skewed clock", parseIntOption("--time-offset", -86_400, 86_400), 0);
}

export function knockOptionsFrom(flags: KnockFlags): KnockOptions {
  return { ...(flags.transport !== undefined ? { transport: flags.transport } : {}), delayMs: flags.delay, timeOffsetSeconds: flags.timeOffset };
}

export function knockContext(ctx: ClientContext, store: ProfileStore, quiet: boolean): KnockContext {
  return {
    store,
    clock: ctx.io.clock,
    deps: ctx.deps,
    info: quiet ? () => {} : (line) => ctx.io.err(line),
    notice: (line) => ctx.io.err(line),
  };
}

type KnockCommandFlags = KnockFlags & { wait?: number; quiet?: boolean };

export function registerKnock(program: Command, ctx: ClientContext): void {
  const cmd = program
    .command("knock", { isDefault: true })
    .description("knock (the default command: `tknock HOST` is `tknock knock HOST`)")
    .argument("[host]", "a profile name, or the host or address of a profile")
    .argument("[command...]", "after --: a command to run once knocked; its exit code becomes tknock's");
  addKnockOptions(cmd)
    .addOption(
      new Option("--wait [seconds]", `after knocking, wait until the first open port accepts a connection`)
        .preset(String(DEFAULT_WAIT_SECONDS))
        .argParser(parseSecondsOption("--wait", 0.1, MAX_WAIT_SECONDS)),
    )
    .option("-q, --quiet", "print only errors and warnings")
    .addHelpText(
      "after",
      `
Examples:
  tknock myhost                      knock
  tknock myhost --wait -- ssh me@myhost
  tknock knock list                  knock a profile named like a subcommand`,
    )
    .action(async (host: string | undefined, command: string[], flags: KnockCommandFlags, self: Command) => {
      if (host === undefined) {
        program.help({ error: true });
      }
      const store = ctx.openStore(self);
      const kctx = knockContext(ctx, store, flags.quiet === true);
      const entry = store.find(host);
      const report = await knockProfile(kctx, entry, knockOptionsFrom(flags));
      if (flags.wait !== undefined) {
        const port = entry.profile.open[0] ?? 22;
        const { socket, elapsedMs } = await waitForOpen(kctx, report.target, port, flags.wait);
        socket.destroy();
        kctx.info(`${report.target.address} port ${port} open after ${Math.round(elapsedMs)} ms`);
      }
      if (command.length > 0) {
        const code = await ctx.deps.runCommand(command);
        if (code !== 0) throw new ExitWith(code);
      }
    });
}
