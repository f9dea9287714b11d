/**
 * The facts behind `tknock-server status`, each from its source of truth: the gate and the grants from the
 * kernel, whether a daemon runs from its pid lock (daemon-lock.ts), what it captures from the report it rewrites
 * every few seconds and on each change of health (runtime-status.ts, daemon-monitor.ts). assessStatus is pure:
 * it turns the facts into the problems a sysadmin must hear about, each of which makes `status` exit
 * ExitCode.unhealthy.
 */
import type { Grant } from "../src/ports.js";
import type { LockHolder } from "./daemon-lock.js";
import type { ActivityReport } from "./daemon-observer.js";
import type { CaptureReport, PrefilterReport, RuntimeStatus } from "./runtime-status.js";

/** A daemon rewrites its report at least every STATUS_REWRITE_EVERY_MS (3 s); one this old belongs to a daemon that is stuck. */
export const REPORT_STALE_MS = 10_000;

export type StatusFacts = {
  readonly nowMs: number;
  readonly lock: { readonly holder: LockHolder | undefined; readonly alive: boolean };
  readonly runtime: RuntimeStatus | undefined;
  /** unprotected: the firewall protects nothing by design (firewall "none"). */
  readonly gate: { readonly present: boolean; readonly name: string; readonly unprotected?: boolean };
};

export type StatusReport = {
  readonly ok: boolean;
  /** One line each; empty when ok. */
  readonly problems: readonly string[];
  readonly daemon: {
    readonly running: boolean;
    readonly pid: number | null;
    readonly startedAt: string | null;
    /** When the running daemon last rewrote its report. */
    readonly updatedAt: string | null;
    /** When a daemon that is not running stopped normally (absent: it was killed or never ran). */
    readonly stoppedAt?: string;
  };
  readonly capture: Omit<CaptureReport, "state"> & { readonly state: CaptureReport["state"] | "stopped" };
  readonly gate: { readonly present: boolean; readonly name: string; readonly since?: string; readonly repairs?: number; readonly lastProblem?: string };
  /** From the running daemon's report: last knock, knocks by decision (absent when no daemon runs). */
  readonly activity?: ActivityReport;
  readonly prefilter?: PrefilterReport;
};

export function assessStatus(f: StatusFacts): StatusReport {
  const problems: string[] = [];
  const running = f.lock.alive && f.lock.holder !== undefined;
  const pid = running ? (f.lock.holder?.pid ?? null) : null;
  // A report from another process (an earlier daemon) says nothing about the running one.
  const runtime = f.runtime !== undefined && (!running || f.runtime.pid === pid) ? f.runtime : undefined;

  if (!running) {
    const last =
      runtime?.stoppedAt !== undefined
        ? `stopped at ${runtime.stoppedAt}`
        : runtime !== undefined
          ? `last report ${runtime.updatedAt}, no clean stop`
          : "no daemon has run here";
    problems.push(`daemon not running (${last}): no knock can open a port; start it (systemctl start tknock-server)`);
  } else if (runtime === undefined) {
    const sinceStartMs = f.nowMs - Date.parse(f.lock.holder?.startedAt ?? "");
    if (!(sinceStartMs < REPORT_STALE_MS)) problems.push(`daemon pid ${pid} has written no status report: it may be stuck (see its log)`);
  } else {
    const ageMs = f.nowMs - Date.parse(runtime.updatedAt);
    if (!(ageMs < REPORT_STALE_MS))
      problems.push(`daemon pid ${pid} has not updated its status for ${Math.round(ageMs / 1000)} s: it may be stuck (see its log)`);
  }

  const capture: StatusReport["capture"] = running
    ? (runtime?.capture ?? { state: "unknown", since: null, failedStarts: 0 })
    : { state: "stopped", since: runtime?.stoppedAt ?? null, failedStarts: 0 };
  if (capture.state === "failing") {
    problems.push(`packet capture failing since ${capture.since ?? "?"}: no knock can open a port (${capture.lastProblem ?? "see the daemon log"})`);
  }

  // The kernel decides present or missing; the daemon's own gate report only adds since when and repairs.
  const g = running && runtime?.gate?.present === f.gate.present ? runtime.gate : undefined;
  const gate: StatusReport["gate"] = {
    present: f.gate.present,
    name: f.gate.name,
    ...(g?.since !== undefined ? { since: g.since } : {}),
    ...(g !== undefined ? { repairs: g.repairs } : {}),
    ...(g?.lastProblem !== undefined ? { lastProblem: g.lastProblem } : {}),
  };
  if (f.gate.unprotected === true) {
    problems.push(`${f.gate.name}: NOTHING IS PROTECTED, knocks are only logged; set "firewall" in server.json to nftables, iptables or command`);
  } else if (!f.gate.present) {
    problems.push(
      `gate missing: ${f.gate.name} is not in the kernel, so the protected ports are open to everyone unless another firewall closes them; ${running ? "the daemon should restore it (see its log)" : "start the daemon to restore it"}`,
    );
  }

  return {
    ok: problems.length === 0,
    problems,
    daemon: {
      running,
      pid,
      startedAt: running ? (f.lock.holder?.startedAt ?? runtime?.startedAt ?? null) : (runtime?.startedAt ?? null),
      updatedAt: runtime?.updatedAt ?? null,
      ...(!running && runtime?.stoppedAt !== undefined ? { stoppedAt: runtime.stoppedAt } : {}),
    },
    capture,
    gate,
    ...(running && runtime?.activity !== undefined ? { activity: runtime.activity } : {}),
    ...(running && runtime?.prefilter !== undefined ? { prefilter: runtime.prefilter } : {}),
  };
}

