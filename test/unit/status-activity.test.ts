/** `status` carries the running daemon's activity (last knock, last open, knocks by decision) from daemon.json. */
import { describe, expect, it } from "vitest";
import { DaemonActivity } from "../../server/daemon-observer.js";
import { assessStatus, formatStatusLines, type StatusFacts } from "../../server/status-report.js";
import type { RuntimeStatus } from "../../server/runtime-status.js";

const NOW = 1_800_000_000_000;
const iso = (ms: number): string => new Date(ms).toISOString();
const PID = 4242;

function facts(activity: RuntimeStatus["activity"], alive = true): StatusFacts {
  return {
    nowMs: NOW,
    lock: { holder: { pid: PID, startTicks: "1", startedAt: iso(NOW - 60_000) }, alive },
    runtime: {
      version: 1,
      pid: PID,
      startedAt: iso(NOW - 60_000),
      updatedAt: iso(NOW - 500),
      capture: { state: "capturing", since: iso(NOW - 59_000), failedStarts: 0 },
      ...(activity !== undefined ? { activity } : {}),
    },
    gate: { present: true, name: "table inet tknock" },
  };
}

describe("status activity", () => {
  it("when SPA packets were decided then they are counted beside sequence knocks, and an unknown key id dates nothing", () => {
    const a = new DaemonActivity();
    const k = (atMs: number) => ({ src: "198.18.0.1", dstPort: 10000, proto: "udp" as const, atMs });
    a.spaDecided({ kind: "not-spa" }, k(NOW - 5000));
    a.spaDecided({ kind: "open", client: "alice", step: 1, src: "198.18.0.1", address: "198.18.0.1", ports: [22] }, k(NOW - 3000));
    a.spaDecided({ kind: "refuse", reason: "replay", client: "alice", step: 1, src: "198.18.0.3" }, k(NOW - 2000));
    a.spaDecided({ kind: "unknown" }, k(NOW - 1000));
    expect(a.report()).toMatchObject({
      lastKnockAt: iso(NOW - 2000),
      lastOpenAt: iso(NOW - 3000),
      knocks: { spa_open: 1, spa_refuse_replay: 1, spa_unknown: 1 },
    });
  });

  it("when decisions were seen then the activity counts them by label and keeps the last knock and open times", () => {
    const a = new DaemonActivity();
    const k = (atMs: number) => ({ src: "198.18.0.1", dstPort: 10000, proto: "tcp" as const, atMs });
    a.decided({ kind: "ignored" }, k(NOW - 9000));
    a.decided({ kind: "progress", src: "198.18.0.1" }, k(NOW - 3000));
    a.decided({ kind: "open", client: "alice", step: 1, src: "198.18.0.1", ports: [], open: [22] }, k(NOW - 2000));
    a.decided({ kind: "refuse", reason: "replay", client: "alice", step: 1, src: "198.18.0.3", ports: [] }, k(NOW - 1000));
    a.firewallUpdated(3, false);
    expect(a.report()).toEqual({
      lastKnockAt: iso(NOW - 1000),
      lastOpenAt: iso(NOW - 2000),
      knocks: { progress: 1, open: 1, refuse_replay: 1 },
      firewallErrors: 1,
      stateWriteErrors: 0,
    });
  });

  it("when the running daemon reports activity then status carries it and prints a knocks line", () => {
    const activity = { lastKnockAt: iso(NOW - 1000), lastOpenAt: iso(NOW - 2000), knocks: { open: 1 }, firewallErrors: 0, stateWriteErrors: 0 };
    const r = assessStatus(facts(activity));
    expect(r.activity).toEqual(activity);
    expect(formatStatusLines(r, NOW)).toContain(`knocks: last ${iso(NOW - 1000)}, last open ${iso(NOW - 2000)} (open 1)`);
  });

  it("when no daemon runs then the last daemon's activity is not shown as current", () => {
    const r = assessStatus(facts({ lastKnockAt: null, lastOpenAt: null, knocks: {}, firewallErrors: 0, stateWriteErrors: 0 }, false));
    expect(r.activity).toBeUndefined();
  });
});
