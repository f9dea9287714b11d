/**
 * clients.json under `tknock-server enroll / revoke / init`, in memory (real files in a temp directory): the lock
 * around every read-modify-write, a symlinked file, and errors that never quote the file.
 */
import { lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { ClientsFile } from "../../server/config/schema.js";
import { errorCodeOf, runServerCli, type ServerRun } from "../support/server-cli.js";

type Run = ServerRun;

const NOW_MS = 1_700_000_000_000;

describe("clients.json read-modify-writes", () => {
  let dir: string;
  let configPath: string;
  let clientsPath: string;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), "tknock-clients-file-"));
    configPath = join(dir, "etc/server.json");
    clientsPath = join(dir, "etc/clients.json");
    await ok(["init", "--interface", "any", "--state-dir", join(dir, "state")]);
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const server = (args: readonly string[]): Promise<Run> => runServerCli(configPath, args, NOW_MS);

  async function ok(args: readonly string[]): Promise<Run> {
    const r = await server(args);
    if (r.code !== 0) throw new Error(`tknock-server ${args.join(" ")} exited ${r.code}: ${r.err.join("\n")}`);
    return r;
  }

  const names = (path = clientsPath): string[] => Object.keys((JSON.parse(readFileSync(path, "utf8")) as ClientsFile).clients).sort();
  const enroll = (name: string): Promise<Run> => server(["enroll", name, "--host", "server.example"]);

  it("when 20 enrolls run at once then all 20 clients are stored", async () => {
    const runs = await Promise.all(Array.from({ length: 20 }, (_, i) => enroll(`c${i}`)));
    expect(runs.map((r) => r.code)).toEqual(Array(20).fill(0));
    expect(names()).toEqual(Array.from({ length: 20 }, (_, i) => `c${i}`).sort());
  });

  it("when revoke races two enrolls, 100 times, then the revoked client never comes back and both new clients stay", async () => {
    for (let t = 0; t < 100; t++) {
      await ok(["enroll", "victim", "--host", "server.example", "--force"]);
      // All three start in the same tick, each after a random number of microtask turns, so the revoke lands
      // before, between and after the enrolls' reads and writes (an enroll awaits the new secret in between).
      const yieldTurns = async (): Promise<void> => {
        for (let n = Math.floor(Math.random() * 40); n > 0; n--) await Promise.resolve();
      };
      const ops = [
        async () => (await yieldTurns(), server(["revoke", "victim"])),
        async () => (await yieldTurns(), enroll(`a${t}`)),
        async () => (await yieldTurns(), enroll(`b${t}`)),
      ];
      const order = t % 3;
      const runs = await Promise.all([...ops.slice(order), ...ops.slice(0, order)].map((op) => op()));
      expect(runs.map((r) => [r.code, r.err.filter((l) => l.startsWith("error")).join("")])).toEqual([
        [0, ""],
        [0, ""],
        [0, ""],
      ]);
      const now = names();
      expect(now).not.toContain("victim");
      expect(now).toContain(`a${t}`);
      expect(now).toContain(`b${t}`);
    }
  }, 60_000);

  it("when clients.json is a symlink then enroll, revoke and init --force write the file it points to and the link stays", async () => {
    const realDir = join(dir, "managed");
    mkdirSync(realDir, { mode: 0o700 });
    const real = join(realDir, "clients.json");
    writeFileSync(real, readFileSync(clientsPath), { mode: 0o600 });
    rmSync(clientsPath);
    symlinkSync("../managed/clients.json", clientsPath);

    await ok(["enroll", "alice", "--host", "server.example"]);
    await ok(["enroll", "bob", "--host", "server.example"]);
    await ok(["revoke", "alice"]);
    expect(lstatSync(clientsPath).isSymbolicLink()).toBe(true);
    expect(readlinkSync(clientsPath)).toBe("../managed/clients.json");
    expect(names(real)).toEqual(["bob"]);
    expect(lstatSync(real).mode & 0o777).toBe(0o600);

    await ok(["init", "--force", "--state-dir", join(dir, "state")]);
    expect(lstatSync(clientsPath).isSymbolicLink()).toBe(true);
    expect(names(real)).toEqual([]);
  });

  it("when clients.json has a syntax error beside a secret then every command gives line and column and quotes no part of the file", async () => {
    await ok(["enroll", "alice", "--host", "server.example"]);
    const text = readFileSync(clientsPath, "utf8");
    const secret = /"secret": "([A-Z2-7]+)"/.exec(text)?.[1] ?? "";
    expect(secret.length).toBeGreaterThan(20);
    writeFileSync(clientsPath, text.replace(`"${secret}",`, `"${secret}"`), { mode: 0o600 }); // drop one comma
    const line = text.split("\n").findIndex((l) => l.includes(secret)) + 2; // the key after the secret
    for (const args of [["list"], ["enroll", "bob"], ["revoke", "alice"], ["sequence", "alice"]]) {
      const r = await server(args);
      expect(r.code).toBe(1);
      expect(errorCodeOf(r)).toBe("TKNOCK_FILE_NOT_JSON");
      expect(r.err).toHaveLength(1);
      expect(r.err[0]).toContain(`${clientsPath} is not valid JSON: line ${line}, column `);
      for (let i = 0; i + 4 <= secret.length; i++) expect(r.err[0]).not.toContain(secret.slice(i, i + 4));
    }
  });

  it("when clients.json names a client twice then every command refuses it, naming the client and both lines", async () => {
    await ok(["enroll", "alice", "--host", "server.example"]);
    await ok(["enroll", "bob", "--host", "server.example"]);
    const file = JSON.parse(readFileSync(clientsPath, "utf8")) as ClientsFile;
    const entry = (name: string): string => `    "${name}": ${JSON.stringify(file.clients[name])}`;
    // JSON.parse would keep the second alice, bob's secret under alice's name, without a word.
    writeFileSync(
      clientsPath,
      `{\n  "version": 1,\n  "clients": {\n${entry("alice")},\n${entry("bob")},\n${entry("bob").replace('"bob"', '"alice"')}\n  }\n}\n`,
      { mode: 0o600 },
    );
    for (const args of [["list"], ["enroll", "carol"], ["revoke", "bob"], ["sequence", "alice"]]) {
      const r = await server(args);
      expect(r.code).toBe(1);
      expect(errorCodeOf(r)).toBe("TKNOCK_DUPLICATE_KEY");
      expect(r.err).toHaveLength(1);
      expect(r.err[0]).toContain('"alice" twice in "clients" (lines 4 and 6');
    }
  });

  it("when a client's name breaks the rules (a pasted secret, say) then the error points at its position and does not quote it", async () => {
    const bad = "JBSWY3DP/EHPK3PXP+JBSWY3DPEHPK3PXP";
    writeFileSync(clientsPath, JSON.stringify({ version: 1, clients: { [bad]: {} } }), { mode: 0o600 });
    const r = await server(["list"]);
    expect(errorCodeOf(r)).toBe("TKNOCK_INVALID_CONFIG");
    expect(r.err).toHaveLength(1);
    expect(r.err[0]).toContain("clients (entry 1)");
    expect(r.err[0]).not.toContain("JBSWY3DP");
  });
});
