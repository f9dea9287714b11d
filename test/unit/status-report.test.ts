/** What `tknock-server status` concludes from its facts (pure): which states are problems that exit non-zero. */
import { describe, expect, it } from "vitest";
import { assessStatus, formatGrantLines, formatStatusLines, REPORT_STALE_MS, type StatusFacts } from "../../server/status-report.js";
import type { RuntimeStatus } from "../../server/runtime-status.js";

const NOW = 1_800_000_000_000;
const iso = (ms: number): string => new Date(ms).toISOString();
const PID = 4242;

const runtime = (o: Partial<RuntimeStatus> = {}): RuntimeStatus => ({
  version: 1,
  pid: PID,
  startedAt: iso(NOW - 60_000),
  updatedAt: iso(NOW - 500),
  capture: { state: "capturing", since: iso(NOW - 59_000), failedStarts: 0 },
  ...o,
});

const healthy: StatusFacts = {
  nowMs: NOW,
  lock: { holder: { pid: PID, startTicks: "1", startedAt: iso(NOW - 60_000) }, alive: true },
  runtime: runtime(),
  gate: { present: true, name: "table inet tknock" },
};

describe("status assessment", () => {
  it("when the daemon runs, captures and the gate is in the kernel then status is ok", () => {
    const r = assessStatus(healthy);
    expect(r).toMatchObject({ ok: true, problems: [], daemon: { running: true, pid: PID }, capture: { state: "capturing" }, gate: { present: true } });
    expect(formatStatusLines(r, NOW)[0]).toBe("status: ok");
  });

  it("when no daemon holds the lock then it is a problem, capture is stopped, and a clean stop is reported", () => {
    const r = assessStatus({ ...healthy, lock: { holder: undefined, alive: false }, runtime: runtime({ stoppedAt: iso(NOW - 10_000) }) });
    expect(r.ok).toBe(false);
    expect(r.daemon).toMatchObject({ running: false, pid: null, stoppedAt: iso(NOW - 10_000) });
    expect(r.capture.state).toBe("stopped");
    expect(r.problems.join()).toMatch(/daemon not running \(stopped at/);
  });

  it("when the lock's pid is dead then the daemon is not running", () => {
    const r = assessStatus({ ...healthy, lock: { holder: healthy.lock.holder, alive: false } });
    expect(r.daemon.running).toBe(false);
    expect(r.problems.join()).toMatch(/no clean stop/);
  });

  it("when the gate is missing from the kernel then it is a problem even if the daemon's report says present", () => {
    const r = assessStatus({ ...healthy, runtime: runtime({ gate: { present: true, repairs: 0 } }), gate: { present: false, name: "table inet tknock" } });
    expect(r.ok).toBe(false);
    expect(r.gate).toEqual({ present: false, name: "table inet tknock" });
    expect(r.problems.join()).toMatch(/gate missing: table inet tknock/);
    expect(formatStatusLines(r, NOW)).toContain("gate: table inet tknock MISSING");
  });

  it("when the firewall is none then status is not ok with one problem saying nothing is protected, not that a gate is missing", () => {
    const r = assessStatus({ ...healthy, gate: { present: false, name: 'firewall "none" (log only)', unprotected: true } });
    expect(r.ok).toBe(false);
    expect(r.problems).toHaveLength(1);
    expect(r.problems[0]).toMatch(/^firewall "none" \(log only\): NOTHING IS PROTECTED/);
  });

  it("when grants carry their client then each line shows its time left and the client", () => {
    expect(
      formatGrantLines([
        { src: "198.18.0.1", port: 22, openSeconds: 600, client: "bob", expiresInSeconds: 590 },
        { src: "fd18:18::2", port: 22, openSeconds: 30, expiresInSeconds: 3 },
      ]),
    ).toEqual(["grants:", "  198.18.0.1 -> port 22, 590s left (bob)", "  fd18:18::2 -> port 22, 3s left"]);
  });

  it("when the daemon reports the gate's history then since and repairs are shown", () => {
    const r = assessStatus({ ...healthy, runtime: runtime({ gate: { present: true, since: iso(NOW - 3000), repairs: 2 } }) });
    expect(r.gate).toMatchObject({ since: iso(NOW - 3000), repairs: 2 });
  });

  it("when capture is failing then it is a problem naming the cause", () => {
    const r = assessStatus({
      ...healthy,
      runtime: runtime({ capture: { state: "failing", since: iso(NOW - 30_000), failedStarts: 6, lastProblem: "tcpdump not found" } }),
    });
    expect(r.ok).toBe(false);
    expect(r.problems.join()).toMatch(/packet capture failing.*tcpdump not found/);
  });

  it("when the running daemon's report is older than the stale limit then it is reported as possibly stuck", () => {
    const r = assessStatus({ ...healthy, runtime: runtime({ updatedAt: iso(NOW - REPORT_STALE_MS - 1000) }) });
    expect(r.ok).toBe(false);
    expect(r.problems.join()).toMatch(/has not updated its status for 11 s/);
  });

  it("when the report belongs to an earlier daemon then it is ignored for the running one", () => {
    const r = assessStatus({
      ...healthy,
      runtime: runtime({ pid: PID + 1, capture: { state: "failing", since: null, failedStarts: 9 } }),
      lock: { holder: { pid: PID, startTicks: "1", startedAt: iso(NOW - 2000) }, alive: true },
    });
    expect(r.ok).toBe(true); // just started: no report of its own yet
    expect(r.capture.state).toBe("unknown");
  });
});
