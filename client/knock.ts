import { setTimeout as sleepMs } from "node:timers/promises";
import type { Socket } from "node:net";
import { ExitCode, TknockError } from "../src/errors.js";
import type { Clock } from "../src/ports.js";
import { deriveSequence } from "../src/protocol/derive.js";
import { connectOnce, resolveTarget, type ConnectResult } from "./net.js";
import { runCommand } from "./run-command.js";
import { createRawSender } from "./senders/raw.js";
import { defaultTransport, transportProto, type KnockTarget, type Sender, type Transport } from "./senders/sender.js";
import { createTcpSender } from "./senders/tcp.js";
import { createUdpSender } from "./senders/udp.js";
import { chooseStep } from "./steps.js";
import type { ProfileStore, StoredProfile } from "./store.js";

/** Everything the client does to the outside world besides the store and the CliIo; tests pass fakes. */
export type ClientDeps = {
  resolve(host: string): Promise<KnockTarget>;
  openSender(transport: Transport, target: KnockTarget, firstPort: number): Promise<Sender>;
  connect(target: KnockTarget, port: number, timeoutMs: number): Promise<ConnectResult>;
  sleep(ms: number): Promise<void>;
  runCommand(argv: readonly string[]): Promise<number>;
};

export function openSender(transport: Transport, target: KnockTarget, firstPort: number): Promise<Sender> {
  if (transport === "raw") return createRawSender(target, firstPort);
  return Promise.resolve(transport === "udp" ? createUdpSender(target) : createTcpSender(target));
}

export const realDeps: ClientDeps = {
  resolve: resolveTarget,
  openSender,
  connect: connectOnce,
  sleep: (ms) => sleepMs(ms),
  runCommand,
};

export type KnockOptions = {
  /** Default: tcp for tcp profiles, udp for udp profiles. */
  readonly transport?: Transport;
  readonly delayMs: number;
  /** Added to the clock (may be negative): to test, or work around, a skewed clock. */
  readonly timeOffsetSeconds: number;
};

export type KnockReport = {
  readonly name: string;
  readonly target: KnockTarget;
  readonly transport: Transport;
  readonly step: number;
  readonly ports: readonly number[];
};

export type KnockContext = {
  readonly store: ProfileStore;
  readonly clock: Clock;
  readonly deps: ClientDeps;
  /** Informational lines (suppressed by --quiet, and by default in proxy). */
  readonly info: (line: string) => void;
  /** Lines the user should see even when quiet: waiting for a window, a clock that went back. */
  readonly notice: (line: string) => void;
};

/** The transport to use, or a usage error when it cannot carry this profile's protocol. */
export function pickTransport(entry: StoredProfile, wanted: Transport | undefined): Transport {
  const proto = entry.profile.proto;
  if (wanted === undefined) return defaultTransport(proto);
  if (transportProto(wanted) !== proto) {
    const fits = proto === "udp" ? "udp" : "tcp or raw";
    throw new TknockError("TKNOCK_USAGE", `--transport ${wanted} sends ${transportProto(wanted)} knocks but profile ${entry.name} knocks over ${proto}: use ${fits}`, ExitCode.usage);
  }
  return wanted;
}

/**
 * Knocks once: resolve the target, open the transport (so a missing privilege costs no step), pick the first step
 * this profile has not used, record it, then send one packet per port, delayMs apart.
 */