/** Human lines for the report (status without --json); grants and clients are printed by the command. */
export function formatStatusLines(r: StatusReport, nowMs: number): string[] {
  const lines = [r.ok ? "status: ok" : `status: NOT OK (${r.problems.length} problem${r.problems.length === 1 ? "" : "s"})`];
  for (const p of r.problems) lines.push(`  ! ${p}`);
  const d = r.daemon;
  if (d.running) {
    const age = d.updatedAt === null ? "no report yet" : `report ${Math.max(0, Math.round((nowMs - Date.parse(d.updatedAt)) / 1000))} s old`;
    lines.push(`daemon: running, pid ${d.pid ?? "?"}, since ${d.startedAt ?? "?"} (${age})`);
  } else {
    lines.push(`daemon: not running${d.stoppedAt !== undefined ? ` (stopped at ${d.stoppedAt})` : ""}`);
  }
  const c = r.capture;
  const failed = c.failedStarts > 0 ? `, ${c.failedStarts} failed starts` : "";
  lines.push(
    `capture: ${c.state}${c.since !== null ? ` since ${c.since}` : ""}${failed}${c.state === "failing" && c.lastProblem !== undefined ? `: ${c.lastProblem}` : ""}`,
  );
  const g = r.gate;
  const since = g.since !== undefined ? ` since ${g.since}` : "";
  const repairs = g.repairs !== undefined && g.repairs > 0 ? `, repaired ${g.repairs} times` : "";
  lines.push(`gate: ${g.name} ${g.present ? "present" : "MISSING"}${since}${repairs}`);
  const pf = r.prefilter;
  if (pf?.state === "on") {
    lines.push(
      `prefilter: on, ${pf.firstPorts} first ports and ${pf.otherPorts} other ports watched (tripwire density ${(pf.tripwireDensity * 100).toFixed(2)}%)`,
    );
  } else if (pf?.state === "off") {
    lines.push(`prefilter: off, the gate logs the whole knock range: ${pf.reason}`);
  } else if (pf?.state === "disabled") {
    lines.push(`prefilter: disabled in the config, the gate logs the whole knock range`);
  }
  const a = r.activity;
  if (a !== undefined) {
    const counts = Object.entries(a.knocks)
      .map(([k, n]) => `${k} ${n}`)
      .join(", ");
    lines.push(`knocks: last ${a.lastKnockAt ?? "none yet"}, last open ${a.lastOpenAt ?? "none yet"}${counts !== "" ? ` (${counts})` : ""}`);
  }
  return lines;
}

export function formatGrantLines(grants: readonly Grant[]): string[] {
  const lines = [grants.length === 0 ? "grants: none" : "grants:"];
  for (const g of grants) lines.push(`  ${g.src} -> port ${g.port}, ${g.expiresInSeconds ?? "?"}s left${g.client !== undefined ? ` (${g.client})` : ""}`);
  return lines;
}
