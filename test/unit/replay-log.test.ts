import { appendFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { readReplayRecords, ReplayLog, replayRecordOf, type ReplayRecord } from "../../server/replay-log.js";

const T0_MS = Date.UTC(2026, 0, 1);

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "tknock-replays-"));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function record(i: number, over: Partial<ReplayRecord> = {}): ReplayRecord {
  return {
    time: new Date(T0_MS + i * 1000).toISOString(),
    source: "198.18.0.1",
    kind: "replay",
    client: "alice",
    step: 56_666_666 + i,
    ports: [34366, 56589, 52159, 24766],
    ...over,
  };
}

function totalBytes(): number {
  return readdirSync(dir).reduce((sum, f) => sum + statSync(join(dir, f)).size, 0);
}

describe("replay log", () => {
  it("when records are appended then they read back in order with their fields", () => {
    const log = new ReplayLog(join(dir, "replays.jsonl"), { maxBytes: 1 << 20, keepFiles: 2 });
    const skew = record(1, { kind: "skew", offsetWindows: 3 });
    const brute: ReplayRecord = { time: new Date(T0_MS + 2000).toISOString(), source: "198.18.0.7", kind: "bruteforce", failures: 11 };
    for (const r of [record(0), skew, brute]) expect(log.append(r)).toBe(true);
    log.close();
    expect(log.read()).toEqual([record(0), skew, brute]);
    expect(statSync(join(dir, "replays.jsonl")).mode & 0o777).toBe(0o600);
  });

  it("when a reader is created then no file is created until something is appended", () => {
    const log = new ReplayLog(join(dir, "replays.jsonl"), { maxBytes: 4096, keepFiles: 1 });
    expect(log.read()).toEqual([]);
    expect(readdirSync(dir)).toEqual([]);
  });

  it("when a flood of records is appended then rotation bounds the total size to maxBytes x (keepFiles + 1)", () => {
    const maxBytes = 4096;
    const keepFiles = 2;
    const log = new ReplayLog(join(dir, "replays.jsonl"), { maxBytes, keepFiles, maxRecordsPerSecond: 1_000_000 });
    for (let i = 0; i < 5000; i++) log.append(record(i));
    log.close();
    expect(totalBytes()).toBeLessThanOrEqual(maxBytes * (keepFiles + 1));
    expect(readdirSync(dir).sort()).toEqual(["replays.jsonl", "replays.jsonl.1", "replays.jsonl.2"]);
    expect(log.stats().rotations).toBeGreaterThan(10);
    // The newest records survive, oldest first and contiguous.
    const steps = log.read().map((r) => r.step!);
    expect(steps[steps.length - 1]).toBe(56_666_666 + 4999);
    expect(steps).toEqual(steps.map((_, i) => steps[0]! + i));
  });

  it("when reading with sinceMs then records from rotated files are included and older ones left out", () => {
    const log = new ReplayLog(join(dir, "replays.jsonl"), { maxBytes: 4096, keepFiles: 3, maxRecordsPerSecond: 1_000_000 });
    for (let i = 0; i < 60; i++) log.append(record(i));
    log.close();
    expect(existsSync(join(dir, "replays.jsonl.1"))).toBe(true);
    const since = log.read({ sinceMs: T0_MS + 10_000 });
    expect(since.map((r) => r.step! - 56_666_666)).toEqual(Array.from({ length: 50 }, (_, i) => i + 10));
  });

  it("when lines are malformed or cut off then they are skipped and counted", () => {
    const path = join(dir, "replays.jsonl");
    const log = new ReplayLog(path, { maxBytes: 1 << 20, keepFiles: 1 });
    log.append(record(0));
    appendFileSync(path, 'not json\n{"time":"2026-01-01T00:00:01Z","source":"x","kind":"party"}\n[1,2]\n\n');
    log.append(record(2));
    appendFileSync(join(dir, "replays.jsonl.1"), `${JSON.stringify(record(-1))}\n{"time":"2026-01-01T00:00:00.000Z","sour`);
    log.close();
    expect(readReplayRecords(path, 1)).toEqual({ records: [record(-1), record(0), record(2)], malformed: 4 });
    expect(log.read().length).toBe(3);
    expect(log.stats().malformedRead).toBe(4);
  });

  it("when more records arrive in one second than the cap then the rest are dropped and the next written record says how many", () => {
    const log = new ReplayLog(join(dir, "replays.jsonl"), { maxBytes: 1 << 20, keepFiles: 1, maxRecordsPerSecond: 3 });
    const same = (i: number): ReplayRecord => ({ ...record(0), step: i });
    const written = Array.from({ length: 10 }, (_, i) => log.append(same(i)));
    expect(written.filter(Boolean)).toHaveLength(3);
    log.append(record(1)); // the next second
    log.close();
    const rs = log.read();
    expect(rs).toHaveLength(4);
    expect(rs[3]).toMatchObject({ step: 56_666_667, suppressedBefore: 7 });
    expect(log.stats()).toMatchObject({ written: 4, suppressed: 7 });
  });

  it("when the directory is missing then append returns false and counts the error instead of throwing", () => {
    const log = new ReplayLog(join(dir, "gone", "replays.jsonl"), { maxBytes: 4096, keepFiles: 1 });
    expect(log.append(record(0))).toBe(false);
    expect(log.stats().writeErrors).toBe(1);
    expect(log.lastError).toContain("ENOENT");
  });

  it("when a refusal decision is turned into a record then it carries names, step and ports and no secret", () => {
    const r = replayRecordOf({ kind: "refuse", reason: "skew", client: "alice", step: 7, src: "198.18.0.1", ports: [1, 2], offsetWindows: -2 }, T0_MS);
    expect(r).toEqual({ time: "2026-01-01T00:00:00.000Z", source: "198.18.0.1", kind: "skew", client: "alice", step: 7, ports: [1, 2], offsetWindows: -2 });
    expect(replayRecordOf({ kind: "bruteforce", src: "s", failures: 12, banned: true }, T0_MS)).toEqual({
      time: "2026-01-01T00:00:00.000Z",
      source: "s",
      kind: "bruteforce",
      failures: 12,
    });
    expect(replayRecordOf({ kind: "progress", src: "s" }, T0_MS)).toBeUndefined();
    const log = new ReplayLog(join(dir, "replays.jsonl"), { maxBytes: 4096, keepFiles: 1 });
    log.append(r!);
    log.close();
    expect(Object.keys(JSON.parse(readFileSync(join(dir, "replays.jsonl"), "utf8")) as object).sort()).toEqual([
      "client",
      "kind",
      "offsetWindows",
      "ports",
      "source",
      "step",
      "time",
    ]);
  });
});