export async function knockProfile(ctx: KnockContext, entry: StoredProfile, opts: KnockOptions): Promise<KnockReport> {
  const { profile } = entry;
  const transport = pickTransport(entry, opts.transport);
  const target = await ctx.deps.resolve(entry.addr);
  const sender = await ctx.deps.openSender(transport, target, profile.open[0] ?? 1);
  try {
    const nowMs = (): number => ctx.clock.nowMs() + opts.timeOffsetSeconds * 1000;
    let step: number | undefined;
    // Two rounds suffice: after waiting for the next window, the step after the last one used is free.
    for (let round = 0; round < 3 && step === undefined; round++) {
      const lastStepUsed = ctx.store.get(entry.name)?.lastStepUsed ?? entry.lastStepUsed;
      const choice = chooseStep(nowMs(), profile.periodSeconds, lastStepUsed);
      if (choice.kind === "wait") {
        const waitMs = Math.max(0, choice.untilMs - nowMs());
        ctx.notice(`${entry.name}: this window's steps are used; waiting ${(waitMs / 1000).toFixed(1)} s for the next window`);
        await ctx.deps.sleep(waitMs);
        continue;
      }
      if (choice.reason === "clock-behind") {
        ctx.notice(
          `warning: ${entry.name} last knocked with step ${lastStepUsed}, ahead of this clock (step ${choice.step}): the clock moved back or --time-offset was used; knocking with step ${choice.step}`,
        );
      }
      step = choice.step;
    }
    if (step === undefined) throw new TknockError("TKNOCK_NO_STEP", `no unused step for ${entry.name}: is the clock moving?`, ExitCode.usage);
    const ports = deriveSequence(profile, step);
    ctx.store.recordStep(entry.name, step); // before sending: a crash after this never reuses the step
    for (const [i, port] of ports.entries()) {
      if (i > 0 && opts.delayMs > 0) await ctx.deps.sleep(opts.delayMs);
      await sender.knock(port);
    }
    ctx.info(`knocked ${entry.name} at ${target.address}: step ${step}, ${ports.length} ${transport} knocks`);
    return { name: entry.name, target, transport, step, ports };
  } finally {
    sender.close();
  }
}

/** How long the first connect attempt may take while polling: a dropped port never answers. */
export const POLL_ATTEMPT_MS = 5; // doubles per silent attempt (5, 10, 20, ... ms): a LAN open is caught within ms, a slow link still connects
export const POLL_ATTEMPT_MAX_MS = 2_400;
/** Pause after a refused attempt (the firewall rule may be moments away). */
export const POLL_RETRY_MS = 100;

export function notOpenedError(address: string, port: number, waitSeconds: number): TknockError {
  return new TknockError(
    "TKNOCK_NOT_OPENED",
    `knocked, but ${address} port ${port} did not open within ${waitSeconds} s. Check: the clocks (run \`date\` on both ends, enable NTP, or try --time-offset SECONDS); the address (the server opens the address it sees: behind NAT, that is your public address); that tknock-server runs`,
    ExitCode.notOpened,
  );
}

/**
 * Polls a port with TCP connects until one succeeds or waitSeconds pass. Returns the open connection (the caller
 * closes it, or uses it: proxy) and how long the port took to open.
 */
export async function waitForOpen(
  ctx: Pick<KnockContext, "clock" | "deps">,
  target: KnockTarget,
  port: number,
  waitSeconds: number,
): Promise<{ socket: Socket; elapsedMs: number }> {
  const startMs = ctx.clock.nowMs();
  const deadlineMs = startMs + waitSeconds * 1000;
  let lastError: string | undefined;
  let attemptMs = POLL_ATTEMPT_MS;
  for (;;) {
    const remainingMs = deadlineMs - ctx.clock.nowMs();
    if (remainingMs <= 0) break;
    const r = await ctx.deps.connect(target, port, Math.min(attemptMs, remainingMs));
    // A link slower than one attempt would never connect: each silent attempt gets longer, up to a cap.
    if (r.kind === "timeout") attemptMs = Math.min(attemptMs * 2, POLL_ATTEMPT_MAX_MS);
    if (r.kind === "open") return { socket: r.socket, elapsedMs: ctx.clock.nowMs() - startMs };
    lastError = r.kind === "error" ? r.code : undefined;
    if (r.kind !== "timeout") await ctx.deps.sleep(Math.max(0, Math.min(POLL_RETRY_MS, deadlineMs - ctx.clock.nowMs())));
  }
  if (lastError !== undefined && lastError !== "ETIMEDOUT") {
    throw new TknockError("TKNOCK_NETWORK", `cannot reach ${target.address} port ${port}: ${lastError}`, ExitCode.network);
  }
  throw notOpenedError(target.address, port, waitSeconds);
}
