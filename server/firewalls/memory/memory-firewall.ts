/**
 * An in-memory Firewall with the semantics of the nftables gate (the contract test runs both): grants expire
 * by the injected clock, re-granting restarts the timeout, install keeps grants, open before install fails.
 * For the matcher and daemon tests; isAllowed() answers what the kernel would do with a packet.
 */
import { ExitCode, TknockError } from "../../../src/errors.js";
import {
  ACTIVE_SECONDS_DEFAULT,
  systemClock,
  type Clock,
  type Firewall,
  type GateProblem,
  type GateSpec,
  type Grant,
  type KnockProto,
  type WatchPorts,
} from "../../../src/ports.js";
import { canonicalAddress, show, validateGate, validateGrants, validateWatch, type ValidGate } from "../validate.js";

type Entry = { readonly src: string; readonly port: number; readonly openSeconds: number; readonly expiresAtMs: number };

export class MemoryFirewall implements Firewall {
  readonly name = "memory";
  /** Every grant passed to a successful open(), in order (what the daemon asked for). */
  readonly opened: Grant[] = [];
  private gate: ValidGate | undefined;
  private readonly grants = new Map<string, Entry>();
  private failure: TknockError | undefined;
  /** Set by simulateOutsideChange("alter"): the gate is there but not as installed. */
  private altered = false;
  private readonly watchers = new Set<(what: string) => void>();
  private watchPorts: WatchPorts = { starts: [], others: [] };
  /** The kernel's active sets: source -> when its entry times out (ms). */
  private readonly active = new Map<string, number>();

  constructor(private readonly clock: Clock = systemClock) {}

  /** While set, install() and open() reject with this error (to test how callers handle a failing firewall). */
  failWith(error: TknockError | undefined): void {
    this.failure = error;
  }

  get installed(): GateSpec | undefined {
    return this.gate;
  }

  async install(gate: GateSpec, options: { readonly replace?: boolean } = {}): Promise<void> {
    const valid = validateGate(gate);
    if (this.failure) throw this.failure;
    if (options.replace === true) this.grants.clear();
    this.gate = valid;
    this.altered = false;
  }

  async check(gate: GateSpec): Promise<GateProblem | undefined> {
    const want = validateGate(gate);
    if (!this.gate) return { kind: "table-missing", message: "table missing" };
    if (this.altered || JSON.stringify(want) !== JSON.stringify(this.gate)) return { kind: "rules-differ", message: "rules differ" };
    return undefined;
  }

  watch(onChange: (what: string) => void, signal: AbortSignal): void {
    if (signal.aborted) return;
    this.watchers.add(onChange);
    signal.addEventListener("abort", () => this.watchers.delete(onChange), { once: true });
  }

  /**
   * Someone else changed the firewall, as `nft flush ruleset` (the gate and every grant gone) or an edit of the
   * gate's rules ("alter": the gate stays but no longer matches what was installed). Watchers are told.
   */
  simulateOutsideChange(kind: "flush" | "alter"): void {
    if (kind === "flush") {
      this.gate = undefined;
      this.grants.clear();
    } else {
      this.altered = true;
    }
    for (const w of [...this.watchers]) w(kind);
  }

  async setWatch(watch: WatchPorts): Promise<void> {
    const valid = validateWatch(watch);
    if (this.failure) throw this.failure;
    if (this.gate?.nflogKnocks?.watchOnly !== true)
      throw new TknockError("TKNOCK_FIREWALL", "the gate has no watch set: install() with nflogKnocks.watchOnly first", ExitCode.system);
    this.watchPorts = valid;
  }

  /** Every watched port, first ports and the others together (sorted), as setWatch left them. */
  get watched(): readonly number[] {
    return [...this.watchPorts.starts, ...this.watchPorts.others].sort((a, b) => a - b);
  }

  /** The watched ports as setWatch left them. */
  get watchedPorts(): WatchPorts {
    return this.watchPorts;
  }

  /**
   * Whether the gate would log a packet from `src` to this port to its NFLOG group (the listener would see it).
   * As the kernel does with the prefilter: a first port is logged and makes its source active for activeSeconds;
   * another watched port is logged (and renews it) only for an active source. The active sets are not bounded here.
   */
  wouldLog(port: number, src = "198.18.0.1"): boolean {
    const n = this.gate?.nflogKnocks;
    if (!n || port < n.min || port > n.max) return false;
    if (n.watchOnly !== true) return true;
    const nowMs = this.clock.nowMs();
    const source = canonicalAddress(src)?.address ?? src;
    const renew = (): true => {
      this.active.set(source, nowMs + (n.activeSeconds ?? ACTIVE_SECONDS_DEFAULT) * 1000);
      return true;
    };
    if (this.watchPorts.starts.includes(port)) return renew();
    return this.watchPorts.others.includes(port) && (this.active.get(source) ?? 0) > nowMs && renew();
  }

  async open(grants: readonly Grant[]): Promise<void> {
    const valid = validateGrants(grants);
    if (this.failure) throw this.failure;
    if (!this.gate) throw new TknockError("TKNOCK_FIREWALL", "the gate is not installed: install() first", ExitCode.system);
    const nowMs = this.clock.nowMs();
    for (const g of valid) {
      this.grants.set(key(g.src, g.port), { src: g.src, port: g.port, openSeconds: g.openSeconds, expiresAtMs: nowMs + g.openSeconds * 1000 });
      this.opened.push({ src: g.src, port: g.port, openSeconds: g.openSeconds });
    }
  }

  async list(): Promise<Grant[]> {
    const nowMs = this.clock.nowMs();
    this.expire(nowMs);
    return [...this.grants.values()].map((e) => ({
      src: e.src,
      port: e.port,
      openSeconds: e.openSeconds,
      // nft reports whole seconds left, rounded down.
      expiresInSeconds: Math.floor((e.expiresAtMs - nowMs) / 1000),
    }));
  }

  async remove(): Promise<void> {
    this.gate = undefined;
    this.altered = false;
    this.grants.clear();
  }

  async close(): Promise<void> {}

  /**
   * What the gate does with a new TCP/UDP connection from src to port at nowMs: a protected port needs a live
   * grant, the knock range is dropped unless a local service is exempted there for that protocol, anything else
   * passes (the gate only rules its own ports). Established connections are not modelled.
   */
  isAllowed(src: string, port: number, nowMs: number = this.clock.nowMs(), proto: KnockProto = "tcp"): boolean {
    const canonical = canonicalAddress(src);
    if (!canonical) throw new TknockError("TKNOCK_INVALID_GRANT", `source ${show(src)} is not an IP address`, ExitCode.usage);
    const gate = this.gate;
    if (!gate) return true;
    if (gate.protectedPorts.includes(port)) {
      const entry = this.grants.get(key(canonical.address, port));
      return entry !== undefined && entry.expiresAtMs > nowMs;
    }
    if (gate.exemptServices.some((s) => s.proto === proto && s.port === port)) return true;
    return !(gate.knockRange && port >= gate.knockRange.min && port <= gate.knockRange.max);
  }

  private expire(nowMs: number): void {
    for (const [k, e] of this.grants) if (e.expiresAtMs <= nowMs) this.grants.delete(k);
  }
}

function key(src: string, port: number): string {
  return `${src}|${port}`;
}
