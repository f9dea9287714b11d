/** The daemon's self-report: capture classification, the once-a-minute error, and daemon.json, on a fake clock. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { CAPTURE_ERROR_EVERY_MS, DaemonMonitor, STATUS_REWRITE_EVERY_MS } from "../../server/daemon-monitor.js";
import { REPORT_STALE_MS } from "../../server/status-report.js";
import { CAPTURE_GRACE_MS, classifyCapture, readRuntimeStatus } from "../../server/runtime-status.js";
import type { ListenerHealth } from "../../src/ports.js";

const T0 = 1_800_000_000_000;

describe("capture classification", () => {
  const h = (o: Partial<ListenerHealth>): ListenerHealth => ({ capturing: false, sinceMs: T0, failedStarts: 0, ...o });

  it("when tcpdump said listening on then capture is capturing", () => {
    expect(classifyCapture(h({ capturing: true }), T0 + 3_600_000).state).toBe("capturing");
  });

  it("when capture stopped moments ago after running well then it is starting, not failing", () => {
    expect(classifyCapture(h({ failedStarts: 0 }), T0 + 1000).state).toBe("starting");
    expect(classifyCapture(h({ failedStarts: 1 }), T0 + 1000).state).toBe("starting");
  });

  it("when capture has been down longer than the grace time, or failed to start twice in a row, then it is failing", () => {
    expect(classifyCapture(h({}), T0 + CAPTURE_GRACE_MS).state).toBe("failing");
    expect(classifyCapture(h({ failedStarts: 2, lastProblem: "tcpdump not found" }), T0 + 100)).toMatchObject({
      state: "failing",
      lastProblem: "tcpdump not found",
    });
  });

  it("when the listener cannot tell then capture is unknown", () => {
    expect(classifyCapture(undefined, T0).state).toBe("unknown");
  });
});

describe("daemon monitor", () => {
  let dir: string;
  let nowMs: number;
  let health: ListenerHealth;
  let logs: { level: "info" | "error"; msg: string; fields: Record<string, unknown> }[];

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "tknock-monitor-"));
    nowMs = T0;
    health = { capturing: false, sinceMs: T0, failedStarts: 3, lastProblem: 'tcpdump not found at "/x"' };
    logs = [];
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  function monitor(path = join(dir, "daemon.json"), gateHealth?: () => { present: boolean; since: number; repairs: number }): DaemonMonitor {
    return new DaemonMonitor({
      path,
      clock: { nowMs: () => nowMs },
      listenerHealth: () => health,
      ...(gateHealth ? { gateHealth } : {}),
      log: {
        info: (fields, msg) => logs.push({ level: "info", msg, fields }),
        error: (fields, msg) => logs.push({ level: "error", msg, fields }),
      },
    });
  }

  it("when capture keeps failing then an error is logged at once and again every minute, not every tick", () => {
    const m = monitor();
    for (let s = 0; s <= 130; s++) {
      nowMs = T0 + s * 1000;
      m.tick();
    }
    const errors = logs.filter((l) => l.level === "error");
    expect(errors).toHaveLength(3); // at 0 s, 60 s, 120 s
    expect(errors[0]?.fields).toMatchObject({ lastProblem: 'tcpdump not found at "/x"', failedStarts: 3 });
    expect(errors[0]?.msg).toMatch(/no knock can open/);
    expect(CAPTURE_ERROR_EVERY_MS).toBe(60_000);
  });

  it("when capture recovers then one info line says so, and a later failure is reported at once", () => {
    const m = monitor();
    m.tick();
    nowMs += 1000;
    health = { capturing: true, sinceMs: nowMs, failedStarts: 0 };
    m.tick();
    expect(logs.map((l) => l.level)).toEqual(["error", "info"]);
    nowMs += 10_000;
    health = { capturing: false, sinceMs: nowMs - 6000, failedStarts: 0 };
    m.tick();
    expect(logs.map((l) => l.level)).toEqual(["error", "info", "error"]);
  });

  it("when it ticks then daemon.json holds this pid, the capture state and the gate report; stopped() adds stoppedAt", () => {
    const path = join(dir, "daemon.json");
    const m = monitor(path, () => ({ present: true, since: T0 - 5000, repairs: 2 }));
    m.tick();
    expect(readRuntimeStatus(path)).toMatchObject({
      version: 1,
      pid: process.pid,
      updatedAt: new Date(T0).toISOString(),
      capture: { state: "failing", failedStarts: 3 },
      gate: { present: true, since: new Date(T0 - 5000).toISOString(), repairs: 2 },
    });
    expect(readRuntimeStatus(path)?.stoppedAt).toBeUndefined();
    nowMs += 2000;
    m.stopped();
    expect(readRuntimeStatus(path)?.stoppedAt).toBe(new Date(T0 + 2000).toISOString());
  });

  it("when nothing changes then daemon.json is rewritten every 3 s, and at once when capture changes", () => {
    const path = join(dir, "daemon.json");
    const m = monitor(path);
    health = { capturing: true, sinceMs: T0, failedStarts: 0 };
    const updatedAt = (): string | undefined => readRuntimeStatus(path)?.updatedAt;
    m.tick();
    expect(updatedAt()).toBe(new Date(T0).toISOString());
    nowMs = T0 + 2000;
    m.tick();
    expect(updatedAt()).toBe(new Date(T0).toISOString()); // 2 s old: not yet
    nowMs = T0 + STATUS_REWRITE_EVERY_MS;
    m.tick();
    expect(updatedAt()).toBe(new Date(T0 + STATUS_REWRITE_EVERY_MS).toISOString());
    nowMs += 1000;
    health = { capturing: false, sinceMs: nowMs, failedStarts: 2, lastProblem: "tcpdump exited" };
    m.tick();
    expect(readRuntimeStatus(path)).toMatchObject({ updatedAt: new Date(nowMs).toISOString(), capture: { state: "failing" } });
    expect(STATUS_REWRITE_EVERY_MS).toBeLessThan(REPORT_STALE_MS / 2); // status must never see a live daemon as stuck
  });

  it("when daemon.json cannot be written then one error is logged, not one per tick", () => {
    const m = monitor(join(dir, "missing-dir", "daemon.json"));
    health = { capturing: true, sinceMs: T0, failedStarts: 0 };
    for (let i = 0; i < 5; i++) m.tick();
    expect(logs.filter((l) => l.level === "error" && /runtime status/.test(l.msg))).toHaveLength(1);
  });
});
