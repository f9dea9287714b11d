/**
 * The daemon's SPA wiring: a fake listener (the test pushes datagrams with their payload), the in-memory firewall,
 * a fake clock, and real config, clients, state and replay files written by the real CLI in a temp directory.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createServerCli } from "../../server/cli.js";
import { clientProfile, type ClientsFile } from "../../server/config/schema.js";
import { MemoryFirewall } from "../../server/firewalls/memory/memory-firewall.js";
import { spaListenerProblem } from "../../server/spa/spa-clients.js";
import { runCli } from "../../src/cli-io.js";
import type { Clock, ObservedKnock } from "../../src/ports.js";
import { deriveSequence } from "../../src/protocol/derive.js";
import { spaPort } from "../../src/protocol/spa/keys.js";
import { sealSpaPacket } from "../../src/protocol/spa/packet.js";
import type { SpaPayload } from "../../src/protocol/spa/payload.js";
import { memoryIo } from "../support/memory-io.js";
import { T, T0_MS } from "../support/matcher-fixtures.js";
import type { FakeListener } from "../support/fake-listener.js";
import { startFakeDaemon } from "../support/fake-daemon.js";

const ALICE = "198.18.0.1";
const EVE = "198.18.0.3";

const settle = (): Promise<void> => new Promise((r) => setImmediate(r));

describe("daemon SPA wiring", () => {
  let dir: string;
  let configPath: string;
  let nowMs: number;
  let clock: Clock;
  let logText: string[];
  let stops: (() => Promise<void>)[];

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), "tknock-spa-daemon-"));
    configPath = join(dir, "etc/server.json");
    nowMs = T0_MS;
    clock = { nowMs: () => nowMs };
    logText = [];
    stops = [];
    await cli(["init", "--interface", "lo", "--protect", "22", "2222", "--state-dir", join(dir, "state")]);
    await cli(["enroll", "alice", "--host", "server.example", "--open", "22", "2222", "--mode", "spa"]);
    await cli(["enroll", "seq", "--host", "server.example", "--open", "2222"]);
  });

  afterEach(async () => {
    for (const stop of stops.splice(0)) await stop();
    rmSync(dir, { recursive: true, force: true });
  });

  async function cli(args: readonly string[]): Promise<string> {
    const { io, out, err } = memoryIo({ clock });
    const code = await runCli(createServerCli(io), ["--config", configPath, ...args], io);
    if (code !== 0) throw new Error(`tknock-server ${args.join(" ")} exited ${code}: ${err.join("")}`);
    return out.join("\n");
  }

  function clientsFile(): ClientsFile {
    return JSON.parse(readFileSync(join(dir, "etc/clients.json"), "utf8")) as ClientsFile;
  }

  function profileOf(name: string) {
    const r = clientsFile().clients[name];
    if (r === undefined) throw new Error(`${name} is not enrolled`);
    return clientProfile(name, r);
  }

  function packet(name: string, payload: SpaPayload = { ports: [], nat: false, address: ALICE }): ObservedKnock & { payload: Buffer } {
    const p = profileOf(name);
    const bytes = sealSpaPacket({ secret: p.secret, step: T, timestampMs: nowMs, payload });
    return { src: ALICE, dstPort: spaPort(p, T), proto: "udp", atMs: nowMs, payload: bytes };
  }

  function replays(): Record<string, unknown>[] {
    const path = join(dir, "state/replays.jsonl");
    if (!existsSync(path)) return [];
    return readFileSync(path, "utf8")
      .split("\n")
      .filter((l) => l !== "")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  }

  async function start(fw: MemoryFirewall): Promise<FakeListener> {
    return (await startFakeDaemon({ configPath, clock, firewall: fw, logText, stops })).listener;
  }

  it("when an SPA client's packet arrives then the ports open for the address it names, once, and a copy is refused and recorded", async () => {
    const fw = new MemoryFirewall(clock);
    const listener = await start(fw);
    const p = packet("alice", { ports: [2222], nat: false, address: ALICE });
    listener.push(p);
    await settle();
    expect(fw.isAllowed(ALICE, 2222)).toBe(true);
    expect(fw.isAllowed(ALICE, 22)).toBe(false);
    listener.push({ ...p, src: EVE });
    await settle();
    expect(fw.isAllowed(EVE, 2222)).toBe(false);
    expect(replays()).toMatchObject([{ kind: "spa-replay", source: EVE, client: "alice", step: T, ports: [2222], address: ALICE }]);
    expect(await cli(["replays"])).toContain(`spa-replay from ${EVE} client alice step ${T} for ${ALICE}`);
    const state = JSON.parse(readFileSync(join(dir, "state/state.json"), "utf8")) as { spaNonces?: Record<string, number> };
    expect(Object.keys(state.spaNonces ?? {})).toHaveLength(1);
    expect(logText.join("")).toMatch(/"via":"spa".*"msg":"opened"/);
  });

  it("when the daemon restarts then a packet it accepted before is refused as a replay", async () => {
    const fw = new MemoryFirewall(clock);
    const first = await start(fw);
    const p = packet("alice");
    first.push(p);
    await settle();
    expect(fw.isAllowed(ALICE, 22)).toBe(true);
    for (const stop of stops.splice(0)) await stop();
    const fw2 = new MemoryFirewall(clock);
    const second = await start(fw2);
    nowMs += 1000;
    second.push({ ...p, src: EVE, atMs: nowMs });
    await settle();
    expect(fw2.opened).toEqual([]);
    expect(replays().map((r) => r["kind"])).toEqual(["spa-replay"]);
  });

  it("when a sequence-only client's key sends an SPA packet then nothing opens (its key id is unknown)", async () => {
    const fw = new MemoryFirewall(clock);
    const listener = await start(fw);
    listener.push(packet("seq"));
    await settle();
    expect(fw.opened).toEqual([]);
    expect(replays()).toEqual([]);
  });

  it("when an SPA client knocks its sequence then nothing opens; a sequence client's knocks still work beside SPA", async () => {
    const fw = new MemoryFirewall(clock);
    const listener = await start(fw);
    for (const name of ["alice", "seq"]) {
      for (const dstPort of deriveSequence(profileOf(name), T)) {
        nowMs += 10;
        listener.push({ src: name === "alice" ? EVE : ALICE, dstPort, proto: "tcp", atMs: nowMs });
      }
    }
    await settle();
    expect(fw.opened).toEqual([{ src: ALICE, port: 2222, openSeconds: 30 }]);
  });

  it("when a packet asks for nat and the client may not then it is refused and recorded", async () => {
    const fw = new MemoryFirewall(clock);
    const listener = await start(fw);
    listener.push(packet("alice", { ports: [], nat: true }));
    await settle();
    expect(fw.opened).toEqual([]);
    expect(replays()).toMatchObject([{ kind: "spa-nat", client: "alice" }]);
  });
});

describe("listeners that cannot serve SPA", () => {
  it("when SPA clients exist with the log listener then the problem names the fix; pcap and nflog (with or without the prefilter) have none", () => {
    expect(spaListenerProblem({ listener: "log", prefilter: true }, 1)).toMatch(/use listener pcap/);
    expect(spaListenerProblem({ listener: "nflog", prefilter: true }, 2)).toBeUndefined(); // the prefilter watches SPA ports
    expect(spaListenerProblem({ listener: "nflog", prefilter: false }, 2)).toBeUndefined();
    expect(spaListenerProblem({ listener: "pcap", prefilter: true }, 2)).toBeUndefined();
    expect(spaListenerProblem({ listener: "log", prefilter: true }, 0)).toBeUndefined();
  });
});
