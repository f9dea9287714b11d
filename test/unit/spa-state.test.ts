import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { StepStore } from "../../server/state.js";

const OPTS = { nowMs: 1_700_000_000_000, clients: [{ name: "alice", periodSeconds: 30 }], skewWindows: 1, diagnosticWindows: 10 };
const NONCE = "000102030405060708090a0b0c0d0e0f";
let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "tknock-spa-state-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe("SPA nonces in the state file", () => {
  it("when nonces are stored then a restart reads them back, with the steps", () => {
    const path = join(dir, "state.json");
    StepStore.createEmpty(path);
    const s = StepStore.open(path, OPTS);
    s.record("alice", 5);
    s.setSpaNonces(new Map([[NONCE, 1_700_000_090_000]]));
    const again = StepStore.open(path, OPTS);
    expect(again.failedClosed).toBe(false);
    expect([...again.spaNonces()]).toEqual([[NONCE, 1_700_000_090_000]]);
    expect(again.get("alice")).toBe(5);
  });

  it("when a state file of before SPA is read then it has no nonces and does not fail closed", () => {
    const path = join(dir, "state.json");
    writeFileSync(path, JSON.stringify({ version: 1, lastAcceptedStep: { alice: 3 } }));
    const s = StepStore.open(path, OPTS);
    expect(s.failedClosed).toBe(false);
    expect(s.spaNonces().size).toBe(0);
  });

  it("when a nonce entry is malformed then the file is invalid and the store fails closed", () => {
    const path = join(dir, "state.json");
    writeFileSync(path, JSON.stringify({ version: 1, lastAcceptedStep: {}, spaNonces: { XYZ: 1 } }));
    expect(StepStore.open(path, OPTS).failedClosed).toBe(true);
    expect(JSON.parse(readFileSync(path, "utf8"))).not.toHaveProperty("spaNonces");
  });
});
