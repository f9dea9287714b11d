/**
 * Never block what the host serves. The gate drops the whole knock range; a local service listening inside it
 * (WireGuard on udp/51820, anything on a high TCP port) would silently stop answering. So:
 * - the gate leaves a knock-range packet alone when the kernel finds a local socket that would receive it (a rule
 *   in the gate, no poll needed: a service started later is reachable at once), and also each (protocol, port)
 *   the daemon has seen listening (GateSpec.exemptServices), re-read every SERVICE_POLL_MS;
 * - `run` warns once per such port;
 * - `enroll` leaves listening ports out of the new client's knock ports (knockExclusions).
 * Protected ports are never exempted: they stay gated.
 */
import type { ServicePort } from "../src/ports.js";
import { PROFILE_LIMITS, usablePortCount } from "../src/protocol/profile.js";
import { compareServices, reachableServices, readListeningSockets, type ParsedProcNet } from "./local-services.js";

/**
 * How often the daemon re-reads the listening sockets, to warn about new ones and list them in the gate. Not what
 * makes them reachable (the gate's socket rule does that at once), so it can be slow: each read costs the kernel
 * a walk of its socket hash tables (about 6 ms of CPU for `ss` on our 2-core machine) plus a process start.
 */
export const SERVICE_POLL_MS = 10_000;

/**
 * At most this many listening ports go into a new client's `exclude=`: each costs up to 6 characters of a URI
 * that must stay under 2048 characters and fit a QR code.
 */
export const MAX_SERVICE_EXCLUSIONS = 64;

type Range = { readonly min: number; readonly max: number };

/** The services the knock-range drop would hit: inside the range, not a protected port. */
export function servicesInRange(services: readonly ServicePort[], range: Range, protect: readonly number[]): ServicePort[] {
  return services.filter((s) => s.port >= range.min && s.port <= range.max && !protect.includes(s.port)).sort(compareServices);
}

/**
 * The `exclude` list of a new client: the protected ports, then the listening ports inside the range (any
 * protocol: a knock should never land on a port the host serves), as long as at least half of the range (and
 * never fewer than the most knocks a profile may have) stays usable, and at most MAX_SERVICE_EXCLUSIONS are
 * added. `leftOut` names the listening ports not excluded.
 */
export function knockExclusions(input: {
  readonly protect: readonly number[];
  readonly services: readonly ServicePort[];
  readonly portMin: number;
  readonly portMax: number;
}): { exclude: number[]; leftOut: number[] } {
  const exclude = [...new Set(input.protect)];
  const listening = [...new Set(servicesInRange(input.services, { min: input.portMin, max: input.portMax }, input.protect).map((s) => s.port))].sort(
    (a, b) => a - b,
  );
  const size = input.portMax - input.portMin + 1;
  const minUsable = Math.max(PROFILE_LIMITS.knocks.max, Math.ceil(size / 2));
  const leftOut: number[] = [];
  let added = 0;
  for (const port of listening) {
    const next = [...exclude, port];
    if (added >= MAX_SERVICE_EXCLUSIONS || usablePortCount({ portMin: input.portMin, portMax: input.portMax, exclude: next }) < minUsable) {
      leftOut.push(port);
      continue;
    }
    exclude.push(port);
    added++;
  }
  return { exclude, leftOut };
}

/**
 * `enroll`'s exclusions, read from this host, with the lines to show the operator. Reading /proc/net cannot
 * fail on Linux short of a broken system; if it does, the client is still enrolled (excluding only the
 * protected ports) and the note says so.
 */
