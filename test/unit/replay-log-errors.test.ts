import { describe, expect, it } from "vitest";
import { ReplayLog, type ReplayRecord, type ReplayWriteErrorReport } from "../../server/replay-log.js";

const T0_MS = Date.UTC(2026, 0, 1);

function record(atMs: number): ReplayRecord {
  return { time: new Date(atMs).toISOString(), source: "198.18.0.1", kind: "replay", client: "alice", step: 1, ports: [10000, 20000] };
}

describe("replay log write errors", () => {
  it("when every write fails (full disk) then the first is reported at once and the rest once a minute with the count lost", () => {
    const reports: ReplayWriteErrorReport[] = [];
    // /dev/full accepts the open and fails every write with ENOSPC, as a full filesystem does.
    const log = new ReplayLog("/dev/full", { maxBytes: 1 << 20, keepFiles: 1, onWriteError: (r) => reports.push(r) });
    for (let s = 0; s < 60; s++) expect(log.append(record(T0_MS + s * 1000))).toBe(false);
    expect(reports).toHaveLength(1);
    expect(reports[0]).toMatchObject({ path: "/dev/full", lost: 1 });
    expect(reports[0]?.error).toContain("ENOSPC");
    log.append(record(T0_MS + 60_000));
    expect(reports.map((r) => r.lost)).toEqual([1, 60]);
    expect(log.stats().writeErrors).toBe(61);
    log.close();
  });

  it("when the reporter throws then append still returns false instead of throwing", () => {
    const log = new ReplayLog("/dev/full", {
      maxBytes: 1 << 20,
      keepFiles: 1,
      onWriteError: () => {
        throw new Error("logger broke");
      },
    });
    expect(log.append(record(T0_MS))).toBe(false);
    log.close();
  });
});
