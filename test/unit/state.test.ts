import * as realFs from "node:fs";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { stepAt } from "../../src/protocol/window.js";
import { StepStore, UNSAVED_SUFFIX } from "../../server/state.js";

// writeFileAtomic (server/config/load.ts) uses writeSync; a test makes one write fail half-way, as a crash would.
const failNextWrite = vi.hoisted(() => ({ on: false }));
// Renaming or removing the state file fails too (a read-only remount, say).
const failMoves = vi.hoisted(() => ({ on: false }));
vi.mock("node:fs", async (importOriginal) => {
  const fs = await importOriginal<typeof import("node:fs")>();
  const writeSync = ((fd: number, data: string | NodeJS.ArrayBufferView, ...rest: unknown[]) => {
    if (failNextWrite.on && typeof data === "string") {
      failNextWrite.on = false;
      fs.writeSync(fd, data.slice(0, Math.floor(data.length / 2)));
      throw Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" });
    }
    return (fs.writeSync as (...a: unknown[]) => number)(fd, data, ...rest);
  }) as typeof fs.writeSync;
  const erofs = (): never => {
    throw Object.assign(new Error("EROFS: read-only file system"), { code: "EROFS" });
  };
  const renameSync = ((...a: Parameters<typeof fs.renameSync>) => (failMoves.on ? erofs() : fs.renameSync(...a))) as typeof fs.renameSync;
  const unlinkSync = ((...a: Parameters<typeof fs.unlinkSync>) => (failMoves.on ? erofs() : fs.unlinkSync(...a))) as typeof fs.unlinkSync;
  const over = { writeSync, renameSync, unlinkSync };
  return { ...fs, ...over, default: { ...fs, ...over } };
});

const NOW_MS = 1_700_000_000_000;
const CLIENTS = [
  { name: "alice", periodSeconds: 30 },
  { name: "bob", periodSeconds: 60 },
];

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "tknock-state-"));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

const DIAGNOSTIC_WINDOWS = 3;

function openStore(path: string, warnings: string[] = []): StepStore {
  return StepStore.open(path, { nowMs: NOW_MS, clients: CLIENTS, skewWindows: 1, diagnosticWindows: DIAGNOSTIC_WINDOWS, log: (m) => warnings.push(m) });
}

describe("state: last accepted step per client", () => {
  it("when steps are recorded then a new store reads them back and the file has the documented shape", () => {
    const path = join(dir, "state.json");
    StepStore.createEmpty(path);
    const store = openStore(path);
    expect(store.failedClosed).toBe(false);
    expect(store.get("alice")).toBeUndefined();
    store.record("alice", 56_666_666);
    store.record("bob", 28_333_333);
    expect(JSON.parse(readFileSync(path, "utf8"))).toEqual({ version: 1, lastAcceptedStep: { alice: 56_666_666, bob: 28_333_333 } });
    const again = openStore(path);
    expect([...again.all()]).toEqual([
      ["alice", 56_666_666],
      ["bob", 28_333_333],
    ]);
    expect(StepStore.readOnly(path)).toEqual({ alice: 56_666_666, bob: 28_333_333 });
    expect(realFs.statSync(path).mode & 0o777).toBe(0o600);
  });

  it("when an older step is recorded then the stored step does not move back", () => {
    const path = join(dir, "state.json");
    StepStore.createEmpty(path);
    const store = openStore(path);
    store.record("alice", 100);
    store.record("alice", 99);
    expect(store.get("alice")).toBe(100);
    expect(openStore(path).get("alice")).toBe(100);
  });

  it("when a client is forgotten then its step is gone from the file", () => {
    const path = join(dir, "state.json");
    StepStore.createEmpty(path);
    const store = openStore(path);
    store.record("alice", 100);
    store.forget("alice");
    expect(openStore(path).get("alice")).toBeUndefined();
  });

  it("when a write fails half-way then no temp file remains, the file is moved aside so the next start fails closed, and the step stays spent", () => {
    const path = join(dir, "state.json");
    StepStore.createEmpty(path);
    const store = openStore(path);
    store.record("alice", 100);
    const before = readFileSync(path, "utf8");
    failNextWrite.on = true;
    expect(() => store.record("alice", 101)).toThrow(expect.objectContaining({ code: "TKNOCK_STATE_WRITE" }));
    // The old file would accept step 101 again after a restart: it is gone from state.json, kept aside.
    expect(readdirSync(dir)).toEqual([`state.json${UNSAVED_SUFFIX}`]);
    expect(readFileSync(`${path}${UNSAVED_SUFFIX}`, "utf8")).toBe(before);
    expect(store.get("alice")).toBe(101);
    const warnings: string[] = [];
    const restarted = openStore(path, warnings);
    expect(restarted.failedClosed).toBe(true);
    expect(restarted.get("alice")).toBe(stepAt(NOW_MS, 30) + DIAGNOSTIC_WINDOWS);
    expect(warnings[0]).toContain(UNSAVED_SUFFIX);
  });

  it("when a write fails and a later one succeeds then the file holds the step that could not be written", () => {
    const path = join(dir, "state.json");
    StepStore.createEmpty(path);
    const store = openStore(path);
    failNextWrite.on = true;
    expect(() => store.record("alice", 101)).toThrow(expect.objectContaining({ code: "TKNOCK_STATE_WRITE" }));
    store.record("bob", 7);
    expect(StepStore.readOnly(path)).toEqual({ alice: 101, bob: 7 });
  });

  it("when a write fails and the file cannot be moved aside either then record throws TKNOCK_STATE_UNPROTECTED", () => {
    const path = join(dir, "state.json");
    StepStore.createEmpty(path);
    const store = openStore(path);
    failNextWrite.on = true;
    failMoves.on = true;
    try {
      expect(() => store.record("alice", 101)).toThrow(expect.objectContaining({ code: "TKNOCK_STATE_UNPROTECTED" }));
    } finally {
      failMoves.on = false;
    }
    expect(store.get("alice")).toBe(101);
  });

  it("when the state directory is missing then record throws TKNOCK_STATE_WRITE", () => {
    const path = join(dir, "state.json");
    StepStore.createEmpty(path);
    const store = openStore(path);
    rmSync(dir, { recursive: true });
    expect(() => store.record("alice", 5)).toThrow(expect.objectContaining({ code: "TKNOCK_STATE_WRITE" }));
  });
});

