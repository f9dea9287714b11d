/**
 * daemon.json in the state directory: what the running daemon knows about itself (capture, gate), rewritten
 * every second so `tknock-server status` can tell a working daemon from one that only looks alive. It is a
 * report, not state: nothing reads it to decide what to open, so it is written without fsync.
 */
import { readFileSync, renameSync, unlinkSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import type { ListenerHealth } from "../src/ports.js";
import type { ActivityReport } from "./daemon-observer.js";

export const RUNTIME_STATUS_FILE = "daemon.json";

/** Not capturing for this long after a start or a tcpdump exit counts as failing, not starting. */
export const CAPTURE_GRACE_MS = 5000;

export type CaptureReport = {
  /** capturing: packets arrive; starting: within the grace time of a (re)start; failing: no knock can be seen. */
  readonly state: "capturing" | "starting" | "failing" | "unknown";
  readonly since: string | null;
  readonly failedStarts: number;
  readonly lastProblem?: string;
};

export type GateReport = {
  readonly present: boolean;
  /** When the gate was last seen to become present or missing. */
  readonly since?: string;
  /** Times the daemon re-installed a gate that had been removed or changed. */
  readonly repairs: number;
  readonly lastProblem?: string;
};

/** What a gate watcher reports (daemon.gateHealth()); `since` may be ms since the epoch or an ISO string. */
export type GateHealthLike = {
  readonly present: boolean;
  readonly since?: number | string | Date | undefined;
  readonly repairs: number;
  readonly lastProblem?: string | undefined;
};

export type RuntimeStatus = {
  readonly version: 1;
  readonly pid: number;
  readonly startedAt: string;
  readonly updatedAt: string;
  /** Set by a daemon that stopped normally. */
  readonly stoppedAt?: string;
  readonly capture: CaptureReport;
  readonly gate?: GateReport;
  /** Last knock and counts by decision since the daemon started (daemon-observer.ts). */
  readonly activity?: ActivityReport;
};

export function runtimeStatusPath(stateDir: string): string {
  return join(stateDir, RUNTIME_STATUS_FILE);
}

/** Pure: what the listener's health means for someone asking whether knocks can work now. */
export function classifyCapture(health: ListenerHealth | undefined, nowMs: number, graceMs = CAPTURE_GRACE_MS): CaptureReport {
  if (health === undefined) return { state: "unknown", since: null, failedStarts: 0 };
  const base = {
    since: new Date(health.sinceMs).toISOString(),
    failedStarts: health.failedStarts,
    ...(health.lastProblem !== undefined ? { lastProblem: health.lastProblem } : {}),
  };
  if (health.capturing) return { state: "capturing", ...base };
  // One exit and a quick restart is normal (a kill, an address change); repeated failures or a long gap are not.
  const starting = nowMs - health.sinceMs < graceMs && health.failedStarts < 2;
  return { state: starting ? "starting" : "failing", ...base };
}

export function gateReportOf(h: GateHealthLike): GateReport {
  const since = h.since === undefined ? undefined : new Date(h.since).toISOString();
  return {
    present: h.present,
    ...(since !== undefined ? { since } : {}),
    repairs: h.repairs,
    ...(h.lastProblem !== undefined ? { lastProblem: h.lastProblem } : {}),
  };
}

/** Temp file and rename: a reader sees the old report or the new one, never half of one. */
export function writeRuntimeStatus(path: string, status: RuntimeStatus): void {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  try {
    writeFileSync(tmp, `${JSON.stringify(status)}\n`, { mode: 0o644 });
    renameSync(tmp, path);
  } catch (err) {
    try {
      unlinkSync(tmp);
    } catch {
      // nothing was written
    }
    throw err;
  }
}

/** The last report, or undefined when there is none or it cannot be read as one. */
export function readRuntimeStatus(path: string): RuntimeStatus | undefined {
  try {
    const o = JSON.parse(readFileSync(path, "utf8")) as Partial<RuntimeStatus>;
    if (o.version !== 1 || typeof o.pid !== "number" || typeof o.updatedAt !== "string" || typeof o.capture !== "object" || o.capture === null)
      return undefined;
    return o as RuntimeStatus;
  } catch {
    return undefined;
  }
}
