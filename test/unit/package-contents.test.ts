/**
 * What `npm pack` ships (the package is installed by copying its tarball, see README "Protect SSH on a server"):
 * the two programs and what they import, the docs and the systemd unit; never the lab, the tests or the benches.
 * Reads `npm pack --dry-run --json`, so it needs a build (`npm test` builds first).
 */
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, join, normalize } from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = join(import.meta.dirname, "../..");

let packed: Promise<string[]> | undefined;

function packedFiles(): Promise<string[]> {
  packed ??= new Promise((resolve, reject) => {
    execFile("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], { cwd: ROOT, timeout: 60_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout) => {
      // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- an Error; @types/node's Omit<> hides it
      if (err) return reject(err);
      const [pack] = JSON.parse(stdout) as { files: { path: string }[] }[];
      resolve((pack?.files ?? []).map((f) => f.path));
    });
  });
  return packed;
}

describe("npm package contents", () => {
  it("when the package is packed then it holds both programs, the docs and the unit, and no test, bench or lab file", async () => {
    const files = await packedFiles();
    const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { bin: Record<string, string> };
    for (const bin of Object.values(pkg.bin)) expect(files).toContain(bin);
    expect(files).toContain("docs/systemd/tknock-server.service");
    expect(files).toContain("README.md");
    expect(files.filter((f) => /^dist\/(test|bench|lab)\//.test(f) || /\.test\.js$/.test(f))).toEqual([]);
  }, 60_000);

  it("when a packed module imports another by a relative path then that module is packed too", async () => {
    const files = await packedFiles();
    const shipped = new Set(files);
    const missing: string[] = [];
    for (const f of files.filter((p) => p.endsWith(".js"))) {
      const code = readFileSync(join(ROOT, f), "utf8");
      for (const m of code.matchAll(/(?:from|import)\s*\(?\s*"(\.{1,2}\/[^"]+)"/g)) {
        const target = normalize(join(dirname(f), m[1] as string));
        if (!shipped.has(target)) missing.push(`${f} -> ${target}`);
      }
    }
    expect(missing).toEqual([]);
  }, 60_000);
});
