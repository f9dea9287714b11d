/**
 * The daemon's wiring: a fake listener (the test pushes ObservedKnocks), the in-memory firewall, a fake clock,
 * and real config, clients, state and replay files written by the real CLI in a temp directory.
 */
import { memoryIo } from "../support/memory-io.js";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { createServerCli } from "../../server/cli.js";
import { Daemon, type DaemonDeps } from "../../server/daemon.js";
import type { ListeningSocket } from "../../server/local-services.js";
import { MemoryFirewall } from "../../server/firewalls/memory/memory-firewall.js";
import { createLogger } from "../../server/logger.js";
import { runCli } from "../../src/cli-io.js";
import { clientProfile, type ClientsFile } from "../../server/config/schema.js";
import { TknockError } from "../../src/errors.js";
import type { Clock, Firewall, Grant, ObservedKnock } from "../../src/ports.js";
import { deriveSequence } from "../../src/protocol/derive.js";
import { decodeSecret } from "../../src/protocol/profile-uri.js";
import { stepStartMs } from "../../src/protocol/window.js";
import { waitFor } from "../support/wait.js";
import { PERIOD, T, T0_MS } from "../support/matcher-fixtures.js";
import { FakeListener } from "../support/fake-listener.js";
import { startFakeDaemon } from "../support/fake-daemon.js";

// The state directory "fills up": writes of state.json fail with ENOSPC; with `moves`, renaming or removing it
// fails too (EROFS), so the store cannot even move it aside.
const diskFull = vi.hoisted(() => ({ writes: false, moves: false }));
vi.mock("node:fs", async (importOriginal) => {
  const fs = await importOriginal<typeof import("node:fs")>();
  const fail = (code: string): never => {
    throw Object.assign(new Error(`${code}: simulated`), { code });
  };
  const writeSync = ((...a: unknown[]) =>
    diskFull.writes && typeof a[1] === "string" ? fail("ENOSPC") : (fs.writeSync as (...x: unknown[]) => number)(...a)) as typeof fs.writeSync;
  const renameSync = ((...a: Parameters<typeof fs.renameSync>) =>
    diskFull.moves && String(a[0]).endsWith("state.json") ? fail("EROFS") : fs.renameSync(...a)) as typeof fs.renameSync;
  const unlinkSync = ((...a: Parameters<typeof fs.unlinkSync>) =>
    diskFull.moves && String(a[0]).endsWith("state.json") ? fail("EROFS") : fs.unlinkSync(...a)) as typeof fs.unlinkSync;
  const over = { writeSync, renameSync, unlinkSync };
  return { ...fs, ...over, default: { ...fs, ...over } };
});

/** diagnosticWindows by default: a start without a valid state file refuses up to T + this. */
const FAIL_CLOSED_AHEAD = 10;
const OPEN_SECONDS = 7;
const ALICE = "198.18.0.1";
const OTHER = "198.18.0.3";

/** Stands in for tcpdump: the test pushes knocks straight into the daemon's callback. */

type LogLine = { level: number; msg: string; [key: string]: unknown };

/** Lets promise callbacks (the firewall's then/catch) and I/O callbacks run. */
function settle(): Promise<void> {
  return new Promise((r) => setImmediate(r));
}

