/**
 * The clients.json lock across real processes (the unit suite races commands inside one process): parallel
 * `tknock-server enroll` processes all land, and a `revoke` racing two `enroll`s sticks.
 */
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ClientsFile } from "../../server/config/schema.js";
import type { ExecResult } from "../../lab/lab.js";
import { REPO_ROOT, SERVER_BIN } from "../../lab/tknock-lab.js";

function server(configPath: string, args: readonly string[]): Promise<ExecResult> {
  return new Promise((resolve) => {
    execFile("node", [SERVER_BIN, "--config", configPath, ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === "number" ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

describe("clients.json lock across processes", () => {
  let dir: string;
  let configPath: string;
  const names = (): string[] => Object.keys((JSON.parse(readFileSync(join(dir, "etc/clients.json"), "utf8")) as ClientsFile).clients).sort();

  beforeAll(async () => {
    if (!existsSync(SERVER_BIN)) throw new Error(`${SERVER_BIN} is missing: run npm run build (npm test does) in ${REPO_ROOT}`);
    dir = mkdtempSync(join(tmpdir(), "tknock-clients-lock-"));
    configPath = join(dir, "etc/server.json");
    const init = await server(configPath, ["init", "--interface", "any", "--state-dir", join(dir, "state")]);
    if (init.code !== 0) throw new Error(`init failed: ${init.stderr}`);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("when 20 enroll processes run at once then 20 clients are stored", async () => {
    const want = Array.from({ length: 20 }, (_, i) => `p${i}`);
    const runs = await Promise.all(want.map((n) => server(configPath, ["enroll", n, "--host", "h"])));
    expect(runs.filter((r) => r.code !== 0).map((r) => r.stderr)).toEqual([]);
    expect(names()).toEqual([...want].sort());
  }, 60_000);

  it("when a revoke process races two enroll processes then the revoked client stays gone (5 tries)", async () => {
    for (let t = 0; t < 5; t++) {
      const victim = await server(configPath, ["enroll", `victim${t}`, "--host", "h"]);
      expect(victim.code).toBe(0);
      const runs = await Promise.all([
        server(configPath, ["enroll", `x${t}`, "--host", "h"]),
        server(configPath, ["revoke", `victim${t}`]),
        server(configPath, ["enroll", `y${t}`, "--host", "h"]),
      ]);
      expect(runs.map((r) => r.code)).toEqual([0, 0, 0]);
      expect(names()).not.toContain(`victim${t}`);
      expect(names()).toEqual(expect.arrayContaining([`x${t}`, `y${t}`]));
    }
  }, 60_000);
});
