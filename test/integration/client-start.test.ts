/**
 * How the built client starts (`npm test` builds it first): the launcher runs the CLI bundle with the V8 code
 * cache the build wrote, and runs it just the same when that cache is missing or does not fit. The launcher is
 * dist/client/bin.js after `npm run build`; tsc's own output of it, dist/client/launch.js, is the same code and
 * stays in place when a suite re-runs tsc alone (which puts the unbundled CLI back at bin.js).
 */
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { cpSync, existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { defaultProfileFields, formatProfileUri } from "../../src/protocol/profile-uri.js";

const CLIENT_DIR = resolve(fileURLToPath(new URL(".", import.meta.url)), "../../dist/client");
const LAUNCHER = join(CLIENT_DIR, "launch.js");
const URI = formatProfileUri({ client: "alice", host: "gw.example.org", open: [22], secret: randomBytes(32), ...defaultProfileFields([22]) });

function tknock(bin: string, args: readonly string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [bin, ...args], { env: { ...process.env, TKNOCK_DEBUG: "1" }, encoding: "utf8", timeout: 30_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("the built client's start", () => {
  let dir: string;
  beforeEach(() => {
    if (!existsSync(join(CLIENT_DIR, "main.cjs"))) throw new Error(`${CLIENT_DIR}/main.cjs is missing: run \`npm run build\` first`);
    dir = mkdtempSync(join(tmpdir(), "tknock-start-"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("when the built CLI starts then V8 uses the code cache the build wrote", () => {
    const r = tknock(LAUNCHER, ["--help"]);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("Usage: tknock");
    expect(r.stderr).toMatch(/code cache used/);
  });

  it("when the code cache does not fit or is missing then the CLI compiles as usual and prints the same", () => {
    const expected = tknock(LAUNCHER, ["sequence", "--uri", URI, "--at", "1700000000"]);
    expect(expected.status).toBe(0);
    // A copy of the built client in a package of its own (bin.js is an ES module).
    writeFileSync(join(dir, "package.json"), '{ "type": "module" }\n');
    cpSync(CLIENT_DIR, join(dir, "client"), { recursive: true });
    const bin = join(dir, "client", "launch.js");
    writeFileSync(join(dir, "client", "main.cjs.v8cache"), randomBytes(4096));
    const foreign = tknock(bin, ["sequence", "--uri", URI, "--at", "1700000000"]);
    expect(foreign.stderr).toMatch(/code cache rejected/);
    expect([foreign.status, foreign.stdout]).toEqual([0, expected.stdout]);
    rmSync(join(dir, "client", "main.cjs.v8cache"));
    const missing = tknock(bin, ["sequence", "--uri", URI, "--at", "1700000000"]);
    expect(missing.stderr).toMatch(/code cache missing/);
    expect([missing.status, missing.stdout]).toEqual([0, expected.stdout]);
  });

  it("when the CLI bundle is missing (a broken install) then the launcher says so in one line and exits 70", () => {
    writeFileSync(join(dir, "package.json"), '{ "type": "module" }\n');
    cpSync(LAUNCHER, join(dir, "bin.js"));
    const r = tknock(join(dir, "bin.js"), ["--help"]);
    expect(r.status).toBe(70);
    expect(r.stderr.trim().split("\n")).toEqual([expect.stringMatching(/main\.cjs cannot be read \(ENOENT\): reinstall tknock, or run npm run build$/)]);
  });
});
