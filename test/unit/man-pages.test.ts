/**
 * The man pages (scripts/man.mjs from docs/man/*.md and the code) against the programs as they are: every
 * option each command's --help lists is in its page, every config key with its default is in
 * tknock-server.json(5), and `man -l` renders each page without a warning. Needs a build (`npm test` builds first).
 */
import { execFileSync, spawnSync } from "node:child_process";
import type { Command } from "commander";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClientCli } from "../../client/cli.js";
import { createServerCli } from "../../server/cli.js";
import { defaultServerConfig } from "../../server/config/schema.js";
import { runCli } from "../../src/cli-io.js";
import { memoryIo } from "../support/memory-io.js";

const ROOT = join(import.meta.dirname, "../..");
type Cli = (io: ReturnType<typeof memoryIo>["io"]) => Command;
const PROGRAMS: Record<string, { cli: Cli; page: string }> = {
  tknock: { cli: (io) => createClientCli(io), page: "tknock.1" },
  "tknock-server": { cli: (io) => createServerCli(io), page: "tknock-server.8" },
};

let out: string;
beforeAll(() => {
  out = mkdtempSync(join(tmpdir(), "tknock-man-"));
  execFileSync(process.execPath, [join(ROOT, "scripts/man.mjs"), out], { cwd: ROOT });
});
afterAll(() => rmSync(out, { recursive: true, force: true }));

/** The page's text with roff's escapes and font changes taken out. */
function pageText(page: string): string {
  return readFileSync(join(out, page), "utf8")
    .replace(/\\f[BIRP]/g, "")
    .replace(/\\-/g, "-")
    .replace(/\\e/g, "\\")
    .replace(/\\&/g, "");
}

/** What `PROGRAM ...PATH --help` prints (the CLI in this process: the same commander tree as the binary's). */
async function help(cli: Cli, path: readonly string[]): Promise<string> {
  const { io, out } = memoryIo();
  expect(await runCli(cli(io), [...path, "--help"], io)).toBe(0);
  return out.join("\n");
}

/** The section of a --help text that starts with `title:` up to the next blank line. */
function section(text: string, title: string): string[] {
  const lines = text.split("\n");
  const start = lines.indexOf(`${title}:`);
  if (start < 0) return [];
  const end = lines.findIndex((l, i) => i > start && l.trim() === "");
  return lines.slice(start + 1, end < 0 ? undefined : end);
}

/** Every command path of a program, found through --help (subcommands of subcommands included). */
async function commandPaths(cli: Cli, path: readonly string[] = []): Promise<string[][]> {
  const names = section(await help(cli, path), "Commands")
    .map((l) => /^ {2}(\S+)/.exec(l)?.[1])
    .filter((n): n is string => n !== undefined && n !== "help");
  const out: string[][] = [];
  for (const n of names) out.push([...path, n], ...(await commandPaths(cli, [...path, n])));
  return out;
}

describe("man pages", () => {
  for (const [name, p] of Object.entries(PROGRAMS)) {
    it(`when ${name} or any of its commands lists an option in --help then ${p.page} documents it`, async () => {
      const text = pageText(p.page);
      const paths = [[], ...(await commandPaths(p.cli))];
      expect(paths.length).toBeGreaterThan(5);
      let options = 0;
      for (const path of paths) {
        if (path.length > 0) expect(text, `command ${path.join(" ")}`).toContain(path.join(" "));
        for (const line of section(await help(p.cli, path), "Options")) {
          const long = /^\s+(?:-\w, )?(--[a-z][a-z0-9-]*)/.exec(line)?.[1];
          if (long === undefined || long === "--help") continue;
          options++;
          expect(text, `${name} ${path.join(" ")} ${long}`).toContain(long);
        }
      }
      expect(options).toBeGreaterThan(10);
    });
  }

  it("when the server config has a key then tknock-server.json(5) lists it with the default the code uses", () => {
    const text = pageText("tknock-server.json.5");
    const leaves = (o: object, prefix = ""): [string, unknown][] =>
      Object.entries(o).flatMap(([k, v]) =>
        v !== null && typeof v === "object" && !Array.isArray(v) ? leaves(v as object, `${prefix}${k}.`) : [[`${prefix}${k}`, v] as [string, unknown]],
      );
    const keys = leaves(defaultServerConfig({ clientsFile: "/etc/tknock/clients.json" }));
    expect(keys.length).toBeGreaterThan(25);
    for (const [key, value] of keys) expect(text).toContain(`${key} (default: ${value === undefined ? "none" : JSON.stringify(value)})`);
    expect(text, "keys without a definition in docs/man/tknock-server.json.5.md").not.toContain("UNDOCUMENTED KEYS");
  });

  for (const page of ["tknock.1", "tknock-server.8", "tknock-server.json.5"]) {
    it(`when man -l renders ${page} then it prints the page with no warning`, () => {
      const r = spawnSync("man", ["--warnings", "-P", "cat", "-l", join(out, page)], { encoding: "utf8", env: { ...process.env, MANWIDTH: "100" } });
      if (r.error) throw new Error(`man cannot run (${r.error.message}): apt-get install man-db`);
      expect(r.status, r.stderr).toBe(0);
      expect(r.stderr).toBe("");
      const title = page.replace(/\.\d$/, "");
      expect(r.stdout).toContain(`${title.toUpperCase()}(${page.slice(-1)})`);
      expect(r.stdout).toMatch(/^NAME$/m);
      expect(r.stdout).not.toContain("{{");
    });
  }
});
