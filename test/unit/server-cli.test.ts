/**
 * `tknock-server` commands in memory: real files in a temp directory, an injected io and clock. `status` and
 * `firewall remove` need nft and are covered by the namespace suites.
 */
import { errorCodeOf, runServerCli, type ServerRun } from "../support/server-cli.js";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { decodeQrPng } from "../../client/qr.js";
import { ReplayLog } from "../../server/replay-log.js";
import { loadServerConfig } from "../../server/config/load.js";
import { clientProfile, type ClientsFile } from "../../server/config/schema.js";
import { deriveSequence } from "../../src/protocol/derive.js";
import { parseProfileUri } from "../../src/protocol/profile-uri.js";
import { stepAt } from "../../src/protocol/window.js";

const NOW_MS = 1_700_000_000_000;

type Run = ServerRun;

describe("tknock-server CLI", () => {
  let dir: string;
  let configPath: string;
  let clientsPath: string;
  let stateDir: string;
  /** Everything any command printed, to check that no secret leaks anywhere but enroll's URI and QR. */
  let printed: string[];

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "tknock-server-cli-"));
    configPath = join(dir, "etc/server.json");
    clientsPath = join(dir, "etc/clients.json");
    stateDir = join(dir, "state");
    printed = [];
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /** Runs `tknock-server --config CONFIG ARGS` through runCli; `error` is what the command threw, if anything. */
  async function server(args: readonly string[], nowMs = NOW_MS): Promise<Run> {
    const r = await runServerCli(configPath, args, nowMs);
    printed.push(...r.out, ...r.err);
    return r;
  }

  async function ok(args: readonly string[], nowMs = NOW_MS): Promise<Run> {
    const r = await server(args, nowMs);
    if (r.code !== 0) throw new Error(`tknock-server ${args.join(" ")} exited ${r.code}: ${r.err.join("\n")}`);
    return r;
  }

  async function init(extra: readonly string[] = []): Promise<void> {
    await ok(["init", "--interface", "lo", "--protect", "22", "2222", "--state-dir", stateDir, ...extra]);
  }

  function clientsFile(): ClientsFile {
    return JSON.parse(readFileSync(clientsPath, "utf8")) as ClientsFile;
  }

  async function enroll(name: string, extra: readonly string[] = []): Promise<string> {
    const r = await ok(["enroll", name, "--host", "server.example", ...extra]);
    const uri = r.out.find((l) => l.startsWith("otpauth://"));
    if (uri === undefined) throw new Error(`enroll printed no URI: ${r.out.join("\n")}`);
    return uri;
  }

  const modeOf = (path: string): number => statSync(path).mode & 0o777;

  describe("init", () => {
    it("when init runs then it writes a config naming every path, a 0600 clients file and an empty state file", async () => {
      await init();
      const config = loadServerConfig(configPath);
      expect(config.clientsFile).toBe(clientsPath); // default: next to the config
      expect(config.stateDir).toBe(stateDir);
      expect(config.interface).toBe("lo");
      expect(config.protect).toEqual([22, 2222]);
      expect(modeOf(clientsPath)).toBe(0o600);
      expect(clientsFile()).toEqual({ version: 1, clients: {} });
      expect(JSON.parse(readFileSync(join(stateDir, "state.json"), "utf8"))).toEqual({ version: 1, lastAcceptedStep: {} });
      // Every path the server uses is written out, so instances side by side never share a default.
      const raw = JSON.parse(readFileSync(configPath, "utf8")) as Record<string, unknown>;
      expect(raw["clientsFile"]).toBe(clientsPath);
      expect(raw["stateDir"]).toBe(stateDir);
    });

    it("when --firewall command is given with its commands then the config holds them; without them init refuses and writes nothing", async () => {
      const bare = await server(["init", "--interface", "lo", "--state-dir", stateDir, "--firewall", "command"]);
      expect(errorCodeOf(bare)).toBe("TKNOCK_INVALID_CONFIG");
      expect(existsSync(configPath)).toBe(false);
      await init([
        "--firewall",
        "command",
        "--open-command",
        '["/usr/local/bin/fw","open","{ip}","{port}"]',
        "--close-command",
        '["/usr/local/bin/fw","close","{ip}","{port}"]',
      ]);
      expect(loadServerConfig(configPath)).toMatchObject({
        firewall: "command",
        command: { open: ["/usr/local/bin/fw", "open", "{ip}", "{port}"], close: ["/usr/local/bin/fw", "close", "{ip}", "{port}"] },
      });
    });

    it("when enroll is given --open-seconds then the client's entry keeps it", async () => {
      await init();
      await enroll("alice", ["--open-seconds", "600"]);
      expect(clientsFile().clients["alice"]?.openSeconds).toBe(600);
      const bad = await server(["enroll", "bob", "--host", "h", "--open-seconds", "0"]);
      expect(bad.code).toBe(1);
      expect(clientsFile().clients["bob"]).toBeUndefined();
    });

    it("when --clients names another file then the config points at it", async () => {
      const other = join(dir, "secret/clients.json");
      await init(["--clients", other]);
      expect(loadServerConfig(configPath).clientsFile).toBe(other);
      expect(modeOf(other)).toBe(0o600);
      expect(existsSync(clientsPath)).toBe(false);
    });

    it("when init runs over an existing config then it refuses with TKNOCK_EXISTS and changes nothing; --force overwrites", async () => {
      await init();
      await enroll("alice");
      const before = readFileSync(clientsPath, "utf8");
      const again = await server(["init", "--state-dir", stateDir]);
      expect(again.code).toBe(1);
      expect(errorCodeOf(again)).toBe("TKNOCK_EXISTS");
      expect(again.err).toHaveLength(1);
      expect(readFileSync(clientsPath, "utf8")).toBe(before);

      await init(["--force"]);
      expect(clientsFile().clients).toEqual({});
    });

    it("when --knock-range and --no-knock-range-drop are given then the config holds them and enroll hands out that range", async () => {
      await init(["--knock-range", "20000-29999", "--no-knock-range-drop"]);
      const config = loadServerConfig(configPath);
      expect(config.knockRange).toEqual({ min: 20000, max: 29999 });
      expect(config.knockRangeDrop).toBe(false);
      const p = parseProfileUri(await enroll("alice"));
      expect([p.portMin, p.portMax]).toEqual([20000, 29999]);
    });

    it("when --listener log, --log-source and --log-existing are given then the config holds them", async () => {
      await init(["--listener", "log", "--log-source", "file:/var/log/kern.log", "--log-existing"]);
      expect(loadServerConfig(configPath)).toMatchObject({ listener: "log", logSource: "file:/var/log/kern.log", logExisting: true });
    });

    it("when --listener nflog and --nflog-group are given then the config holds them", async () => {
      await init(["--listener", "nflog", "--nflog-group", "9"]);
      expect(loadServerConfig(configPath)).toMatchObject({ listener: "nflog", nflogGroup: 9 });
    });

    it("when --nflog-group is not a group number then init fails naming nflogGroup and writes nothing", async () => {
      for (const group of ["65536", "five", "-1"]) {
        const r = await server(["init", "--listener", "nflog", `--nflog-group=${group}`, "--state-dir", stateDir]);
        expect(r.code).toBe(1);
        expect(errorCodeOf(r)).toBe("TKNOCK_INVALID_CONFIG");
        expect(r.err.join("\n")).toContain("nflogGroup");
        expect(existsSync(configPath)).toBe(false);
      }
    });

    it("when --listener or --log-source is unknown then init fails naming the key and writes nothing", async () => {
      for (const args of [
        ["--listener", "ebpf"],
        ["--listener", "log", "--log-source", "syslog"],
      ]) {
        const r = await server(["init", ...args, "--state-dir", stateDir]);
        expect(r.code).toBe(1);
        expect(errorCodeOf(r)).toBe("TKNOCK_INVALID_CONFIG");
        expect(r.err.join("\n")).toContain(args[0] === "--listener" && args.length === 2 ? "listener" : "logSource");
        expect(existsSync(configPath)).toBe(false);
      }
    });

    it("when --knock-range is left out then the default range is dropped", async () => {
      await init();
      const config = loadServerConfig(configPath);
      expect(config.knockRange).toEqual({ min: 10000, max: 59999 });
      expect(config.knockRangeDrop).toBe(true);
    });

    it.each(["20000", "20000-", "a-b", "29999-20000", "0-1000", "60000-70000", "20000-20010", "20000-29999,30000-39999"])(
      "when --knock-range is %j then init is a usage error with one line and writes nothing",
      async (range) => {
        const r = await server(["init", "--knock-range", range, "--state-dir", stateDir]);
        expect(r.code).toBe(1);
        expect(errorCodeOf(r)).toBe("TKNOCK_USAGE");
        expect(r.err).toHaveLength(1);
        expect(r.err[0]).toContain("--knock-range");
        expect(existsSync(configPath)).toBe(false);
      },
    );

    it("when the knock range would hold a protected port then init fails naming the port and writes nothing", async () => {
      const r = await server(["init", "--protect", "22", "--knock-range", "1-30000", "--state-dir", stateDir]);
      expect(r.code).toBe(1);
      expect(errorCodeOf(r)).toBe("TKNOCK_INVALID_CONFIG");
      expect(r.err.join("\n")).toContain("port 22 lies inside the knock range");
      expect(existsSync(configPath)).toBe(false);
    });

    it("when --protect is not a port then init is a usage error and writes nothing", async () => {
      const r = await server(["init", "--protect", "ssh", "--state-dir", stateDir]);
      expect(r.code).toBe(1);
      expect(errorCodeOf(r)).toBe("TKNOCK_USAGE");
      expect(existsSync(configPath)).toBe(false);
    });

    it("when --interface names no interface of this host then init exits 1 with one line naming it and writes nothing", async () => {
      const r = await server(["init", "--interface", "nosuch9", "--state-dir", stateDir]);
      expect(r.code).toBe(1);
      expect(errorCodeOf(r)).toBe("TKNOCK_NO_INTERFACE");
      expect(r.err).toHaveLength(1);
      expect(r.err[0]).toContain("nosuch9");
      expect(existsSync(configPath)).toBe(false);
      expect(existsSync(clientsPath)).toBe(false);
    });

    it('when --interface is "any" then init accepts it', async () => {
      await ok(["init", "--interface", "any", "--state-dir", stateDir]);
      expect(loadServerConfig(configPath).interface).toBe("any");
    });
  });

  describe("enroll", () => {
    beforeEach(() => init());

    it("when a client is enrolled then the URI reads back with its open ports, the protected ports excluded and its period", async () => {
      const uri = await enroll("alice", ["--open", "2222", "--period", "10"]);
      const p = parseProfileUri(uri);
      expect(p.client).toBe("alice");
      expect(p.host).toBe("server.example");
      expect(p.open).toEqual([2222]);
      // Then any port a local service of this host listens on inside the range (test/e2e/services.test.ts).
      expect(p.exclude.slice(0, 2)).toEqual([22, 2222]);
      expect(p.exclude.slice(2).every((x) => x >= p.portMin && x <= p.portMax)).toBe(true);
      expect(p.periodSeconds).toBe(10);
      const record = clientsFile().clients["alice"];
      expect(record).toBeDefined();
      expect(uri).toContain(`secret=${record?.secret}`);
      expect(record?.open).toEqual([2222]);
      expect(record?.enrolledAt).toBe(new Date(NOW_MS).toISOString());
      expect(modeOf(clientsPath)).toBe(0o600);
    });

    it("when --open is left out then the client may open every protected port", async () => {
      expect(parseProfileUri(await enroll("alice")).open).toEqual([22, 2222]);
    });

    it("when the client exists then enroll refuses with TKNOCK_EXISTS; with --force it gets a new secret", async () => {
      await enroll("alice");
      const first = clientsFile().clients["alice"]?.secret;
      const dup = await server(["enroll", "alice", "--host", "server.example"]);
      expect(dup.code).toBe(1);
      expect(errorCodeOf(dup)).toBe("TKNOCK_EXISTS");
      expect(clientsFile().clients["alice"]?.secret).toBe(first);

      await enroll("alice", ["--force"]);
      const second = clientsFile().clients["alice"]?.secret;
      expect(second).toBeDefined();
      expect(second).not.toBe(first);
    });

    it("when --open names a port that is not protected then it is a usage error and no client is written", async () => {
      const r = await server(["enroll", "alice", "--open", "8080"]);
      expect(r.code).toBe(1);
      expect(errorCodeOf(r)).toBe("TKNOCK_USAGE");
      expect(r.err).toHaveLength(1);
      expect(r.err[0]).toContain("8080");
      expect(clientsFile().clients).toEqual({});
    });

    it("when the client name has a slash then it is a usage error", async () => {
      const r = await server(["enroll", "../alice"]);
      expect(r.code).toBe(1);
      expect(errorCodeOf(r)).toBe("TKNOCK_USAGE");
    });

    it("when --qr-png is given then a mode 600 PNG holding the printed URI is written", async () => {
      const png = join(dir, "alice.png");
      const uri = await enroll("alice", ["--qr-png", png]);
      expect(modeOf(png)).toBe(0o600);
      const bytes = readFileSync(png);
      expect(bytes.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
      expect(await decodeQrPng(bytes)).toBe(uri);
    });
  });

  describe("list, revoke and sequence", () => {
    beforeEach(async () => {
      await init();
      await enroll("alice", ["--open", "22"]);
      await enroll("bob", ["--addr", "198.18.0.2"]);
      printed = []; // enroll prints the URI (and so the secret) on purpose
    });

    it("when clients are listed, as text or JSON, then no secret appears in any output", async () => {
      const secrets = Object.values(clientsFile().clients).map((r) => r.secret);
      expect(secrets).toHaveLength(2);
      const text = await ok(["list"]);
      expect(text.out.join("\n")).toMatch(/alice/);
      expect(text.out.join("\n")).toMatch(/bob/);
      const json = await ok(["list", "--json"]);
      const rows = JSON.parse(json.out.join("\n")) as Record<string, unknown>[];
      expect(rows.map((r) => r["name"]).sort()).toEqual(["alice", "bob"]);
      expect(rows.find((r) => r["name"] === "alice")?.["open"]).toEqual([22]);
      expect(rows.find((r) => r["name"] === "bob")?.["addr"]).toBe("198.18.0.2");
      for (const r of rows) expect(Object.keys(r)).not.toContain("secret");
      await ok(["sequence", "alice", "--at", "1700000000"]);
      await ok(["revoke", "bob"]);
      await server(["revoke", "nobody"]);
      const all = printed.join("\n");
      for (const s of secrets) {
        expect(all).not.toContain(s);
        expect(all).not.toContain(s.slice(0, 16));
      }
    });

    it("when no client is enrolled then list says so", async () => {
      await ok(["revoke", "alice"]);
      await ok(["revoke", "bob"]);
      expect(JSON.parse((await ok(["list", "--json"])).out.join("\n"))).toEqual([]);
      expect((await ok(["list"])).out).toHaveLength(1);
    });

    it("when a client is revoked then it is gone from the file and the list; revoking it again is TKNOCK_NO_CLIENT", async () => {
      await ok(["revoke", "alice"]);
      expect(Object.keys(clientsFile().clients)).toEqual(["bob"]);
      expect(modeOf(clientsPath)).toBe(0o600);
      const rows = JSON.parse((await ok(["list", "--json"])).out.join("\n")) as { name: string }[];
      expect(rows.map((r) => r.name)).toEqual(["bob"]);
      const again = await server(["revoke", "alice"]);
      expect(again.code).toBe(1);
      expect(errorCodeOf(again)).toBe("TKNOCK_NO_CLIENT");
      expect(again.err).toHaveLength(1);
    });

    it("when sequence --at T --json runs then it prints deriveSequence of the stored secret for T's step", async () => {
      const record = clientsFile().clients["alice"];
      if (record === undefined) throw new Error("alice missing");
      const profile = clientProfile("alice", record);
      for (const at of [1_700_000_000, 1_700_000_029, 1_700_000_030, 0]) {
        const r = await ok(["sequence", "alice", "--at", String(at), "--json"]);
        const step = stepAt(at * 1000, record.periodSeconds);
        expect(JSON.parse(r.out.join("\n"))).toEqual({ step, ports: deriveSequence(profile, step), proto: "tcp" });
      }
    });

    it("when sequence has no --at then it uses the injected clock", async () => {
      const record = clientsFile().clients["alice"];
      if (record === undefined) throw new Error("alice missing");
      const nowMs = 1_800_000_012_345;
      const step = stepAt(nowMs, record.periodSeconds);
      const r = await ok(["sequence", "alice", "--json"], nowMs);
      expect(JSON.parse(r.out.join("\n"))).toEqual({ step, ports: deriveSequence(clientProfile("alice", record), step), proto: "tcp" });
    });

    it("when sequence names an unknown client then it is TKNOCK_NO_CLIENT; a bad --at is a usage error", async () => {
      const r = await server(["sequence", "carol", "--json"]);
      expect(r.code).toBe(1);
      expect(errorCodeOf(r)).toBe("TKNOCK_NO_CLIENT");
      const bad = await server(["sequence", "alice", "--at", "yesterday"]);
      expect(bad.code).toBe(1);
      expect(bad.out).toEqual([]);
    });

    for (const args of [["list"], ["list", "--json"], ["revoke", "alice"], ["sequence", "alice"], ["enroll", "carol"]]) {
      it(`when the clients file is mode 0644 then \`${args.join(" ")}\` fails with TKNOCK_CLIENTS_PERMISSIONS naming the file and chmod 600`, async () => {
        chmodSync(clientsPath, 0o644);
        const before = readFileSync(clientsPath, "utf8");
        const r = await server(args);
        expect(r.code).toBe(1);
        expect(errorCodeOf(r)).toBe("TKNOCK_CLIENTS_PERMISSIONS");
        expect(r.out).toEqual([]);
        expect(r.err).toHaveLength(1);
        expect(r.err[0]).toContain(clientsPath);
        expect(r.err[0]).toContain("chmod 600");
        expect(readFileSync(clientsPath, "utf8")).toBe(before);
      });
    }

    it("when the clients file is mode 0640 (group-readable) then it is refused too", async () => {
      chmodSync(clientsPath, 0o640);
      expect(errorCodeOf(await server(["list"]))).toBe("TKNOCK_CLIENTS_PERMISSIONS");
    });
  });

  describe("config validation", () => {
    beforeEach(() => init());

    function editConfig(edit: (c: Record<string, unknown>) => void): void {
      const c = JSON.parse(readFileSync(configPath, "utf8")) as Record<string, unknown>;
      edit(c);
      writeFileSync(configPath, JSON.stringify(c));
    }

    const cases: { name: string; edit: (c: Record<string, unknown>) => void; field: string }[] = [
      { name: "an unknown key", edit: (c) => (c["opneSeconds"] = 30), field: "opneSeconds" },
      { name: "an unknown nested key", edit: (c) => (c["bruteForce"] = { maxFailuresPerMinute: 5, bann: true }), field: "bruteForce.bann" },
      { name: "a negative openSeconds", edit: (c) => (c["openSeconds"] = -5), field: "openSeconds" },
      { name: "a string skewWindows", edit: (c) => (c["skewWindows"] = "1"), field: "skewWindows" },
      { name: "a protected port 70000", edit: (c) => (c["protect"] = [70000]), field: "protect[0]" },
      { name: "a relative stateDir", edit: (c) => (c["stateDir"] = "state"), field: "stateDir" },
      { name: "an unknown logLevel", edit: (c) => (c["logLevel"] = "verbose"), field: "logLevel" },
    ];
    for (const c of cases) {
      it(`when the config has ${c.name} then commands exit 1 with one line naming ${c.field}`, async () => {
        editConfig(c.edit);
        for (const args of [["list"], ["enroll", "alice"], ["replays"]]) {
          const r = await server(args);
          expect(r.code).toBe(1);
          expect(errorCodeOf(r)).toBe("TKNOCK_INVALID_CONFIG");
          expect(r.out).toEqual([]);
          expect(r.err).toHaveLength(1);
          expect(r.err[0]).toContain(configPath);
          expect(r.err[0]).toContain(c.field);
        }
        expect(clientsFile().clients).toEqual({});
      });
    }

    it("when the config file does not exist then commands fail with TKNOCK_FILE_MISSING", async () => {
      rmSync(configPath);
      const r = await server(["list"]);
      expect(r.code).toBe(1);
      expect(errorCodeOf(r)).toBe("TKNOCK_FILE_MISSING");
      expect(r.err).toHaveLength(1);
    });

    it("when the config file is not JSON then commands fail with one line", async () => {
      writeFileSync(configPath, "{ protect: [22] ");
      const r = await server(["list"]);
      expect(r.code).toBe(1);
      expect(errorCodeOf(r)).toBe("TKNOCK_FILE_NOT_JSON");
      expect(r.err).toHaveLength(1);
    });
  });

  describe("replays", () => {
    beforeEach(async () => {
      await init();
      const log = new ReplayLog(join(stateDir, "replays.jsonl"), { maxBytes: 1 << 20, keepFiles: 2 });
      const at = (minutesAgo: number): string => new Date(NOW_MS - minutesAgo * 60_000).toISOString();
      log.append({ time: at(120), source: "198.18.0.9", kind: "bruteforce", failures: 11 });
      log.append({ time: at(30), source: "198.18.0.3", kind: "replay", client: "alice", step: 56666606, ports: [10001, 20002, 30003, 40004] });
      log.append({ time: at(5), source: "198.18.0.3", kind: "replay", client: "alice", step: 56666656, ports: [10005, 20006, 30007, 40008] });
      log.append({ time: at(1), source: "198.18.0.1", kind: "skew", client: "bob", step: 56666669, offsetWindows: 3, ports: [11111, 22222, 33333, 44444] });
      log.close();
    });

    const sources = (r: Run): string[] => (JSON.parse(r.out.join("\n")) as { kind: string; time: string }[]).map((x) => `${x.kind} ${x.time}`);

    it("when --since 10m is given then only the records of the last ten minutes are shown", async () => {
      const all = await ok(["replays", "--json"]);
      expect(sources(all)).toHaveLength(4);
      const recent = await ok(["replays", "--since", "10m", "--json"]);
      expect(sources(recent)).toEqual([`replay ${new Date(NOW_MS - 5 * 60_000).toISOString()}`, `skew ${new Date(NOW_MS - 60_000).toISOString()}`]);
      expect(sources(await ok(["replays", "--since", "1h", "--json"]))).toHaveLength(3);
      expect(sources(await ok(["replays", "--since", "30s", "--json"]))).toEqual([]);
    });

    it("when --json is left out then there is one line per record with its kind and source", async () => {
      const r = await ok(["replays", "--since", "10m"]);
      expect(r.out).toHaveLength(2);
      expect(r.out[0]).toMatch(/replay.*198\.18\.0\.3.*alice/);
      expect(r.out[1]).toMatch(/skew.*198\.18\.0\.1.*bob/);
      expect((await ok(["replays", "--since", "30s"])).out).toHaveLength(1);
    });

    for (const since of ["10", "10 minutes", "-5m", "5x", "", "1.5h"]) {
      it(`when --since is ${JSON.stringify(since)} then it is a usage error`, async () => {
        const r = await server(["replays", "--since", since]);
        expect(r.code).toBe(1);
        expect(errorCodeOf(r)).toBe("TKNOCK_USAGE");
        expect(r.out).toEqual([]);
        expect(r.err).toHaveLength(1);
      });
    }

    it("when the state directory has no replay record then replays says so and creates nothing", async () => {
      rmSync(join(stateDir, "replays.jsonl"));
      expect(JSON.parse((await ok(["replays", "--json"])).out.join("\n"))).toEqual([]);
      expect(existsSync(join(stateDir, "replays.jsonl"))).toBe(false);
    });
  });
});