export async function enrollExclusions(
  config: { readonly protect: readonly number[]; readonly knockRange: Range },
  read: () => Promise<ParsedProcNet> = () => readListeningSockets(),
): Promise<{ exclude: number[]; notes: string[] }> {
  let services: ServicePort[];
  try {
    services = reachableServices((await read()).sockets);
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    return {
      exclude: [...new Set(config.protect)],
      notes: [`note: cannot read the listening sockets (${why}); only the protected ports are excluded from the knock ports`],
    };
  }
  const { exclude, leftOut } = knockExclusions({ protect: config.protect, services, portMin: config.knockRange.min, portMax: config.knockRange.max });
  const notes: string[] = [];
  const excluded = exclude.filter((p) => !config.protect.includes(p));
  if (excluded.length > 0) notes.push(`local services listen on ${excluded.join(",")} inside the knock range: left out of this client's knock ports`);
  if (leftOut.length > 0) {
    notes.push(
      `note: local services also listen on ${leftOut.join(",")} inside the knock range; too many to exclude, so this client may knock them: move those services or the knock range`,
    );
  }
  return { exclude, notes };
}

export type ServiceWatchLog = {
  warn(fields: Record<string, unknown>, message: string): void;
  error(fields: Record<string, unknown>, message: string): void;
};

export type ServiceWatchOptions = {
  /** Reads the listening sockets (readListeningSockets, or a fake in tests). */
  readonly read: () => Promise<ParsedProcNet>;
  readonly log: ServiceWatchLog;
  /** Read at every use, so a reloaded config (protected ports, range) is followed at once. */
  readonly gate: () => { readonly knockRange: Range; readonly protect: readonly number[] };
};

/** The services the gate exempts now, kept up to date by polling. */
export class ServiceWatch {
  /** Every service other hosts can reach, as last read. */
  private reachable: ServicePort[] = [];
  private readonly warned = new Set<string>();
  private readFailing = false;

  constructor(private readonly opts: ServiceWatchOptions) {}

  /** The exempted services (inside the knock range, not protected), sorted. */
  get current(): readonly ServicePort[] {
    const { knockRange, protect } = this.opts.gate();
    return servicesInRange(this.reachable, knockRange, protect);
  }

  /**
   * Reads the sockets once; true when the exempted set changed. On a read error the last known set stays (a
   * failed read must not cut off a running service) and the error is logged once until reads work again.
   */
  async refresh(): Promise<boolean> {
    let parsed: ParsedProcNet;
    try {
      parsed = await this.opts.read();
    } catch (err) {
      if (!this.readFailing)
        this.opts.log.error(
          { err: err instanceof Error ? err.message : String(err) },
          "cannot read the listening sockets (/proc/net); keeping the previous service exemptions",
        );
      this.readFailing = true;
      return false;
    }
    this.readFailing = false;
    const before = this.current;
    this.reachable = reachableServices(parsed.sockets);
    const next = this.current;
    const { knockRange } = this.opts.gate();
    for (const s of next) {
      const key = `${s.proto}/${s.port}`;
      if (this.warned.has(key)) continue;
      this.warned.add(key);
      this.opts.log.warn(
        { proto: s.proto, port: s.port, knockRange: `${knockRange.min}-${knockRange.max}` },
        `a local service listens on ${key} inside the knock range: it is left reachable (not dropped), and new clients do not knock it`,
      );
    }
    return next.length !== before.length || next.some((s, i) => compareServices(s, before[i] as ServicePort) !== 0);
  }

  /**
   * Polls every intervalMs and calls apply() after a change; one poll (read, then apply) at a time. A failed
   * apply is logged and tried again at the next poll. Returns the function that stops polling.
   */
  watch(intervalMs: number, apply: () => Promise<void>): () => void {
    let busy = false;
    let pending = false;
    let stopped = false;
    const poll = async (): Promise<void> => {
      if (await this.refresh()) pending = true;
      if (!pending || stopped) return;
      pending = false;
      try {
        await apply();
      } catch (err) {
        pending = true;
        this.opts.log.error({ err: err instanceof Error ? err.message : String(err) }, "could not update the gate for local services; retrying");
      }
    };
    const timer = setInterval(() => {
      if (busy) return;
      busy = true;
      void poll().finally(() => {
        busy = false;
      });
    }, intervalMs);
    timer.unref();
    return () => {
      stopped = true;
      clearInterval(timer);
    };
  }
}