describe("state: steps spent by skew refusals", () => {
  it("when spent steps are set then a new store reads them back, and a file without them (older versions) still loads", () => {
    const path = join(dir, "state.json");
    StepStore.createEmpty(path);
    const store = openStore(path);
    store.record("alice", 100);
    store.setSpent("alice", [104, 103, 99]);
    // 99 is at or below the last accepted step: refused anyway, not stored.
    expect(JSON.parse(readFileSync(path, "utf8"))).toEqual({ version: 1, lastAcceptedStep: { alice: 100 }, spentSteps: { alice: [103, 104] } });
    expect(openStore(path).spent("alice")).toEqual([103, 104]);
    expect(openStore(path).spent("bob")).toEqual([]);
    writeFileSync(path, JSON.stringify({ version: 1, lastAcceptedStep: { alice: 5 } }));
    const old = openStore(path);
    expect(old.failedClosed).toBe(false);
    expect(old.spent("alice")).toEqual([]);
  });

  it("when a client is forgotten then its spent steps go too", () => {
    const path = join(dir, "state.json");
    StepStore.createEmpty(path);
    const store = openStore(path);
    store.setSpent("bob", [50]);
    store.forget("bob");
    expect(openStore(path).spent("bob")).toEqual([]);
  });

  it("when spentSteps is malformed then the store fails closed", () => {
    const path = join(dir, "state.json");
    writeFileSync(path, JSON.stringify({ version: 1, lastAcceptedStep: {}, spentSteps: { alice: ["7"] } }));
    expect(openStore(path).failedClosed).toBe(true);
  });
});

describe("state: fail closed", () => {
  // Current step + max(skew, diagnostic): past every step that may have been accepted or spent by a skew refusal.
  const expected = { alice: stepAt(NOW_MS, 30) + DIAGNOSTIC_WINDOWS, bob: stepAt(NOW_MS, 60) + DIAGNOSTIC_WINDOWS };

  it("when the file is missing then every client starts at its current step + max(skew, diagnostic), a warning is logged and the file is written", () => {
    const path = join(dir, "state.json");
    const warnings: string[] = [];
    const store = openStore(path, warnings);
    expect(store.failedClosed).toBe(true);
    expect(Object.fromEntries(store.all())).toEqual(expected);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain(path);
    expect(StepStore.readOnly(path)).toEqual(expected);
    // The next start is normal.
    const next: string[] = [];
    expect(openStore(path, next).failedClosed).toBe(false);
    expect(next).toEqual([]);
  });

  for (const [what, content] of [
    ["not JSON", '{"version":1,"lastAccepted'],
    ["the wrong version", JSON.stringify({ version: 2, lastAcceptedStep: {} })],
    ["a negative step", JSON.stringify({ version: 1, lastAcceptedStep: { alice: -1 } })],
    ["a string step", JSON.stringify({ version: 1, lastAcceptedStep: { alice: "5" } })],
    ["an array", "[]"],
  ] as const) {
    it(`when the file holds ${what} then the store fails closed and readOnly reports TKNOCK_STATE_INVALID`, () => {
      const path = join(dir, "state.json");
      writeFileSync(path, content);
      expect(() => StepStore.readOnly(path)).toThrow(expect.objectContaining({ code: "TKNOCK_STATE_INVALID" }));
      const warnings: string[] = [];
      const store = openStore(path, warnings);
      expect(store.failedClosed).toBe(true);
      expect(Object.fromEntries(store.all())).toEqual(expected);
      expect(warnings).toHaveLength(1);
    });
  }

  it("when the file is missing then readOnly gives no steps and creates nothing", () => {
    const path = join(dir, "state.json");
    expect(StepStore.readOnly(path)).toEqual({});
    expect(readdirSync(dir)).toEqual([]);
  });

  it("when the fail-closed file cannot be written then open throws TKNOCK_STATE_WRITE", () => {
    expect(() => openStore(join(dir, "no-such-dir", "state.json"))).toThrow(expect.objectContaining({ code: "TKNOCK_STATE_WRITE" }));
  });
});
