/**
 * The daemon's self-report, run on its 1 s tick: keeps daemon.json (runtime-status.ts) current and says loudly when
 * packet capture is not working. The gate stays closed while capture is down (fail closed), so nothing opens by
 * mistake; but no knock can open anything either, and a daemon in that state must not look healthy: it logs an
 * error at once and then once a minute for as long as it lasts, and `status` reports it.
 */
import type { Clock, ListenerHealth } from "../src/ports.js";
import type { ActivityReport } from "./daemon-observer.js";
import {
  classifyCapture,
  gateReportOf,
  writeRuntimeStatus,
  type CaptureReport,
  type GateHealthLike,
  type PrefilterReport,
  type RuntimeStatus,
} from "./runtime-status.js";

/** How often a lasting capture failure is logged again. */
export const CAPTURE_ERROR_EVERY_MS = 60_000;

/**
 * daemon.json is rewritten at once when the capture, gate or prefilter report changes, and otherwise this often
 * (fresh counts, and updatedAt, by which `status` tells a stuck daemon, REPORT_STALE_MS). Each rewrite replaces
 * the file by rename, which ext4 follows with a flush of its data: not something to do every second for nothing.
 */
export const STATUS_REWRITE_EVERY_MS = 3000;

type MonitorLog = {
  info(fields: Record<string, unknown>, message: string): void;
  error(fields: Record<string, unknown>, message: string): void;
};

export type DaemonMonitorDeps = {
  /** Where daemon.json goes. */
  readonly path: string;
  readonly log: MonitorLog;
  readonly clock: Clock;
  readonly listenerHealth: (() => ListenerHealth) | undefined;
  readonly gateHealth?: (() => GateHealthLike) | undefined;
  /** Last knock and counts by decision, for `status`. */
  readonly activity?: (() => ActivityReport) | undefined;
  readonly prefilter?: (() => PrefilterReport | undefined) | undefined;
};

export class DaemonMonitor {
  private readonly startedAt: string;
  private lastCaptureErrorMs: number | undefined;
  private writeFailing = false;
  private capture: CaptureReport = { state: "unknown", since: null, failedStarts: 0 };
  /** When daemon.json was last written, and what its health parts were then (a change is written at once). */
  private lastWriteMs = Number.NEGATIVE_INFINITY;
  private lastHealth = "";

  constructor(private readonly deps: DaemonMonitorDeps) {
    this.startedAt = new Date(deps.clock.nowMs()).toISOString();
  }

  /** Checks capture, logs what needs saying, rewrites daemon.json when due (see STATUS_REWRITE_EVERY_MS). Never throws. */
  tick(): void {
    const nowMs = this.deps.clock.nowMs();
    this.capture = classifyCapture(this.deps.listenerHealth?.(), nowMs);
    this.reportCapture(nowMs);
    this.write(nowMs);
  }

  /** The last report, with stoppedAt: `status` then says the daemon stopped rather than died. */
  stopped(): void {
    this.write(this.deps.clock.nowMs(), true);
  }

  captureReport(): CaptureReport {
    return this.capture;
  }

  private reportCapture(nowMs: number): void {
    const { log } = this.deps;
    if (this.capture.state === "failing") {
      if (this.lastCaptureErrorMs === undefined || nowMs - this.lastCaptureErrorMs >= CAPTURE_ERROR_EVERY_MS) {
        this.lastCaptureErrorMs = nowMs;
        log.error(
          { since: this.capture.since, failedStarts: this.capture.failedStarts, lastProblem: this.capture.lastProblem, repeatEveryMs: CAPTURE_ERROR_EVERY_MS },
          "packet capture is not working: no knock can open a port (the gate stays closed); fix the cause in lastProblem",
        );
      }
    } else if (this.capture.state === "capturing" && this.lastCaptureErrorMs !== undefined) {
      this.lastCaptureErrorMs = undefined;
      log.info({ since: this.capture.since }, "packet capture works again");
    }
  }

  private write(nowMs: number, stopped = false): void {
    let gate;
    try {
      gate = this.deps.gateHealth ? gateReportOf(this.deps.gateHealth()) : undefined;
    } catch {
      gate = undefined;
    }
    let activity;
    try {
      activity = this.deps.activity?.();
    } catch {
      activity = undefined;
    }
    let prefilter;
    try {
      prefilter = this.deps.prefilter?.();
    } catch {
      prefilter = undefined;
    }
    const health = JSON.stringify([this.capture, gate, prefilter]);
    if (!stopped && health === this.lastHealth && nowMs - this.lastWriteMs < STATUS_REWRITE_EVERY_MS) return;
    const now = new Date(nowMs).toISOString();
    const status: RuntimeStatus = {
      version: 1,
      pid: process.pid,
      startedAt: this.startedAt,
      updatedAt: now,
      ...(stopped ? { stoppedAt: now } : {}),
      capture: this.capture,
      ...(gate !== undefined ? { gate } : {}),
      ...(activity !== undefined ? { activity } : {}),
      ...(prefilter !== undefined ? { prefilter } : {}),
    };
    try {
      writeRuntimeStatus(this.deps.path, status);
      this.lastWriteMs = nowMs;
      this.lastHealth = health;
      if (this.writeFailing) this.deps.log.info({ path: this.deps.path }, "runtime status file written again");
      this.writeFailing = false;
    } catch (err) {
      // Once per failure streak: `status` will see the report grow old and say so.
      if (!this.writeFailing)
        this.deps.log.error(
          { path: this.deps.path, err: err instanceof Error ? err.message : String(err) },
          "cannot write the runtime status file; `status` will report this daemon as not responding",
        );
      this.writeFailing = true;
    }
  }
}
