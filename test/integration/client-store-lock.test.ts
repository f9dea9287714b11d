/**
 * Parallel `tknock` processes on one store, with the built CLI (`npm test` builds it first): every change to the
 * store is a read-modify-write under its lock, so none is lost.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { defaultProfileFields, formatProfileUri } from "../../src/protocol/profile-uri.js";

const BIN = resolve(fileURLToPath(new URL(".", import.meta.url)), "../../dist/client/bin.js");

function tknock(home: string, args: readonly string[]): Promise<{ code: number; stderr: string }> {
  return new Promise((done) => {
    execFile(process.execPath, [BIN, ...args], { env: { ...process.env, TKNOCK_HOME: home }, timeout: 60_000 }, (err, _stdout, stderr) => {
      done({ code: err ? (typeof err.code === "number" ? err.code : 1) : 0, stderr: String(stderr) });
    });
  });
}

function uri(host: string): string {
  return formatProfileUri({ client: "alice", host, open: [22], secret: randomBytes(32), ...defaultProfileFields([22]) });
}

describe("the client store under parallel commands", () => {
  let home: string;
  beforeEach(() => {
    if (!existsSync(BIN)) throw new Error(`${BIN} is missing: run \`npm run build\` first`);
    home = mkdtempSync(join(tmpdir(), "tknock-store-lock-"));
  });
  afterEach(() => rmSync(home, { recursive: true, force: true }));

  const stored = (): string[] => Object.keys((JSON.parse(readFileSync(join(home, "profiles.json"), "utf8")) as { profiles: object }).profiles).sort();

  it("when 20 `tknock add` run at once into one store then all 20 profiles are stored", async () => {
    const names = Array.from({ length: 20 }, (_, i) => `host${String(i).padStart(2, "0")}`);
    const results = await Promise.all(names.map((n) => tknock(home, ["add", uri(`${n}.example`), "--name", n])));
    expect(
      results.map((r) => r.code),
      results.map((r) => r.stderr).join("\n"),
    ).toEqual(names.map(() => 0));
    expect(stored()).toEqual(names);
  }, 90_000);

  it("when `remove` and `add` run at once on one store then every remove sticks and every add is kept", async () => {
    const old = Array.from({ length: 8 }, (_, i) => `old${i}`);
    for (const n of old) expect((await tknock(home, ["add", uri(`${n}.example`), "--name", n])).code).toBe(0);
    const fresh = Array.from({ length: 8 }, (_, i) => `new${i}`);
    const results = await Promise.all([
      ...old.map((n) => tknock(home, ["remove", n])),
      ...fresh.map((n) => tknock(home, ["add", uri(`${n}.example`), "--name", n])),
    ]);
    expect(
      results.every((r) => r.code === 0),
      results.map((r) => r.stderr).join("\n"),
    ).toBe(true);
    expect(stored()).toEqual([...fresh].sort());
  }, 90_000);
});
