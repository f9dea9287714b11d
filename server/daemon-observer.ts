/**
 * What the daemon tells whoever watches it (the metrics endpoint, the runtime report behind `status`): each
 * knock's decision and how long the state write and the firewall update took. Observers only count: they never
 * change what the daemon does, and one that throws is ignored (a metrics bug must not stop a port opening).
 */
import type { ObservedKnock } from "../src/ports.js";
import type { Decision } from "./matcher/decision.js";
import type { SpaDecision } from "./spa/decision.js";

export type DaemonObserver = {
  /** One knock candidate and what the matcher made of it. */
  decided?(d: Decision, knock: ObservedKnock): void;
  /** One SPA packet (not "not-spa") and what the SPA acceptor made of it. */
  spaDecided?(d: SpaDecision, knock: ObservedKnock): void;
  /** A write of the state file (the accepted step), ok or failed. */
  stateWritten?(ms: number, ok: boolean): void;
  /** A firewall update for an open (the grants added), ok or failed. */
  firewallUpdated?(ms: number, ok: boolean): void;
};

/** Calls every observer, each guarded. */
export function fanOut(observers: readonly (DaemonObserver | undefined)[]): Required<DaemonObserver> {
  const list = observers.filter((o): o is DaemonObserver => o !== undefined);
  const guard = (f: () => void): void => {
    try {
      f();
    } catch {
      // Counting failed; the daemon goes on (see above).
    }
  };
  return {
    decided: (d, k) => list.forEach((o) => guard(() => o.decided?.(d, k))),
    spaDecided: (d, k) => list.forEach((o) => guard(() => o.spaDecided?.(d, k))),
    stateWritten: (ms, ok) => list.forEach((o) => guard(() => o.stateWritten?.(ms, ok))),
    firewallUpdated: (ms, ok) => list.forEach((o) => guard(() => o.firewallUpdated?.(ms, ok))),
  };
}

/** The decision's metric label: its kind, or `refuse_REASON`. */
export function decisionLabel(d: Decision): string {
  return d.kind === "refuse" ? `refuse_${d.reason}` : d.kind;
}

/** An SPA decision's label, beside the matcher's: `spa_open`, `spa_unknown`, `spa_refuse_REASON`. */
export function spaDecisionLabel(d: SpaDecision): string {
  return d.kind === "refuse" ? `spa_refuse_${d.reason}` : `spa_${d.kind}`;
}

export type ActivityReport = {
  /** When the last knock candidate arrived (any decision but ignored), ISO time; null: none since start. */
  readonly lastKnockAt: string | null;
  /** When a knock last opened a port. */
  readonly lastOpenAt: string | null;
  /** Knocks by decision since the daemon started (open, progress, reset, refuse_replay, ...). */
  readonly knocks: Readonly<Record<string, number>>;
  readonly firewallErrors: number;
  readonly stateWriteErrors: number;
};

/** The counts the runtime report carries (daemon.json, `status --json`), kept whether or not metrics are on. */
export class DaemonActivity implements DaemonObserver {
  private lastKnockMs: number | undefined;
  private lastOpenMs: number | undefined;
  private readonly knocks: Record<string, number> = {};
  private firewallErrors = 0;
  private stateWriteErrors = 0;

  decided(d: Decision, knock: ObservedKnock): void {
    if (d.kind === "ignored") return;
    const label = decisionLabel(d);
    this.knocks[label] = (this.knocks[label] ?? 0) + 1;
    this.lastKnockMs = knock.atMs;
    if (d.kind === "open") this.lastOpenMs = knock.atMs;
  }

  spaDecided(d: SpaDecision, knock: ObservedKnock): void {
    if (d.kind === "not-spa") return;
    const label = spaDecisionLabel(d);
    this.knocks[label] = (this.knocks[label] ?? 0) + 1;
    // An unknown key id is any datagram that looks like SPA (a flood): not a knock worth dating.
    if (d.kind === "unknown") return;
    this.lastKnockMs = knock.atMs;
    if (d.kind === "open") this.lastOpenMs = knock.atMs;
  }

  stateWritten(_ms: number, ok: boolean): void {
    if (!ok) this.stateWriteErrors++;
  }

  firewallUpdated(_ms: number, ok: boolean): void {
    if (!ok) this.firewallErrors++;
  }

  report(): ActivityReport {
    const iso = (ms: number | undefined): string | null => (ms === undefined ? null : new Date(ms).toISOString());
    return {
      lastKnockAt: iso(this.lastKnockMs),
      lastOpenAt: iso(this.lastOpenMs),
      knocks: { ...this.knocks },
      firewallErrors: this.firewallErrors,
      stateWriteErrors: this.stateWriteErrors,
    };
  }
}
