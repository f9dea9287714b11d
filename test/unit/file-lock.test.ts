import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { withFileLock } from "../../src/file-lock.js";
import { rejectionCodeOf } from "../support/error-code.js";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "tknock-lock-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe("withFileLock", () => {
  it("when ten holders run at once then none overlaps another", async () => {
    const file = join(dir, "shared.json");
    let inside = 0;
    let most = 0;
    await Promise.all(
      Array.from({ length: 10 }, () =>
        withFileLock(file, async () => {
          inside++;
          most = Math.max(most, inside);
          await new Promise((r) => setTimeout(r, 5));
          inside--;
        }),
      ),
    );
    expect(most).toBe(1);
  });

  it("when the lock's folder does not exist then it fails at once with TKNOCK_LOCK instead of retrying", async () => {
    const started = Date.now();
    expect(await rejectionCodeOf(withFileLock(join(dir, "missing", "x.json"), () => 1, { waitMs: 10_000 }))).toBe("TKNOCK_LOCK");
    expect(Date.now() - started).toBeLessThan(2000); // generous: retrying would take the whole 10 s
  });

  it("when the lock stays held past waitMs then it fails with TKNOCK_LOCKED", async () => {
    const file = join(dir, "held.json");
    let release!: () => void;
    const holder = withFileLock(file, () => new Promise<void>((r) => (release = r)));
    await new Promise((r) => setTimeout(r, 20));
    expect(await rejectionCodeOf(withFileLock(file, () => 1, { waitMs: 200 }))).toBe("TKNOCK_LOCKED");
    release();
    await holder;
    expect(await withFileLock(file, () => 2)).toBe(2);
  });

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

  it("when the function throws then the lock is released", async () => {
    const file = join(dir, "x");
    await expect(
      withFileLock(file, () => {
        throw new Error("boom");
      }),
    ).rejects.toThrow("boom");
    await expect(withFileLock(file, () => 1, { waitMs: 100 })).resolves.toBe(1);
  });
});
