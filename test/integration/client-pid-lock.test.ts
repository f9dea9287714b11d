/**
 * The client's lock across processes, with the built module (`npm test` builds it first): processes that all find
 * a killed holder's lock take it over one at a time, never two inside at once.
 */
import { execFile, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { afterEach, beforeEach, describe, expect, it } from "vitest";

const MODULE = resolve(fileURLToPath(new URL(".", import.meta.url)), "../../dist/client/pid-lock.js");

function holder(file: string, log: string): Promise<number> {
  const script = `import { appendFileSync } from "node:fs";
import { withPidLock } from ${JSON.stringify(pathToFileURL(MODULE).href)};
await withPidLock(${JSON.stringify(file)}, async () => {
  appendFileSync(${JSON.stringify(log)}, "in\\n");
  await new Promise((r) => setTimeout(r, 15));
  appendFileSync(${JSON.stringify(log)}, "out\\n");
}, { waitMs: 30000 });`;
  return new Promise((done) => {
    execFile(process.execPath, ["--input-type=module", "-e", script], { timeout: 60_000 }, (err) => done(err ? 1 : 0));
  });
}

describe("the client's pid lock across processes", () => {
  let dir: string;
  beforeEach(() => {
    if (!existsSync(MODULE)) throw new Error(`${MODULE} is missing: run \`npm run build\` first`);
    dir = mkdtempSync(join(tmpdir(), "tknock-pid-lock-procs-"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("when 8 processes start on a lock left by a killed process then each gets it in turn and none overlaps", async () => {
    const file = join(dir, "srv.knock");
    const log = join(dir, "log");
    writeFileSync(log, "");
    const dead = spawnSync(process.execPath, ["-e", "0"]).pid;
    writeFileSync(`${file}.lock`, `${dead} 1 ${hostname()}\n`);
    const codes = await Promise.all(Array.from({ length: 8 }, () => holder(file, log)));
    expect(codes).toEqual(Array.from({ length: 8 }, () => 0));
    const lines = readFileSync(log, "utf8").trim().split("\n");
    expect(lines).toEqual(Array.from({ length: 8 }, () => ["in", "out"]).flat());
    expect(existsSync(`${file}.lock`)).toBe(false);
  }, 90_000);
});
