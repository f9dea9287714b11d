import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { withFileLock } from "../../src/file-lock.js";
import { TknockError } from "../../src/errors.js";

describe("withFileLock", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "tknock-lock-"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("when 20 read-modify-write cycles race then none is lost", async () => {
    const file = join(dir, "counter");
    writeFileSync(file, "0");
    const bump = (): Promise<void> =>
      withFileLock(file, async () => {
        const n = Number(readFileSync(file, "utf8"));
        await new Promise((r) => setTimeout(r, 2)); // give the others a chance to interleave
        writeFileSync(file, String(n + 1));
      });
    await Promise.all(Array.from({ length: 20 }, bump));
    expect(readFileSync(file, "utf8")).toBe("20");
    expect(existsSync(`${file}.lock`)).toBe(false);
  });

  it("when the holder's lock has gone stale then the next command takes it over", async () => {
    const file = join(dir, "clients.json");
    mkdirSync(`${file}.lock`); // left by a killed process
    const old = new Date(Date.now() - 60_000);
    utimesSync(`${file}.lock`, old, old);
    await expect(withFileLock(file, () => "done", { waitMs: 500 })).resolves.toBe("done");
  });

  it("when the lock stays held then the waiter gives up with TKNOCK_LOCKED", async () => {
    const file = join(dir, "clients.json");
    const err = await withFileLock(file, () => withFileLock(file, () => "never", { waitMs: 200 }).catch((e: unknown) => e));
    expect(err).toBeInstanceOf(TknockError);
    expect((err as TknockError).code).toBe("TKNOCK_LOCKED");
  });

  it("when the function throws then the lock is released", async () => {
    const file = join(dir, "x");
    await expect(withFileLock(file, () => { throw new Error("boom"); })).rejects.toThrow("boom");
    await expect(withFileLock(file, () => 1, { waitMs: 100 })).resolves.toBe(1);
  });
});
