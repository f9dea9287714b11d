import type { Socket } from "node:net";
import { join } from "node:path";
import { ExitCode, TknockError } from "../src/errors.js";
import { withPidLock } from "./pid-lock.js";
import type { Clock } from "../src/ports.js";
import { deriveSequence } from "../src/protocol/derive.js";
import { stepAt } from "../src/protocol/window.js";
import type { ConnectResult } from "./net.js";
import type { ProbeResult, ProbeSpec } from "./probe.js";
import { defaultTransport, transportProto, type KnockTarget, type Sender, type Transport } from "./senders/sender.js";
import { chooseStep, recordKind } from "./steps.js";
import type { ProfileStore, StoredProfile } from "./store.js";
import { checkSpaRequest, sendSpa, usesSpa, type SpaRequest } from "./spa-knock.js";

/** Everything the client does to the outside world besides the store and the CliIo; tests pass fakes. */
export type ClientDeps = {
  resolve(host: string): Promise<KnockTarget>;
  openSender(transport: Transport, target: KnockTarget, firstPort: number): Promise<Sender>;
  connect(target: KnockTarget, port: number, timeoutMs: number): Promise<ConnectResult>;
  probeUdp(target: KnockTarget, port: number, payload: Buffer, timeoutMs: number): Promise<ProbeResult>;
  sleep(ms: number): Promise<void>;
  runCommand(argv: readonly string[]): Promise<number>;
  /** One SPA datagram (client/senders/spa-datagram.ts). */
  sendSpa(target: KnockTarget, port: number, build: (localAddress: string) => Buffer): Promise<{ localAddress: string }>;
};

export async function openSender(transport: Transport, target: KnockTarget, firstPort: number): Promise<Sender> {
  if (transport === "raw") return (await import("./senders/raw.js")).createRawSender(target, firstPort);
  return transport === "udp" ? (await import("./senders/udp.js")).createUdpSender(target) : (await import("./senders/tcp.js")).createTcpSender(target);
}

/**
 * The real network, process and timers. Each part is imported when first used: `tknock --help` or `sequence`
 * must not pay for Node's net, dgram, dns and child_process modules (a few ms each at start).
 */
export const realDeps: ClientDeps = {
  resolve: async (host) => (await import("./net.js")).resolveTarget(host),
  openSender,
  connect: async (target, port, timeoutMs) => (await import("./net.js")).connectOnce(target, port, timeoutMs),
  probeUdp: async (target, port, payload, timeoutMs) => (await import("./probe-udp.js")).udpExchange(target, port, payload, timeoutMs),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
  runCommand: async (argv) => (await import("./run-command.js")).runCommand(argv),
  sendSpa: async (target, port, build) => (await import("./senders/spa-datagram.js")).sendSpaDatagram(target, port, build),
};

