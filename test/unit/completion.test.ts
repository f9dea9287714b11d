/**
 * The bash and zsh completion scripts (scripts/completions.mjs, from the commander trees), loaded into real
 * shells: they load without error, and complete profile names from the client store and client names from
 * clients.json through the programs themselves. Needs a build (`npm test` builds first) and, for zsh, zsh
 * (.ci/run installs it).
 */
import { execFileSync, spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClientCli } from "../../client/cli.js";
import { createServerCli } from "../../server/cli.js";
import { runCli } from "../../src/cli-io.js";
import { memoryIo } from "../support/memory-io.js";

const ROOT = join(import.meta.dirname, "../..");
const hasZsh = spawnSync("zsh", ["--version"]).status === 0;

let dir: string;
let env: Record<string, string>;
let config: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tknock-completion-"));
  execFileSync(process.execPath, [join(ROOT, "scripts/completions.mjs"), join(dir, "completions")], { cwd: ROOT });
  // The programs as an installed package has them on PATH.
  mkdirSync(join(dir, "bin"));
  for (const [name, bin] of [
    ["tknock", "dist/client/bin.js"],
    ["tknock-server", "dist/server/bin.js"],
  ] as const) {
    writeFileSync(join(dir, "bin", name), `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(join(ROOT, bin))} "$@"\n`);
    chmodSync(join(dir, "bin", name), 0o755);
  }
  config = join(dir, "etc/server.json");
  const server = async (args: string[]): Promise<string[]> => {
    const { io, out, err } = memoryIo();
    const code = await runCli(createServerCli(io), ["--config", config, ...args], io);
    if (code !== 0) throw new Error(`tknock-server ${args.join(" ")}: ${err.join(" ")}`);
    return out;
  };
  await server(["init", "--interface", "lo", "--state-dir", join(dir, "state")]);
  const uri = (await server(["enroll", "bob", "--host", "gw.example"])).find((l) => l.startsWith("otpauth://"));
  await server(["enroll", "carol", "--host", "gw.example"]);
  const home = join(dir, "home");
  mkdirSync(home, { mode: 0o700 });
  for (const name of ["alice-laptop", "alfred", "zed"]) {
    const { io, err } = memoryIo({ env: { TKNOCK_HOME: home } });
    if ((await runCli(createClientCli(io), ["add", uri ?? "", "--name", name], io)) !== 0) throw new Error(`tknock add: ${err.join(" ")}`);
  }
  env = { PATH: `${join(dir, "bin")}:${process.env["PATH"] ?? ""}`, TKNOCK_HOME: home, HOME: dir };
}, 60_000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs the bash completion function for a command line whose last word is being completed. */
function bashComplete(words: string[]): string[] {
  const script = `source "$1/tknock"; source "$1/tknock-server"; shift
COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); f=_\${1//-/_}; "$f"; printf '%s\\n' "\${COMPREPLY[@]}"`;
  const r = spawnSync("bash", ["--norc", "-c", script, "bash", join(dir, "completions/bash"), ...words], { encoding: "utf8", env });
  expect(r.stderr).toBe("");
  expect(r.status).toBe(0);
  return r.stdout.split("\n").filter((l) => l !== "");
}

describe("bash completion", () => {
  it("when both scripts are sourced then they load without error and register both programs", () => {
    const bash = join(dir, "completions/bash");
    const r = spawnSync("bash", ["--norc", "-c", `set -e; source "${bash}/tknock"; source "${bash}/tknock-server"; complete -p tknock tknock-server`], {
      encoding: "utf8",
      env,
    });
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("-F _tknock tknock");
    expect(r.stdout).toContain("-F _tknock_server tknock-server");
  });

  it("when a profile name is begun as the knock target then the profile names from the store complete it", () => {
    expect(bashComplete(["tknock", "al"]).sort()).toEqual(["alfred", "alice-laptop"]);
    expect(bashComplete(["tknock", "alice"])).toEqual(["alice-laptop"]);
    expect(bashComplete(["tknock", "remove", "z"])).toEqual(["zed"]);
  });

  it("when --store names another store then its names are used", () => {
    expect(bashComplete(["tknock", "--store", join(dir, "nowhere"), "export", "al"])).toEqual([]);
    expect(bashComplete(["tknock", "--store", join(dir, "home"), "export", "al"]).sort()).toEqual(["alfred", "alice-laptop"]);
  });

  it("when nothing is begun then commands and profile names are offered", () => {
    const words = bashComplete(["tknock", ""]);
    expect(words).toEqual(expect.arrayContaining(["add", "list", "proxy", "alfred", "zed"]));
  });

  it("when revoke's client is begun then the client names from clients.json complete it, and enroll offers none", () => {
    expect(bashComplete(["tknock-server", "--config", config, "revoke", ""]).sort()).toEqual(["bob", "carol"]);
    expect(bashComplete(["tknock-server", "--config", config, "revoke", "c"])).toEqual(["carol"]);
    expect(bashComplete(["tknock-server", "--config", config, "enroll", ""])).toEqual([]);
  });

  it("when an option is begun or takes one of some values then those complete", () => {
    expect(bashComplete(["tknock-server", "run", "--log-format", ""])).toEqual(["json", "journal", "pretty"]);
    expect(bashComplete(["tknock-server", "status", "--j"])).toEqual(["--json"]);
    expect(bashComplete(["tknock", "alfred", "--no-w"])).toEqual(["--no-wait-window"]);
    expect(bashComplete(["tknock-server", "firewall", ""])).toEqual(["remove"]);
  });
});

describe.skipIf(!hasZsh && process.env["CI"] !== "true")("zsh completion", () => {
  /** Types a line and TAB into an interactive zsh (zpty) with the completion on fpath; returns what zsh printed. */
  function zshComplete(line: string): string {
    const script = `zmodload zsh/zpty
zpty z zsh -f -i
zpty -w z "PS1='%% '; fpath=($1 \\$fpath); autoload -U compinit; compinit -u -d $2/zcompdump; echo READY"
zpty -r -m z out '*READY*'
zpty -w -n z "$3"$'\\t\\t'
sleep 2
local all=""
while zpty -r -t z out; do all+=$out; done
print -r -- "$all"
zpty -d z`;
    const r = spawnSync("zsh", ["-f", "-c", script, "zsh", join(dir, "completions/zsh"), dir, line], { encoding: "utf8", env, timeout: 20_000 });
    if (r.error) throw new Error(`zsh cannot run (${r.error.message}): apt-get install zsh`);
    return r.stdout;
  }

  it("when compinit runs with the scripts on fpath then both programs get their completion function", () => {
    const r = spawnSync(
      "zsh",
      [
        "-f",
        "-c",
        `fpath=($1 $fpath); autoload -U compinit; compinit -u -d $2/zcompdump-a; print -r -- "$_comps[tknock] $_comps[tknock-server]"`,
        "zsh",
        join(dir, "completions/zsh"),
        dir,
      ],
      {
        encoding: "utf8",
        env,
      },
    );
    expect(r.stderr).toBe("");
    expect(r.stdout.trim()).toBe("_tknock _tknock-server");
  });

  it("when a profile name is begun in zsh then the store's names are listed, and revoke lists clients", () => {
    expect(zshComplete("tknock al")).toMatch(/alfred[\s\S]*alice-laptop/);
    expect(zshComplete(`tknock-server --config ${config} revoke c`)).toContain("carol");
  }, 30_000);
});