describe("daemon wiring", () => {
  let dir: string;
  let configPath: string;
  let clientsPath: string;
  let statePath: string;
  let replaysPath: string;
  let nowMs: number;
  let clock: Clock;
  let logText: string[];
  let secrets: Set<string>;
  let stops: (() => Promise<void>)[];

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), "tknock-daemon-"));
    configPath = join(dir, "etc/server.json");
    clientsPath = join(dir, "etc/clients.json");
    statePath = join(dir, "state/state.json");
    replaysPath = join(dir, "state/replays.jsonl");
    nowMs = T0_MS;
    clock = { nowMs: () => nowMs };
    logText = [];
    secrets = new Set();
    stops = [];
    await cli(["init", "--interface", "lo", "--protect", "22", "2222", "--state-dir", join(dir, "state")]);
    const config = JSON.parse(readFileSync(configPath, "utf8")) as Record<string, unknown>;
    writeFileSync(configPath, JSON.stringify({ ...config, openSeconds: OPEN_SECONDS }));
    await enroll("alice", ["--open", "2222"]);
  });

  afterEach(async () => {
    diskFull.writes = false;
    diskFull.moves = false;
    for (const stop of stops) await stop();
    // No secret, in base32 or hex, in anything the daemon logged.
    const all = logText.join("");
    for (const s of secrets) {
      expect(all).not.toContain(s);
      expect(all).not.toContain(s.slice(0, 16));
      expect(all).not.toContain(Buffer.from(decodeSecret(s)).toString("hex").slice(0, 16));
    }
    rmSync(dir, { recursive: true, force: true });
  });

  async function cli(args: readonly string[]): Promise<void> {
    const { io, err } = memoryIo({ clock });
    const code = await runCli(createServerCli(io), ["--config", configPath, ...args], io);
    if (code !== 0) throw new Error(`tknock-server ${args.join(" ")} exited ${code}: ${err.join("")}`);
  }

  async function enroll(name: string, extra: readonly string[] = []): Promise<void> {
    await cli(["enroll", name, "--host", "server.example", ...extra]);
    const r = readClientsFile().clients[name];
    if (r) secrets.add(r.secret);
  }

  function readClientsFile(): ClientsFile {
    return JSON.parse(readFileSync(clientsPath, "utf8")) as ClientsFile;
  }

  /** The ports a client must knock at a step, derived from the secret in clients.json. */
  function portsOf(name: string, step: number): number[] {
    const r = readClientsFile().clients[name];
    if (!r) throw new Error(`${name} is not enrolled`);
    return deriveSequence(clientProfile(name, r), step);
  }

  function logs(): LogLine[] {
    return logText
      .join("")
      .split("\n")
      .filter((l) => l !== "")
      .map((l) => JSON.parse(l) as LogLine);
  }

  function replays(): Record<string, unknown>[] {
    if (!existsSync(replaysPath)) return [];
    return readFileSync(replaysPath, "utf8")
      .split("\n")
      .filter((l) => l !== "")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  }

  function lastAcceptedSteps(): Record<string, number> {
    return (JSON.parse(readFileSync(statePath, "utf8")) as { lastAcceptedStep: Record<string, number> }).lastAcceptedStep;
  }

  /** Starts Daemon.run with the fake listener; the daemon is stopped (and must resolve) after the test. */
  function start(
    firewall: Firewall = new MemoryFirewall(clock),
    beforeRun?: () => Promise<void>,
    opts: { mayFail?: boolean } & Pick<DaemonDeps, "readListeningSockets" | "servicePollMs" | "dockerPresent"> = {},
  ): Promise<{ daemon: Daemon; listener: FakeListener; stopped: Promise<unknown> }> {
    const { mayFail, ...deps } = opts;
    return startFakeDaemon({
      configPath,
      clock,
      firewall,
      logText,
      stops,
      deps,
      ...(beforeRun ? { beforeRun } : {}),
      ...(mayFail !== undefined ? { mayFail } : {}),
    });
  }

  /** Stops every daemon started so far (as a restart would), checking each stopped cleanly. */
  async function stopAll(): Promise<void> {
    for (const stop of stops.splice(0)) await stop();
  }

  /** One knock per port, 100 ms apart on the knock clock (the daemon's clock moves along). */
  function knock(listener: FakeListener, src: string, ports: readonly number[], atMs = nowMs): void {
    ports.forEach((dstPort, i) => {
      nowMs = atMs + i * 100;
      listener.push({ src, dstPort, proto: "tcp", atMs: nowMs });
    });
  }

  it("when a client knocks its current sequence then exactly its open ports open, for that source only", async () => {
    const fw = new MemoryFirewall(clock);
    const { listener } = await start(fw);
    knock(listener, ALICE, portsOf("alice", T));
    await settle();
    expect(fw.opened).toEqual([{ src: ALICE, port: 2222, openSeconds: OPEN_SECONDS }]);
    expect(fw.isAllowed(ALICE, 2222)).toBe(true);
    expect(fw.isAllowed(ALICE, 22)).toBe(false);
    expect(fw.isAllowed(OTHER, 2222)).toBe(false);
    expect(fw.installed?.protectedPorts).toEqual([22, 2222]);
    expect(lastAcceptedSteps()).toEqual({ alice: T });
    expect(logs().filter((l) => l.msg === "opened")).toMatchObject([{ client: "alice", src: ALICE, step: T, ports: [2222] }]);
    expect(replays()).toEqual([]);
  });

  it("when a client was enrolled with --open-seconds then its grants last that long, while others keep openSeconds", async () => {
    await enroll("bob", ["--open", "2222", "--open-seconds", "600"]);
    const fw = new MemoryFirewall(clock);
    const { listener } = await start(fw);
    knock(listener, "198.18.0.9", portsOf("bob", T));
    knock(listener, ALICE, portsOf("alice", T));
    await settle();
    expect(fw.opened).toEqual([
      { src: "198.18.0.9", port: 2222, openSeconds: 600 },
      { src: ALICE, port: 2222, openSeconds: OPEN_SECONDS },
    ]);
    expect((await fw.list()).find((g) => g.src === "198.18.0.9")?.expiresInSeconds).toBeGreaterThan(590);
  });

  it("when gateForward is auto then the gate gates the forward path exactly when Docker's chains are present", async () => {
    for (const docker of [true, false]) {
      const fw = new MemoryFirewall(clock);
      await start(fw, undefined, { dockerPresent: async () => docker });
      expect(fw.installed?.gateForward).toBe(docker);
      await stopAll();
    }
  });

  it("when the firewall is asked to open then state.json already holds the accepted step", async () => {
    const seenSteps: (number | undefined)[] = [];
    const fw = new (class extends MemoryFirewall {
      override async open(grants: readonly Grant[]): Promise<void> {
        seenSteps.push(lastAcceptedSteps()["alice"]);
        return super.open(grants);
      }
    })(clock);
    const { listener } = await start(fw);
    knock(listener, ALICE, portsOf("alice", T));
    nowMs = stepStartMs(T + 1, PERIOD) + 1000;
    knock(listener, ALICE, portsOf("alice", T + 1));
    await settle();
    expect(seenSteps).toEqual([T, T + 1]);
    expect(fw.opened).toHaveLength(2);
  });

  it("when the same sequence comes from another source in the same window then it is refused and recorded as a replay", async () => {
    const fw = new MemoryFirewall(clock);
    const { listener } = await start(fw);
    const ports = portsOf("alice", T);
    knock(listener, ALICE, ports);
    knock(listener, OTHER, ports, nowMs + 500);
    await settle();
    expect(fw.isAllowed(OTHER, 2222)).toBe(false);
    expect(fw.opened.map((g) => g.src)).toEqual([ALICE]);
    expect(replays()).toMatchObject([{ kind: "replay", source: OTHER, client: "alice", step: T, ports }]);
    expect(logs().filter((l) => l.msg === "knock refused")).toMatchObject([{ reason: "replay", client: "alice", src: OTHER, step: T }]);
    // The legitimate source cannot use it twice either.
    knock(listener, ALICE, ports, nowMs + 500);
    expect(replays().map((r) => `${r["kind"]} ${r["source"]}`)).toEqual([`replay ${OTHER}`, `replay ${ALICE}`]);
    expect(fw.opened).toHaveLength(1);
  });

  it("when replays.jsonl cannot be written (full disk) then the daemon logs it at error level, once a minute with the count", async () => {
    symlinkSync("/dev/full", replaysPath); // every write fails with ENOSPC
    const { listener } = await start();
    const ports = portsOf("alice", T);
    knock(listener, ALICE, ports);
    for (let i = 0; i < 5; i++) knock(listener, OTHER, ports, nowMs + 500);
    nowMs += 61_000;
    knock(listener, OTHER, ports);
    await settle();
    const errors = logs().filter((l) => l.msg.startsWith("cannot write the replay record"));
    expect(errors.map((l) => [l.level, l["lost"]])).toEqual([
      [50, 1],
      [50, 5],
    ]);
    expect(String(errors[0]?.["error"])).toContain("ENOSPC");
  });

  it("when the firewall fails to open then the error is logged, the step stays spent and the daemon keeps working", async () => {
    const fw = new MemoryFirewall(clock);
    const { daemon, listener } = await start(fw);
    fw.failWith(new TknockError("TKNOCK_FIREWALL", "nft: Could not process rule"));
    expect(() => knock(listener, ALICE, portsOf("alice", T))).not.toThrow();
    await waitFor("the error log", () => logs().some((l) => l.msg === "firewall open failed"));
    expect(logs().find((l) => l.msg === "firewall open failed")).toMatchObject({ level: 50, client: "alice", src: ALICE });
    expect(fw.isAllowed(ALICE, 2222)).toBe(false);
    expect(lastAcceptedSteps()).toEqual({ alice: T });
    expect(daemon.stats()).toMatchObject({ openErrors: 1, opened: 0 });

    fw.failWith(undefined);
    nowMs = stepStartMs(T + 1, PERIOD) + 1000;
    knock(listener, ALICE, portsOf("alice", T + 1));
    await settle();
    expect(fw.isAllowed(ALICE, 2222)).toBe(true);
    expect(daemon.stats()).toMatchObject({ openErrors: 1, opened: 1 });
  });

  it("when a firewall's open throws instead of rejecting then the knock is still only logged", async () => {
    const inner = new MemoryFirewall(clock);
    const throwing: Firewall = {
      name: "throwing",
      install: (g) => inner.install(g),
      check: (g) => inner.check(g),
      open: () => {
        throw new TknockError("TKNOCK_FIREWALL", "nft is gone");
      },
      list: () => inner.list(),
      remove: () => inner.remove(),
      close: () => inner.close(),
    };
    const { listener } = await start(throwing);
    expect(() => knock(listener, ALICE, portsOf("alice", T))).not.toThrow();
    await waitFor("the error log", () => logs().some((l) => l.msg === "firewall open failed"));
  });

  it("when the gate is flushed from outside then SIGHUP (reload) puts it back with the open grant, logs it as an error, and gateHealth() counts it", async () => {
    const fw = new MemoryFirewall(clock);
    // Without change events (and well before the 1 s tick), so that the repair is SIGHUP's.
    const { daemon, listener } = await start({
      name: "memory without events",
      install: (g) => fw.install(g),
      check: (g) => fw.check(g),
      open: (g) => fw.open(g),
      list: () => fw.list(),
      remove: () => fw.remove(),
      close: () => fw.close(),
    });
    knock(listener, ALICE, portsOf("alice", T));
    await waitFor("the grant", () => fw.isAllowed(ALICE, 2222));
    fw.simulateOutsideChange("flush");
    expect(fw.isAllowed(OTHER, 2222)).toBe(true);
    daemon.reload();
    await waitFor("the repair", () => daemon.gateHealth().repairs === 1);
    expect(fw.isAllowed(OTHER, 2222)).toBe(false);
    expect(fw.isAllowed(ALICE, 2222)).toBe(true);
    expect(daemon.gateHealth()).toMatchObject({ present: true, lastProblem: "table missing" });
    expect(logs().some((l) => l.level === 50 && l["problem"] === "table missing" && l["detectedBy"] === "SIGHUP")).toBe(true);
  });

  it("when a client is enrolled while the daemon runs then after reload() its knock opens", async () => {
    const fw = new MemoryFirewall(clock);
    const { daemon, listener } = await start(fw);
    await enroll("bob", ["--open", "22"]);
    const bobPorts = portsOf("bob", T);
    knock(listener, "198.18.0.4", bobPorts);
    await settle();
    expect(fw.opened).toEqual([]); // not known yet

    daemon.reload();
    knock(listener, "198.18.0.5", bobPorts, nowMs + 1000);
    await settle();
    expect(fw.opened).toEqual([{ src: "198.18.0.5", port: 22, openSeconds: OPEN_SECONDS }]);
    expect(logs().some((l) => l.msg === "clients reloaded" && l["clients"] === 2)).toBe(true);
  });

  it("when a hundred sources replay the same knock then each is recorded but warnings are capped and count the rest", async () => {
    const fw = new MemoryFirewall(clock);
    const { listener } = await start(fw);
    const ports = portsOf("alice", T);
    const base = nowMs;
    knock(listener, ALICE, ports, base);
    for (let i = 0; i < 100; i++) knock(listener, `198.18.1.${i}`, ports, base + 1000); // all within one second
    knock(listener, "198.18.2.1", ports, base + 2500); // the next second: passes, with the count
    await settle();
    expect(replays().filter((r) => r["kind"] === "replay")).toHaveLength(101);
    const warned = logs().filter((l) => l.msg === "knock refused");
    expect(warned).toHaveLength(21);
    expect(warned.at(-1)?.["suppressedBefore"]).toBe(80);
  });

  it("when the nflog listener runs with the prefilter then the gate logs only its watch set, which holds the sequences of T-1..T+1 and follows the window", async () => {
    const config = JSON.parse(readFileSync(configPath, "utf8")) as Record<string, unknown>;
    writeFileSync(configPath, JSON.stringify({ ...config, listener: "nflog" }));
    const fw = new MemoryFirewall(clock);
    const { listener } = await start(fw);
    expect(fw.installed?.nflogKnocks?.watchOnly).toBe(true);
    for (const s of [T - 1, T, T + 1]) for (const port of portsOf("alice", s)) expect(fw.wouldLog(port)).toBe(true);
    expect(fw.watched.length).toBeLessThan(50_000 / 4);
    expect(logs().some((l) => l.msg === "kernel prefilter on")).toBe(true);
    knock(listener, ALICE, portsOf("alice", T));
    await settle();
    expect(fw.opened).toEqual([{ src: ALICE, port: 2222, openSeconds: OPEN_SECONDS }]);
    const before = [...fw.watched];
    nowMs = stepStartMs(T + 1, PERIOD) + 100;
    await waitFor("the watch set to follow the window", () => portsOf("alice", T + 2).every((p) => fw.watched.includes(p)), 3000);
    expect(fw.watched).not.toEqual(before);
  });

  it("when the window does not move then the watch sets are written once, not again on every 1 s tick", async () => {
    const config = JSON.parse(readFileSync(configPath, "utf8")) as Record<string, unknown>;
    writeFileSync(configPath, JSON.stringify({ ...config, listener: "nflog" }));
    const fw = new MemoryFirewall(clock);
    let writes = 0;
    const setWatch = fw.setWatch.bind(fw);
    fw.setWatch = async (w) => {
      writes++;
      await setWatch(w);
    };
    await start(fw);
    await new Promise((r) => setTimeout(r, 2300)); // two ticks of the daemon's timer
    expect(writes).toBe(1);
    nowMs = stepStartMs(T + 1, PERIOD) + 100;
    await waitFor("the watch sets to be written for the new window", () => writes === 2, 3000);
  });

  it("when a client has 2 knocks then the prefilter turns itself off, says why, and the gate logs the whole range", async () => {
    const config = JSON.parse(readFileSync(configPath, "utf8")) as Record<string, unknown>;
    writeFileSync(configPath, JSON.stringify({ ...config, listener: "nflog" }));
    await enroll("bob", ["--open", "2222", "--knocks", "2"]);
    const fw = new MemoryFirewall(clock);
    await start(fw);
    expect(fw.installed?.nflogKnocks).toBeDefined();
    expect(fw.installed?.nflogKnocks?.watchOnly).toBeUndefined();
    expect(logs().find((l) => l.msg.startsWith("kernel prefilter off"))?.["reason"]).toMatch(/2 knocks/);
  });

  it("when skewWindows is lowered to 0 and the daemon reloads then a knock one window ahead is refused as skew", async () => {
    const fw = new MemoryFirewall(clock);
    const { daemon, listener } = await start(fw);
    const config = JSON.parse(readFileSync(configPath, "utf8")) as Record<string, unknown>;
    writeFileSync(configPath, JSON.stringify({ ...config, skewWindows: 0 }));
    daemon.reload();
    knock(listener, ALICE, portsOf("alice", T + 1));
    await settle();
    expect(fw.opened).toEqual([]);
    expect(logs().some((l) => l.msg === "knock refused" && l["reason"] === "skew" && l["offsetWindows"] === 1)).toBe(true);
    // The current window still opens under the new settings.
    knock(listener, ALICE, portsOf("alice", T), nowMs + 1000);
    await settle();
    expect(fw.opened).toEqual([{ src: ALICE, port: 2222, openSeconds: OPEN_SECONDS }]);
  });

  it("when clients.json is rewritten by enroll then the file watch reloads it within 3 s", async () => {
    const fw = new MemoryFirewall(clock);
    const { listener } = await start(fw);
    await enroll("carol", ["--open", "2222"]);
    await waitFor("the clients reload", () => logs().some((l) => l.msg === "clients reloaded"), 3000);
    knock(listener, "198.18.0.6", portsOf("carol", T));
    await settle();
    expect(fw.opened).toEqual([{ src: "198.18.0.6", port: 2222, openSeconds: OPEN_SECONDS }]);
  });

  it("when clients.json changes between the daemon's start and its run then the poll still picks it up", async () => {
    const fw = new MemoryFirewall(clock);
    const { listener } = await start(fw, () => enroll("dave", ["--open", "22"]));
    await waitFor("the clients reload", () => logs().some((l) => l.msg === "clients reloaded"), 3000);
    knock(listener, "198.18.0.7", portsOf("dave", T));
    await settle();
    expect(fw.opened).toEqual([{ src: "198.18.0.7", port: 22, openSeconds: OPEN_SECONDS }]);
  });

  it("when a client is revoked then its knock no longer opens and its step is forgotten", async () => {
    const fw = new MemoryFirewall(clock);
    const { daemon, listener } = await start(fw);
    knock(listener, ALICE, portsOf("alice", T));
    await settle();
    expect(lastAcceptedSteps()).toEqual({ alice: T });

    const next = portsOf("alice", T + 1);
    await cli(["revoke", "alice"]);
    daemon.reload();
    nowMs = stepStartMs(T + 1, PERIOD) + 1000;
    knock(listener, OTHER, next);
    await settle();
    expect(fw.opened.map((g) => g.src)).toEqual([ALICE]);
    expect(fw.isAllowed(OTHER, 2222)).toBe(false);
    expect(lastAcceptedSteps()).toEqual({});
    expect(logs().filter((l) => l.msg === "opened")).toHaveLength(1);
  });

  it("when the clients file becomes readable by others then a reload keeps the previous clients and logs an error", async () => {
    const fw = new MemoryFirewall(clock);
    const { daemon, listener } = await start(fw);
    chmodSync(clientsPath, 0o644);
    daemon.reload();
    const err = logs().find((l) => l.msg === "clients reload failed; keeping the previous clients");
    expect(err?.level).toBe(50);
    expect(String(err?.["err"])).toContain(clientsPath);
    knock(listener, ALICE, portsOf("alice", T));
    await settle();
    expect(fw.isAllowed(ALICE, 2222)).toBe(true);
  });

  it("when the clients file is readable by others at start then the daemon refuses to start", () => {
    chmodSync(clientsPath, 0o644);
    let thrown: unknown;
    try {
      Daemon.create({
        configPath,
        log: createLogger("silent"),
        clock,
        createListener: () => new FakeListener(),
        createFirewall: () => new MemoryFirewall(clock),
      });
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(TknockError);
    expect((thrown as TknockError).code).toBe("TKNOCK_CLIENTS_PERMISSIONS");
  });

  it("when state.json is missing at start then the current window is refused (fail closed), a warning is logged, and a later window opens", async () => {
    rmSync(statePath);
    const fw = new MemoryFirewall(clock);
    const { listener } = await start(fw);
    const warning = logs().find((l) => l.level === 40 && l.msg.includes(statePath));
    expect(warning).toBeDefined();
    expect(lastAcceptedSteps()).toEqual({ alice: T + FAIL_CLOSED_AHEAD }); // current step + max(skew, diagnostic), written back

    knock(listener, ALICE, portsOf("alice", T));
    nowMs = stepStartMs(T + 1, PERIOD) + 1000;
    knock(listener, ALICE, portsOf("alice", T + 1));
    await settle();
    expect(fw.opened).toEqual([]);
    expect(replays().map((r) => `${r["kind"]} ${r["step"]}`)).toEqual([`replay ${T}`, `replay ${T + 1}`]);

    nowMs = stepStartMs(T + FAIL_CLOSED_AHEAD + 1, PERIOD) + 1000;
    knock(listener, ALICE, portsOf("alice", T + FAIL_CLOSED_AHEAD + 1));
    await settle();
    expect(fw.isAllowed(ALICE, 2222)).toBe(true);
  });

  it("when an accepted step cannot be persisted then nothing opens, and after a restart the same sequence from another host is still refused", async () => {
    const fw = new MemoryFirewall(clock);
    const { listener } = await start(fw);
    const ports = portsOf("alice", T);
    diskFull.writes = true;
    knock(listener, ALICE, ports);
    await settle();
    expect(fw.opened).toEqual([]);
    expect(logs().find((l) => l.msg === "could not persist the accepted step; not opening")).toMatchObject({ level: 50, client: "alice" });
    expect(existsSync(statePath)).toBe(false); // moved aside: a restart fails closed
    // While it runs the daemon refuses the step too (replays.jsonl cannot be written either: see the log).
    knock(listener, OTHER, ports, nowMs + 500);
    expect(logs().filter((l) => l.msg === "knock refused")).toMatchObject([{ reason: "replay", src: OTHER, step: T }]);

    await stopAll();
    diskFull.writes = false; // the admin frees space and restarts
    const fw2 = new MemoryFirewall(clock);
    const restarted = await start(fw2);
    knock(restarted.listener, OTHER, ports, nowMs + 500);
    await settle();
    expect(fw2.opened).toEqual([]);
    expect(
      replays()
        .filter((r) => r["source"] === OTHER)
        .map((r) => `${r["kind"]} ${r["step"]}`),
    ).toEqual([`replay ${T}`]);
  });

  it("when the state file can be neither written nor moved aside then the daemon stops with TKNOCK_STATE_UNPROTECTED and nothing opens", async () => {
    const fw = new MemoryFirewall(clock);
    const { listener, stopped } = await start(fw, undefined, { mayFail: true });
    diskFull.writes = true;
    diskFull.moves = true;
    knock(listener, ALICE, portsOf("alice", T));
    expect(await stopped).toMatchObject({ code: "TKNOCK_STATE_UNPROTECTED" });
    expect(fw.opened).toEqual([]);
    expect(
      logs()
        .filter((l) => l.level === 50)
        .map((l) => l.msg),
    ).toContain("stopping: cannot keep replay protection across a restart");
  });

  it("when a future step is spent by a skew refusal then state.json keeps it and after a restart its knock is refused as a replay once current", async () => {
    const { listener } = await start();
    const ahead = portsOf("alice", T + 3);
    knock(listener, ALICE, ahead);
    expect(replays()).toMatchObject([{ kind: "skew", step: T + 3, offsetWindows: 3 }]);
    expect((JSON.parse(readFileSync(statePath, "utf8")) as { spentSteps?: unknown }).spentSteps).toEqual({ alice: [T + 3] });

    await stopAll();
    const fw = new MemoryFirewall(clock);
    const restarted = await start(fw);
    nowMs = stepStartMs(T + 3, PERIOD) + 1000;
    knock(restarted.listener, OTHER, ahead);
    await settle();
    expect(fw.opened).toEqual([]);
    expect(replays().at(-1)).toMatchObject({ kind: "replay", source: OTHER, step: T + 3 });
    // The client's own next knock still opens.
    knock(restarted.listener, ALICE, portsOf("alice", T + 4), nowMs + 1000);
    await settle();
    expect(fw.isAllowed(ALICE, 2222)).toBe(true);
  });

  it("when garbage knocks arrive then nothing throws, nothing opens, and a valid knock still opens afterwards", async () => {
    const fw = new MemoryFirewall(clock);
    const { daemon, listener } = await start(fw);
    const ports = portsOf("alice", T);
    const first = ports[0] as number;
    const garbage: ObservedKnock[] = [
      { src: ALICE, dstPort: 0, proto: "tcp", atMs: nowMs },
      { src: ALICE, dstPort: -1, proto: "tcp", atMs: nowMs },
      { src: ALICE, dstPort: 65536, proto: "tcp", atMs: nowMs },
      { src: ALICE, dstPort: 1e9, proto: "tcp", atMs: nowMs },
      { src: ALICE, dstPort: Number.NaN, proto: "tcp", atMs: nowMs },
      { src: ALICE, dstPort: 1.5, proto: "tcp", atMs: nowMs },
      { src: ALICE, dstPort: first, proto: "tcp", atMs: Number.NaN },
      { src: ALICE, dstPort: first, proto: "tcp", atMs: Number.POSITIVE_INFINITY },
      { src: ALICE, dstPort: first, proto: "tcp", atMs: Number.NEGATIVE_INFINITY },
      { src: ALICE, dstPort: first, proto: "tcp", atMs: -1 },
      { src: ALICE, dstPort: first, proto: "tcp", atMs: 0 },
      { src: "", dstPort: first, proto: "tcp", atMs: nowMs },
      { src: "not-an-address", dstPort: first, proto: "tcp", atMs: nowMs },
      { src: "999.1.1.1", dstPort: first, proto: "tcp", atMs: nowMs },
      { src: "x".repeat(100_000), dstPort: first, proto: "tcp", atMs: nowMs },
      { src: '\u0000\n{"msg":"opened"}', dstPort: first, proto: "tcp", atMs: nowMs },
      { src: "__proto__", dstPort: first, proto: "tcp", atMs: nowMs },
      { src: "fd18:18::1", dstPort: first, proto: "udp", atMs: nowMs },
      { src: ALICE, dstPort: first, proto: "icmp" as "tcp", atMs: nowMs },
    ];
    for (const k of garbage) expect(() => listener.push(k)).not.toThrow();
    await settle();
    expect(fw.opened).toEqual([]);

    // Past the retransmission window of the garbage, from a fresh knock start.
    knock(listener, ALICE, ports, nowMs + 4000);
    await settle();
    expect(fw.isAllowed(ALICE, 2222)).toBe(true);
    expect(daemon.stats()).toMatchObject({ opened: 1 });
  });

  it("when a knock carries a timestamp far in the future then the current window still opens", async () => {
    // A pcap record's seconds field is 32 bits: a corrupted one can say 2106.
    const fw = new MemoryFirewall(clock);
    const { daemon, listener } = await start(fw);
    listener.push({ src: OTHER, dstPort: 40000, proto: "tcp", atMs: 4_294_967_295_000 });
    listener.push({ src: OTHER, dstPort: 40001, proto: "tcp", atMs: 1e20 });
    knock(listener, ALICE, portsOf("alice", T), nowMs + 1000);
    await settle();
    expect(fw.isAllowed(ALICE, 2222)).toBe(true);
    expect(daemon.stats()).toMatchObject({ futureKnocks: 2 });
    expect(logs().filter((l) => l.level === 40 && l["atMs"] !== undefined)).toHaveLength(1); // warned once, then counted
  });

  describe("local services in the knock range", () => {
    const listening = (proto: "tcp" | "udp", port: number, address = "0.0.0.0"): ListeningSocket => ({
      proto,
      family: 4,
      address,
      port,
      loopback: address.startsWith("127."),
    });

    it("when services listen in the knock range at start then the gate leaves them reachable per protocol, warns once each, and protected ports stay gated", async () => {
      const fw = new MemoryFirewall(clock);
      const sockets = [listening("udp", 51820), listening("tcp", 40000), listening("tcp", 2222), listening("tcp", 41000, "127.0.0.1")];
      await start(fw, undefined, { readListeningSockets: async () => ({ sockets, malformed: 0 }) });
      expect(fw.installed?.exemptServices).toEqual([
        { proto: "tcp", port: 40000 },
        { proto: "udp", port: 51820 },
      ]);
      expect(fw.isAllowed(OTHER, 51820, nowMs, "udp")).toBe(true);
      expect(fw.isAllowed(OTHER, 51820, nowMs, "tcp")).toBe(false);
      expect(fw.isAllowed(OTHER, 40000, nowMs, "tcp")).toBe(true);
      expect(fw.isAllowed(OTHER, 41000, nowMs, "tcp")).toBe(false);
      expect(fw.isAllowed(OTHER, 2222, nowMs, "tcp")).toBe(false);
      const warned = logs().filter((l) => l.level === 40 && typeof l["port"] === "number");
      expect(warned.map((l) => `${String(l["proto"])}/${String(l["port"])}`).sort()).toEqual(["tcp/40000", "udp/51820"]);
    });

    it("when a service starts after the daemon then the gate is updated at the next poll, and again when it stops", async () => {
      const fw = new MemoryFirewall(clock);
      let sockets: ListeningSocket[] = [];
      await start(fw, undefined, { readListeningSockets: async () => ({ sockets, malformed: 0 }), servicePollMs: 20 });
      expect(fw.isAllowed(OTHER, 45000, nowMs, "tcp")).toBe(false);
      sockets = [listening("tcp", 45000)];
      await waitFor("the gate to exempt tcp/45000", () => fw.isAllowed(OTHER, 45000, nowMs, "tcp"));
      expect(logs().some((l) => l.msg === "local services changed; gate updated")).toBe(true);
      sockets = [];
      await waitFor("the gate to drop tcp/45000 again", () => !fw.isAllowed(OTHER, 45000, nowMs, "tcp"));
    });

    it("when knockRangeDrop is false then the knock range is not dropped, and a reload that turns it on drops it again", async () => {
      const config = JSON.parse(readFileSync(configPath, "utf8")) as Record<string, unknown>;
      writeFileSync(configPath, JSON.stringify({ ...config, knockRangeDrop: false }));
      const fw = new MemoryFirewall(clock);
      const { daemon, listener } = await start(fw);
      expect(fw.installed?.knockRange).toBeUndefined();
      expect(fw.isAllowed(OTHER, 40001)).toBe(true);
      expect(fw.isAllowed(OTHER, 2222)).toBe(false);
      knock(listener, ALICE, portsOf("alice", T));
      await settle();
      expect(fw.isAllowed(ALICE, 2222)).toBe(true);

      writeFileSync(configPath, JSON.stringify({ ...config, knockRangeDrop: true }));
      daemon.reload();
      await settle();
      expect(fw.isAllowed(OTHER, 40001)).toBe(false);
    });
  });
});