export type KnockOptions = {
  /** Default: tcp for tcp profiles, udp for udp profiles. */
  readonly transport?: Transport;
  readonly delayMs: number;
  /** A one-off clock offset for this knock (--time-offset); when absent, the profile's stored offset applies. */
  readonly timeOffsetSeconds?: number;
  /** When this window's steps are used: fail with exit 3 at once instead of waiting for the next window. */
  readonly noWaitWindow?: boolean;
  /** SPA flags (--spa, --open, --allow-ip, --nat); an SPA profile knocks by SPA without them. */
  readonly spa?: SpaRequest;
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

/** How a command checks the protected port: which port, how, and how long one look may take. */
export type PortCheck = {
  readonly port: number;
  readonly probe: ProbeSpec;
  /** One look at the port before knocking; 0 never looks first (always knock). */
  readonly probeMs: number;
};

export type FlowOptions = KnockOptions & {
  /** Look at the port first and knock only if it is closed (--wait, -- COMMAND, proxy). */
  readonly probeFirst: boolean;
  /** After knocking, wait this long for the port to open (--wait, proxy); absent: do not wait. */
  readonly waitSeconds?: number;
  readonly check: PortCheck;
};

/** What a knock command ended with: the knock it sent (if any), and what the port looked like. */
export type FlowResult = {
  readonly target: KnockTarget;
  readonly knock?: KnockReport;
  /** open: connected (socket given for TCP); reachable: the gate lets us in, nothing answers; unchecked: not looked at. */
  readonly state: "open" | "reachable" | "unchecked";
  readonly socket?: Socket;
  readonly elapsedMs?: number;
};

/** The transport to use, or a usage error when it cannot carry this profile's protocol. */
export function pickTransport(entry: StoredProfile, wanted: Transport | undefined): Transport {
  const proto = entry.profile.proto;
  if (wanted === undefined) return defaultTransport(proto);
  if (transportProto(wanted) !== proto) {
    const fits = proto === "udp" ? "udp" : "tcp or raw";
    throw new TknockError(
      "TKNOCK_USAGE",
      `--transport ${wanted} sends ${transportProto(wanted)} knocks but profile ${entry.name} knocks over ${proto}: use ${fits}`,
      ExitCode.usage,
    );
  }
  return wanted;
}

/** One look at the port. */
export async function probePort(ctx: Pick<KnockContext, "deps">, target: KnockTarget, check: PortCheck, timeoutMs: number): Promise<ProbeResult> {
  if (check.probe.kind === "udp") return ctx.deps.probeUdp(target, check.port, check.probe.payload, timeoutMs);
  const r = await ctx.deps.connect(target, check.port, timeoutMs);
  if (r.kind === "open") return { kind: "open", socket: r.socket };
  if (r.kind === "refused") return { kind: "reachable" };
  if (r.kind === "timeout") return { kind: "closed" };
  return { kind: "error", code: r.code };
}

/** How long another process's knock of the same profile may hold its lock: its own wait, and then some. */
function lockWaitMs(opts: FlowOptions): number {
  return ((opts.waitSeconds ?? 0) + 10) * 1000;
}

/**
 * The knock commands' whole flow. With probeFirst, an open port means no knock and no step spent. Knocks of one
 * profile take turns through a lock in the store folder (`NAME.knock.lock`, client/pid-lock.ts; a killed
 * holder's lock is taken over at once), held from the step choice until the port opened or the wait ended: two processes never
 * send the same step, and one that had to wait looks at the port again before knocking itself. A window whose
 * steps are all used is waited out without the lock (or ends the command with --no-wait-window).
 */
export async function knockFlow(ctx: KnockContext, entry: StoredProfile, opts: FlowOptions): Promise<FlowResult> {
  const spa = usesSpa(entry, opts.spa);
  if (spa) checkSpaRequest(entry, opts.spa ?? NO_SPA_FLAGS);
  const transport = pickTransport(entry, opts.transport);
  const target = await ctx.deps.resolve(entry.addr);
  const { check } = opts;
  const alreadyOpen = async (why: string): Promise<FlowResult | undefined> => {
    if (check.probeMs <= 0) return undefined;
    const r = await probePort(ctx, target, check, check.probeMs);
    if (r.kind !== "open" && r.kind !== "reachable") return undefined;
    ctx.info(`${entry.name}: ${target.address} port ${check.port} is already open for this address${why}: no knock sent`);
    return { target, state: r.kind, ...(r.kind === "open" && r.socket !== undefined ? { socket: r.socket } : {}), elapsedMs: 0 };
  };
  if (opts.probeFirst) {
    const open = await alreadyOpen("");
    if (open) return open;
  }
  if (spa) return spaFlow(ctx, entry, opts, target);
  // Opened before a step is chosen, so a missing privilege costs no step.
  const sender = await ctx.deps.openSender(transport, target, entry.profile.open[0] ?? 1);
  try {
    for (let round = 0; round < 3; round++) {
      let waited = false;
      const outcome = await withPidLock(
        join(ctx.store.dir, `${entry.name}.knock`),
        async (): Promise<{ done: FlowResult } | { waitMs: number }> => {
          // Another process may have knocked between our look and this lock without us ever waiting for the lock
          // (it was free again by then): a step recorded since the command read the store tells.
          const knockedSince = waited || ctx.store.entry(entry.name)?.lastStepUsed !== entry.lastStepUsed;
          if (knockedSince && opts.probeFirst) {
            const open = await alreadyOpen(" (another tknock knocked)");
            if (open) return { done: open };
          }
          // The port was looked at just before (unless another knock ran meanwhile): no second look needed.
          const step = await chooseAndRecord(ctx, entry, opts, check, target, opts.probeFirst && !knockedSince ? "closed" : undefined);
          if (typeof step !== "number") return step;
          const knock = await send(ctx, entry, sender, target, step, opts.delayMs);
          if (opts.waitSeconds === undefined) return { done: { target, knock, state: "unchecked" } };
          const r = await waitForOpen(ctx, target, check, opts.waitSeconds);
          return { done: { target, knock, ...r } };
        },
        {
          ...ctx.store.lockOptions(),
          waitMs: lockWaitMs(opts),
          onWait: () => {
            waited = true;
            ctx.info(`${entry.name}: another tknock is knocking this profile; waiting for it`);
          },
        },
      );
      if ("done" in outcome) return outcome.done;
      await ctx.deps.sleep(outcome.waitMs);
    }
    throw new TknockError("TKNOCK_NO_STEP", `no unused step for ${entry.name}: is the clock moving?`, ExitCode.usage);
  } finally {
    sender.close();
  }
}

const NO_SPA_FLAGS: SpaRequest = { force: false, nat: false };

/** One SPA datagram, then (with --wait) the wait for the port. */
async function spaFlow(ctx: KnockContext, entry: StoredProfile, opts: FlowOptions, target: KnockTarget): Promise<FlowResult> {
  const offsetMs = (opts.timeOffsetSeconds ?? entry.timeOffsetSeconds ?? 0) * 1000;
  const r = await sendSpa(entry, opts.spa ?? NO_SPA_FLAGS, target, ctx.clock.nowMs() + offsetMs, (t, port, build) => ctx.deps.sendSpa(t, port, build));
  ctx.info(`sent SPA to ${entry.name} at ${target.address}: step ${r.step}, udp port ${r.port}, to open ${r.ports.join(",")} for ${r.address}`);
  const knock: KnockReport = { name: entry.name, target, transport: "udp", step: r.step, ports: [r.port] };
  if (opts.waitSeconds === undefined) return { target, knock, state: "unchecked" };
  return { target, knock, ...(await waitForOpen(ctx, target, opts.check, opts.waitSeconds)) };
}

/** Under the profile's lock: the step to knock with, recorded before anything is sent; or how long to wait. */
async function chooseAndRecord(
  ctx: KnockContext,
  entry: StoredProfile,
  opts: FlowOptions,
  check: PortCheck,
  target: KnockTarget,
  known: "closed" | undefined,
): Promise<number | { waitMs: number } | { done: FlowResult }> {
  const { periodSeconds } = entry.profile;
  const fresh = ctx.store.entry(entry.name) ?? entry; // another process may have knocked since the command started
  const storedOffsetMs = (fresh.timeOffsetSeconds ?? 0) * 1000;
  const offsetMs = opts.timeOffsetSeconds !== undefined ? opts.timeOffsetSeconds * 1000 : storedOffsetMs;
  const nowMs = ctx.clock.nowMs() + offsetMs;
  const choice = chooseStep(nowMs, periodSeconds, fresh.lastStepUsed, fresh.avoidSteps);
  if (choice.kind === "wait") {
    const waitMs = Math.max(0, choice.untilMs - nowMs);
    const current = stepAt(nowMs, periodSeconds);
    let portState = known === "closed" ? ` and port ${check.port} is closed` : "";
    if (known === undefined && check.probeMs > 0) {
      const r = await probePort(ctx, target, check, check.probeMs);
      if (r.kind === "open" || r.kind === "reachable") {
        if (r.kind === "open") r.socket?.destroy();
        ctx.info(`${entry.name}: this window's steps are used, but ${target.address} port ${check.port} is already open for this address: no knock sent`);
        return { done: { target, state: "unchecked" } };
      }
      portState = ` and port ${check.port} is closed`;
    }
    const what = `${entry.name}: steps ${current} and ${current + 1} (this window and the next) are used${portState}`;
    const seconds = (waitMs / 1000).toFixed(1);
    if (opts.noWaitWindow === true) {
      throw new TknockError(
        "TKNOCK_STEPS_USED",
        `${what}: the next window starts in ${seconds} s; run again then (or without --no-wait-window to wait)`,
        ExitCode.notOpened,
      );
    }
    ctx.notice(`${what}: waiting ${seconds} s for the next window (--no-wait-window exits instead)`);
    return { waitMs };
  }
  if (choice.reason === "clock-behind") {
    ctx.notice(
      `warning: ${entry.name} last knocked with step ${fresh.lastStepUsed}, ahead of this clock (step ${choice.step}): the clock moved back or the stored time offset was lowered; knocking with step ${choice.step}`,
    );
  }
  // A step far from the profile's own clock (a one-off --time-offset) cannot have been accepted if that clock is
  // right: it is kept apart so that it does not make the next ordinary knock wait.
  const kind = choice.reason === "clock-behind" ? "reset" : recordKind(choice.step, ctx.clock.nowMs() + storedOffsetMs, periodSeconds);
  await ctx.store.recordStep(entry.name, choice.step, kind); // before sending: a crash after this never reuses the step
  return choice.step;
}

async function send(ctx: KnockContext, entry: StoredProfile, sender: Sender, target: KnockTarget, step: number, delayMs: number): Promise<KnockReport> {
  const ports = deriveSequence(entry.profile, step);
  if (delayMs === 0 && sender.knockAll) {
    await sender.knockAll(ports);
  } else {
    for (const [i, port] of ports.entries()) {
      if (i > 0 && delayMs > 0) await ctx.deps.sleep(delayMs);
      await sender.knock(port);
    }
  }
  ctx.info(`knocked ${entry.name} at ${target.address}: step ${step}, ${ports.length} ${sender.transport} knocks`);
  return { name: entry.name, target, transport: sender.transport, step, ports };
}

/** How long the first connect attempt may take while polling: a dropped port never answers. */
export const POLL_ATTEMPT_MS = 5; // doubles per silent attempt (5, 10, 20, ... ms): a LAN open is caught within ms, a slow link still connects
export const POLL_ATTEMPT_MAX_MS = 2_400;
/** Pause after a failed attempt (a route may be moments away). */
export const POLL_RETRY_MS = 100;
/** Default bound of the look before knocking: a LAN answers within a few ms, a dropped port never. */
export const DEFAULT_PROBE_MS = 150;

export function notOpenedError(address: string, port: number, waitSeconds: number): TknockError {
  return new TknockError(
    "TKNOCK_NOT_OPENED",
    `knocked, but ${address} port ${port} did not open within ${waitSeconds} s. Check: the clocks (run \`date\` on both ends, enable NTP, or store an offset with \`tknock set NAME --time-offset SECONDS\`); the address (the server opens the address it sees: behind NAT, that is your public address); that tknock-server runs`,
    ExitCode.notOpened,
  );
}

/**
 * Polls the port until it answers or waitSeconds pass. "open" carries the TCP connection (the caller closes it,
 * or uses it: proxy); "reachable" means the gate opened but nothing answers that protocol (a UDP service probed
 * over TCP): it is said in one line and counts as opened.
 */
export async function waitForOpen(
  ctx: Pick<KnockContext, "clock" | "deps" | "info" | "notice">,
  target: KnockTarget,
  check: Pick<PortCheck, "port" | "probe">,
  waitSeconds: number,
): Promise<{ state: "open" | "reachable"; socket?: Socket; elapsedMs: number }> {
  const startMs = ctx.clock.nowMs();
  const deadlineMs = startMs + waitSeconds * 1000;
  const { port } = check;
  let lastError: string | undefined;
  let attemptMs = POLL_ATTEMPT_MS;
  for (;;) {
    const remainingMs = deadlineMs - ctx.clock.nowMs();
    if (remainingMs <= 0) break;
    const r = await probePort(ctx, target, { ...check, probeMs: 1 }, Math.min(attemptMs, remainingMs));
    const elapsedMs = ctx.clock.nowMs() - startMs;
    if (r.kind === "open") {
      ctx.info(`${target.address} port ${port} open after ${Math.round(elapsedMs)} ms`);
      return { state: "open", ...(r.socket !== undefined ? { socket: r.socket } : {}), elapsedMs };
    }
    if (r.kind === "reachable") {
      ctx.notice(
        check.probe.kind === "tcp"
          ? `${target.address} port ${port} lets this address in after ${Math.round(elapsedMs)} ms, but no TCP service answers there; a UDP service cannot be probed over TCP (--probe-udp HEX sends a payload and waits for its reply)`
          : `${target.address} port ${port} lets this address in after ${Math.round(elapsedMs)} ms, but nothing listens on UDP there (ICMP port unreachable)`,
      );
      return { state: "reachable", elapsedMs };
    }
    // A link slower than one attempt would never connect: each silent attempt gets longer, up to a cap.
    if (r.kind === "closed") attemptMs = Math.min(attemptMs * 2, POLL_ATTEMPT_MAX_MS);
    lastError = r.kind === "error" ? r.code : undefined;
    if (r.kind === "error") await ctx.deps.sleep(Math.max(0, Math.min(POLL_RETRY_MS, deadlineMs - ctx.clock.nowMs())));
  }
  if (lastError !== undefined && lastError !== "ETIMEDOUT") {
    throw new TknockError("TKNOCK_NETWORK", `cannot reach ${target.address} port ${port}: ${lastError}`, ExitCode.network);
  }
  throw notOpenedError(target.address, port, waitSeconds);
}
