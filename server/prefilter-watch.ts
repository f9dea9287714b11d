/**
 * Keeps the gate's watch set (the kernel prefilter) in step with the windows: recomputes it (prefilter.ts) when a
 * client's window moves or the clients change, and tells the daemon when the prefilter turns on or off, since that
 * changes the gate's rules.
 */
import { randomFillSync } from "node:crypto";
import type { Firewall, WatchPorts } from "../src/ports.js";
import type { PrefilterReport } from "./runtime-status.js";
import type { KnockProfile } from "../src/protocol/profile.js";
import type { Logger } from "./logger.js";
import { computeWatch, type PrefilterOptions, type RandomSource } from "./prefilter.js";

export const cryptoRandom: RandomSource = (count) => randomFillSync(new Uint32Array(count));

export type PrefilterWatchOptions = {
  /** Config `prefilter` with listener nflog. */
  readonly enabled: boolean;
  readonly profiles: () => readonly KnockProfile[];
  readonly options: () => PrefilterOptions;
  readonly firewall: Firewall;
  readonly log: Logger;
  readonly random?: RandomSource;
};

export class PrefilterWatch {
  private on = false;
  private offReason: string | undefined;
  private validUntilMs = 0;
  private ports: WatchPorts = { starts: [], others: [] };
  /** Recomputed and not yet in the firewall: apply() has work to do. */
  private pending = false;
  private density = 0;

  constructor(private readonly opts: PrefilterWatchOptions) {}

  /** For `status` (daemon.json). */
  report(): PrefilterReport {
    if (!this.opts.enabled) return { state: "disabled" };
    if (!this.on) return { state: "off", reason: this.offReason ?? "not computed yet" };
    return { state: "on", firstPorts: this.ports.starts.length, otherPorts: this.ports.others.length, tripwireDensity: this.density };
  }

  /** Whether the gate logs only the watched ports now (GateSpec nflogKnocks.watchOnly). */
  get active(): boolean {
    return this.on;
  }

  /**
   * Recomputes the set when its window is over (or when forced: clients changed). Returns true when the prefilter
   * turned on or off, so the gate's rules must be installed again (before setWatch when it turned on).
   */
  compute(nowMs: number, force = false): boolean {
    if (!this.opts.enabled) return false;
    if (!force && nowMs < this.validUntilMs) return false;
    const was = this.on;
    const w = computeWatch(this.opts.profiles(), nowMs, this.opts.options(), this.opts.random ?? cryptoRandom);
    if (w.on) {
      this.on = true;
      this.ports = { starts: w.starts, instant: w.instant, others: [...w.later, ...w.tripwires] };
      this.density = w.tripwireDensity;
      this.pending = true;
      this.validUntilMs = w.validUntilMs;
      if (!was)
        this.opts.log.info(
          { firstPorts: w.starts.length, laterPorts: w.later.length, tripwires: w.tripwires.length, tripwireDensity: Number(w.tripwireDensity.toFixed(5)) },
          "kernel prefilter on",
        );
      this.offReason = undefined;
    } else {
      this.on = false;
      this.validUntilMs = nowMs + 30_000;
      if (this.offReason !== w.reason) this.opts.log.warn({ reason: w.reason }, "kernel prefilter off: the gate logs the whole knock range");
      this.offReason = w.reason;
    }
    return was !== this.on;
  }

  /** The next compute() recomputes whatever the time (clients changed, or the last apply failed). */
  invalidate(): void {
    this.validUntilMs = 0;
  }

  /**
   * Puts the computed ports in the firewall's watch sets, once per computation (after compute(), and after the
   * install it asked for). Replacing the sets costs an nft run and a burst of `nft monitor` lines, so it is not
   * repeated while nothing changed; a repair of the gate puts the last ports back by itself.
   */
  async apply(): Promise<void> {
    if (!this.on || !this.pending) return;
    if (!this.opts.firewall.setWatch) throw new Error(`the ${this.opts.firewall.name} firewall has no watch set`);
    this.pending = false;
    try {
      await this.opts.firewall.setWatch(this.ports);
    } catch (err) {
      this.pending = true;
      throw err;
    }
  }
}
