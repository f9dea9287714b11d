import { InvalidArgumentError, Option, type Command } from "commander";
import { ExitWith, parseIntOption } from "../../src/cli-io.js";
import type { ClientContext } from "../context.js";
import { parsePort, parseSecondsOption, parseTransport } from "../context.js";
import { DEFAULT_PROBE_MS, knockFlow, type KnockContext, type KnockOptions, type PortCheck } from "../knock.js";
import { parseHexPayload } from "../probe.js";
import type { Transport } from "../senders/sender.js";
import { MAX_TIME_OFFSET_SECONDS, type ProfileStore, type StoredProfile } from "../store.js";

export const DEFAULT_WAIT_SECONDS = 10;
export const MAX_WAIT_SECONDS = 600;

/**
 * Knocks go back to back: the whole sequence is handed to the kernel in one event-loop turn (Sender.knockAll), in
 * order on the wire, microseconds apart. The shorter the sequence, the fewer spoofed knocks can land inside it (the
 * server tolerates a few: docs/protocol.md section 6); a 10 ms default let 30 spoofed packets a second lock a
 * client out.
 */
export const DEFAULT_DELAY_MS = 0;

export type KnockFlags = {
  transport?: Transport;
  delay: number;
  timeOffset?: number;
  waitWindow: boolean;
  probeTimeout: number;
  probeUdp?: Buffer;
  spa?: boolean;
  open?: number[];
  allowIp?: string;
  nat?: boolean;
};

export const parseTimeOffset = parseIntOption("--time-offset", -MAX_TIME_OFFSET_SECONDS, MAX_TIME_OFFSET_SECONDS);

function parseProbeUdp(value: string): Buffer {
  const payload = parseHexPayload(value);
  if (payload === undefined) throw new InvalidArgumentError("--probe-udp takes the payload as hex digits (1 to 512 bytes), e.g. 00 or 38000000");
  return payload;
}

/** The options `tknock HOST` and `tknock proxy` share. */
export function addKnockOptions(cmd: Command): Command {
  return cmd
    .addOption(
      new Option(
        "--transport <transport>",
        "tcp: connect and abort (default for tcp profiles); udp: one datagram (udp profiles); raw: crafted SYN (root)",
      ).argParser(parseTransport),
    )
    .option(
      "--delay <ms>",
      "milliseconds between knocks (default 0: back to back, still in order; raise it on a path that reorders packets)",
      parseIntOption("--delay", 0, 10_000),
      DEFAULT_DELAY_MS,
    )
    .option(
      "--time-offset <seconds>",
      "add this to the clock for this knock only (may be negative); `tknock set NAME --time-offset` stores it",
      parseTimeOffset,
    )
    .option("--no-wait-window", "when this window's steps are used, exit 3 at once instead of waiting for the next window")
    .option(
      "--probe-timeout <ms>",
      "how long the look at the port before knocking may take (0: always knock)",
      parseIntOption("--probe-timeout", 0, 10_000),
      DEFAULT_PROBE_MS,
    )
    .option("--probe-udp <hex>", "the protected port is a UDP service: check it by sending this payload and waiting for any reply", parseProbeUdp)
    .option("--spa", "knock with one SPA packet (a profile enrolled with --mode both knocks a sequence by default)")
    .option("--open <port...>", "SPA: open only these of the profile's ports (default: all of them)", collectPorts)
    .option("--allow-ip <address>", "SPA: open this address instead of this host's own (the server sees you as it)")
    .option("--nat", "SPA: open the address the packet arrives from, as the server sees it (the server must allow it)");
}

function collectPorts(value: string, previous: number[] | undefined): number[] {
  const port = parsePort(value);
  return [...(previous ?? []), port];
}

export function knockOptionsFrom(flags: KnockFlags): KnockOptions {
  return {
    ...(flags.transport !== undefined ? { transport: flags.transport } : {}),
    delayMs: flags.delay,
    ...(flags.timeOffset !== undefined ? { timeOffsetSeconds: flags.timeOffset } : {}),
    noWaitWindow: !flags.waitWindow,
    ...(flags.spa === true || flags.open !== undefined || flags.allowIp !== undefined || flags.nat === true
      ? {
          spa: {
            force: flags.spa === true,
            nat: flags.nat === true,
            ...(flags.open !== undefined ? { open: [...new Set(flags.open)] } : {}),
            ...(flags.allowIp !== undefined ? { allowIp: flags.allowIp } : {}),
          },
        }
      : {}),
  };
}

export function portCheckFrom(flags: KnockFlags, port: number): PortCheck {
  return { port, probe: flags.probeUdp !== undefined ? { kind: "udp", payload: flags.probeUdp } : { kind: "tcp" }, probeMs: flags.probeTimeout };
}

/** The port --wait and -- COMMAND look at: the first port asked for with --open (SPA), else the profile's first. */
export function protectedPort(entry: StoredProfile, flags?: Pick<KnockFlags, "open">): number {
  return flags?.open?.[0] ?? entry.profile.open[0] ?? 22;
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
      new Option("--wait [seconds]", `look at the first open port first (no knock if it answers); after knocking, wait until it answers`)
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
  tknock myhost --wait --probe-udp 00   a UDP service: it answers a one-byte datagram
  tknock knock list                  knock a profile named like a subcommand

With --wait or -- COMMAND, tknock first looks at the port (--probe-timeout, 150 ms) and knocks only when it
does not answer. Knocks of one profile take turns (a lock in the store folder).`,
    )
    .action(async (host: string | undefined, command: string[], flags: KnockCommandFlags, self: Command) => {
      if (host === undefined) {
        program.help({ error: true });
      }
      const store = ctx.openStore(self);
      const kctx = knockContext(ctx, store, flags.quiet === true);
      const entry = store.find(host);
      const result = await knockFlow(kctx, entry, {
        ...knockOptionsFrom(flags),
        probeFirst: flags.wait !== undefined || command.length > 0,
        ...(flags.wait !== undefined ? { waitSeconds: flags.wait } : {}),
        check: portCheckFrom(flags, protectedPort(entry, flags)),
      });
      result.socket?.destroy();
      if (command.length > 0) {
        const code = await ctx.deps.runCommand(command);
        if (code !== 0) throw new ExitWith(code);
      }
    });
}
