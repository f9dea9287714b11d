import * as realFs from "node:fs";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { stepAt } from "../../src/protocol/window.js";
import { StepStore } from "../../server/state.js";

// writeFileAtomic (src/config/load.ts) uses writeSync; a test makes one write fail half-way, as a crash would.
const failNextWrite = vi.hoisted(() => ({ on: false }));
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
  return { ...fs, writeSync, default: { ...fs, writeSync } };
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

function openStore(path: string, warnings: string[] = []): StepStore {
  return StepStore.open(path, { nowMs: NOW_MS, clients: CLIENTS, skewWindows: 1, log: (m) => warnings.push(m) });
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

  it("when a write fails half-way then the file keeps the old content, no temp file remains and the store keeps the old step", () => {
    const path = join(dir, "state.json");
    StepStore.createEmpty(path);
    const store = openStore(path);
    store.record("alice", 100);
    const before = readFileSync(path, "utf8");
    failNextWrite.on = true;
    expect(() => store.record("alice", 101)).toThrow(expect.objectContaining({ code: "TKNOCK_STATE_WRITE" }));
    expect(readFileSync(path, "utf8")).toBe(before);
    expect(readdirSync(dir)).toEqual(["state.json"]);
    expect(store.get("alice")).toBe(100);
    store.record("alice", 101);
    expect(openStore(path).get("alice")).toBe(101);
  });

  it("when the state directory is missing then record throws TKNOCK_STATE_WRITE", () => {
    const path = join(dir, "state.json");
    StepStore.createEmpty(path);
    const store = openStore(path);
    rmSync(dir, { recursive: true });
    expect(() => store.record("alice", 5)).toThrow(expect.objectContaining({ code: "TKNOCK_STATE_WRITE" }));
  });
});

describe("state: fail closed", () => {
  const expected = { alice: stepAt(NOW_MS, 30) + 1, bob: stepAt(NOW_MS, 60) + 1 };

  it("when the file is missing then every client starts at its current step + skew, a warning is logged and the file is written", () => {
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
    ["not JSON", "{\"version\":1,\"lastAccepted"],
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
