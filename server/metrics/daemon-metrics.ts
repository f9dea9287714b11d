/**
 * The daemon's Prometheus metrics (prom-client, in a registry of their own: nothing global). Decisions and
 * timings arrive through the DaemonObserver calls; the rest (listener, matcher, gate, grants) is read from the
 * daemon's snapshot at each scrape, so the hot path pays one counter increment per knock candidate and nothing per
 * ignored packet. Names follow Prometheus conventions: `_total` counters, `_seconds` histograms.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import type { ListenerStats, ObservedKnock } from "../../src/ports.js";
import type { DaemonObserver } from "../daemon-observer.js";
import { decisionLabel, spaDecisionLabel } from "../daemon-observer.js";
import type { SpaDecision } from "../spa/decision.js";
import type { Decision } from "../matcher/decision.js";
import type { MatcherStats } from "../matcher/matcher.js";

export type DaemonSnapshot = {
  readonly listener: ListenerStats;
  readonly matcher: MatcherStats;
  readonly gate: { readonly present: boolean; readonly repairs: number };
  readonly activeGrants: number;
  readonly capturing?: boolean | undefined;
};

/** Every decision label, so each series exists (at 0) from the first scrape: rate() needs a start. */
const DECISIONS = ["progress", "reset", "open", "refuse_replay", "refuse_skew", "refuse_lockout"] as const;

/** Seconds: a state write is an fsync (sub-ms on SSD, tens of ms on a busy disk); a firewall update one nft batch. */
const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

export class DaemonMetrics implements DaemonObserver {
  readonly registry = new Registry();
  private readonly knocks: Counter<"decision">;
  private readonly bruteForce: Counter<"banned">;
  private readonly stateWrite: Histogram<"result">;
  private readonly firewallUpdate: Histogram<"result">;
  private readonly mirrored: { readonly set: (s: DaemonSnapshot) => void }[] = [];

  constructor(private readonly listenerName: string) {
    const registers = [this.registry];
    this.knocks = new Counter({ name: "tknock_knocks_total", help: "Knock candidates by what the matcher decided", labelNames: ["decision"], registers });
    for (const d of DECISIONS) this.knocks.inc({ decision: d }, 0);
    this.bruteForce = new Counter({
      name: "tknock_bruteforce_reports_total",
      help: "Sources reported for too many failed sequences in a minute (banned: config bruteForce.ban)",
      labelNames: ["banned"],
      registers,
    });
    this.bruteForce.inc({ banned: "false" }, 0);
    this.stateWrite = new Histogram({
      name: "tknock_state_write_seconds",
      help: "Time to write the state file (an accepted or spent step), fsync included",
      labelNames: ["result"],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.firewallUpdate = new Histogram({
      name: "tknock_firewall_update_seconds",
      help: "Time for the firewall to add a knock's grants",
      labelNames: ["result"],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    const listener = { listener: listenerName };
    this.mirrorCounter("tknock_listener_packets_total", "Records or lines the listener read from its source", (s) => s.listener.packets, listener);
    this.mirrorCounter("tknock_listener_knock_candidates_total", "Packets the listener handed to the matcher", (s) => s.listener.knocks, listener);
    this.mirrorCounter("tknock_listener_malformed_total", "Truncated, garbage or unsupported records skipped", (s) => s.listener.malformed, listener);
    this.mirrorCounter("tknock_capture_starts_total", "Times the capture process was started or restarted", (s) => s.listener.starts, listener);
    this.mirrorCounter("tknock_capture_drops_total", "Packets dropped before the capture saw them (where: kernel buffer or interface)", [
      [{ ...listener, where: "kernel" }, (s) => s.listener.kernelDrops],
      [{ ...listener, where: "interface" }, (s) => s.listener.interfaceDrops ?? 0],
    ]);
    this.mirrorGauge("tknock_capture_up", "1 while packets are being captured, 0 while capture is down", (s) => (s.capturing === false ? 0 : 1), listener);
    this.mirrorGauge("tknock_grants_active", "Grants the daemon opened that have not expired", (s) => s.activeGrants);
    this.mirrorGauge("tknock_gate_present", "1 while the gate is in the firewall as the daemon installed it", (s) => (s.gate.present ? 1 : 0));
    this.mirrorCounter("tknock_gate_reinstalls_total", "Times the daemon re-installed a gate that was removed or changed", (s) => s.gate.repairs);
    this.mirrorGauge("tknock_sources_tracked", "Sources with knocks in progress", (s) => s.matcher.sources);
    this.mirrorGauge("tknock_sources_max", "Config maxSources: beyond it the oldest source is evicted", (s) => s.matcher.maxSources);
    this.mirrorCounter("tknock_source_evictions_total", "Sources evicted because maxSources was reached", (s) => s.matcher.evictions);
    this.mirrorGauge("tknock_clients", "Enrolled clients", (s) => s.matcher.clients);
    this.mirrorCounter("tknock_derivations_total", "HMAC sequence derivations (start, reloads, window moves)", (s) => s.matcher.derivations);
    this.mirrorCounter("tknock_derivation_errors_total", "Derivations that failed (the client cannot knock in that window)", (s) => s.matcher.derivationErrors);
    collectDefaultMetrics({ register: this.registry });
  }

  decided(d: Decision, _knock: ObservedKnock): void {
    if (d.kind === "bruteforce") this.bruteForce.inc({ banned: String(d.banned) });
    else if (d.kind !== "ignored") this.knocks.inc({ decision: decisionLabel(d) });
  }

  spaDecided(d: SpaDecision, _knock: ObservedKnock): void {
    if (d.kind !== "not-spa") this.knocks.inc({ decision: spaDecisionLabel(d) });
  }

  stateWritten(ms: number, ok: boolean): void {
    this.stateWrite.observe({ result: ok ? "ok" : "error" }, ms / 1000);
  }

  firewallUpdated(ms: number, ok: boolean): void {
    this.firewallUpdate.observe({ result: ok ? "ok" : "error" }, ms / 1000);
  }

  /** The text exposition of every metric, with the daemon's counts as they are now. */
  async scrape(snapshot: DaemonSnapshot): Promise<string> {
    for (const m of this.mirrored) m.set(snapshot);
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  get listener(): string {
    return this.listenerName;
  }

  /** A total the daemon keeps itself, exposed as a counter (reset and set at each scrape: it only grows). */
  private mirrorCounter(
    name: string,
    help: string,
    read: ((s: DaemonSnapshot) => number) | readonly (readonly [Record<string, string>, (s: DaemonSnapshot) => number])[],
    labels: Record<string, string> = {},
  ): void {
    const series = typeof read === "function" ? [[labels, read] as const] : read;
    const c = new Counter({ name, help, labelNames: Object.keys(series[0]?.[0] ?? {}), registers: [this.registry] });
    this.mirrored.push({
      set: (s) => {
        c.reset();
        for (const [l, r] of series) c.inc(l, r(s));
      },
    });
  }

  private mirrorGauge(name: string, help: string, read: (s: DaemonSnapshot) => number, labels: Record<string, string> = {}): void {
    const g = new Gauge({ name, help, labelNames: Object.keys(labels), registers: [this.registry] });
    this.mirrored.push({ set: (s) => g.set(labels, read(s)) });
  }
}
