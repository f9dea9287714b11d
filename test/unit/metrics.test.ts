import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createServerCli } from "../../server/cli.js";
import { clientProfile, parseServerConfig, type ClientsFile } from "../../server/config/schema.js";
import { Daemon } from "../../server/daemon.js";
import { STATUS_REWRITE_EVERY_MS } from "../../server/daemon-monitor.js";
import { MemoryFirewall } from "../../server/firewalls/memory/memory-firewall.js";
import { createLogger } from "../../server/logger.js";
import { DaemonMetrics, type DaemonSnapshot } from "../../server/metrics/daemon-metrics.js";
import { parseListenAddress } from "../../server/metrics/listen-address.js";
import { startMetricsServer } from "../../server/metrics/metrics-server.js";
import { readRuntimeStatus, runtimeStatusPath } from "../../server/runtime-status.js";
import { runCli } from "../../src/cli-io.js";
import type { Clock } from "../../src/ports.js";
import { deriveSequence } from "../../src/protocol/derive.js";
import { memoryIo } from "../support/memory-io.js";
import { T, T0_MS } from "../support/matcher-fixtures.js";
import { waitFor } from "../support/wait.js";
import { FakeListener } from "../support/fake-listener.js";

const SNAPSHOT: DaemonSnapshot = {
  listener: { packets: 12, knocks: 9, malformed: 2, starts: 1, kernelDrops: 3, interfaceDrops: 4 },
  matcher: {
    clients: 2,
    sources: 4,
    maxSources: 100,
    sequences: 6,
    derivations: 30,
    derivationErrors: 0,
    evictions: 5,
    retransmits: 0,
    progressOverflow: 0,
    decisions: { ignored: 0, progress: 0, reset: 0, open: 0, refuse: 0, bruteforce: 0 },
  },
  gate: { present: true, repairs: 1 },
  activeGrants: 2,
  capturing: true,
};

/** The value of one series in a Prometheus text exposition, e.g. `tknock_knocks_total{decision="open"}`. */
function sample(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe("metrics config", () => {
  const base = { clientsFile: "/etc/tknock/clients.json" };

  it("when metrics is absent or null then the endpoint is off", () => {
    expect(parseServerConfig(base, "t").metrics).toBeNull();
    expect(parseServerConfig({ ...base, metrics: null }, "t").metrics).toBeNull();
  });

  it("when metrics.listen is an IPv4 or bracketed IPv6 address with a port then it is taken", () => {
    expect(parseServerConfig({ ...base, metrics: { listen: "127.0.0.1:9477" } }, "t").metrics).toEqual({ listen: "127.0.0.1:9477" });
    expect(parseListenAddress("[::1]:9477")).toEqual({ host: "::1", port: 9477, loopback: true });
    expect(parseListenAddress("198.18.0.1:9477")).toEqual({ host: "198.18.0.1", port: 9477, loopback: false });
  });

  it("when metrics.listen is a name, lacks a port or has an unknown neighbour key then the config error names the path", () => {
    for (const metrics of [{ listen: "localhost:9477" }, { listen: "127.0.0.1" }, { listen: "127.0.0.1:70000" }, { listen: "::1:9477" }]) {
      expect(() => parseServerConfig({ ...base, metrics }, "t")).toThrow(/metrics\.listen/);
    }
    expect(() => parseServerConfig({ ...base, metrics: { listen: "127.0.0.1:9477", port: 1 } }, "t")).toThrow(/metrics\.port: unknown key/);
  });
});

describe("metrics exposition", () => {
  it("when scraped then the daemon's own counts appear as counters and gauges, with process metrics", async () => {
    const m = new DaemonMetrics("pcap");
    const text = await m.scrape(SNAPSHOT);
    expect(sample(text, 'tknock_listener_packets_total{listener="pcap"}')).toBe(12);
    expect(sample(text, 'tknock_listener_malformed_total{listener="pcap"}')).toBe(2);
    expect(sample(text, 'tknock_capture_drops_total{listener="pcap",where="kernel"}')).toBe(3);
    expect(sample(text, 'tknock_capture_drops_total{listener="pcap",where="interface"}')).toBe(4);
    expect(sample(text, "tknock_grants_active")).toBe(2);
    expect(sample(text, "tknock_gate_reinstalls_total")).toBe(1);
    expect(sample(text, "tknock_sources_tracked")).toBe(4);
    expect(sample(text, "tknock_source_evictions_total")).toBe(5);
    expect(sample(text, "tknock_derivations_total")).toBe(30);
    expect(sample(text, 'tknock_knocks_total{decision="open"}')).toBe(0);
    expect(text).toContain("process_cpu_seconds_total");
    expect(text).toContain("nodejs_eventloop_lag_seconds");
  });

  it("when SPA packets are decided then knocks_total counts them under spa_ labels", async () => {
    const m = new DaemonMetrics("pcap");
    const k = { src: "198.18.0.1", dstPort: 10000, proto: "udp" as const, atMs: 0 };
    m.spaDecided({ kind: "open", client: "alice", step: 1, src: "198.18.0.1", address: "198.18.0.1", ports: [22] }, k);
    m.spaDecided({ kind: "unknown" }, k);
    m.spaDecided({ kind: "unknown" }, k);
    m.spaDecided({ kind: "not-spa" }, k);
    const text = await m.scrape(SNAPSHOT);
    expect(sample(text, 'tknock_knocks_total{decision="spa_open"}')).toBe(1);
    expect(sample(text, 'tknock_knocks_total{decision="spa_unknown"}')).toBe(2);
    expect(text).not.toContain("spa_not-spa");
  });

  it("when the Grafana dashboard queries a metric then the daemon exports it", async () => {
    const dashboard = readFileSync(new URL("../../docs/grafana-dashboard.json", import.meta.url), "utf8");
    const names = new Set([...dashboard.matchAll(/\b((?:tknock|process|nodejs)_[a-z_]+)/g)].map((m) => m[1]!.replace(/_(bucket|count|sum)$/, "")));
    expect(names.size).toBeGreaterThan(15);
    const text = await new DaemonMetrics("pcap").scrape(SNAPSHOT);
    for (const name of names) expect(text, name).toContain(`# HELP ${name} `);
  });

  it("when a count grows between scrapes then the counter follows it without adding it twice", async () => {
    const m = new DaemonMetrics("nflog");
    await m.scrape(SNAPSHOT);
    const text = await m.scrape({ ...SNAPSHOT, listener: { ...SNAPSHOT.listener, packets: 20 } });
    expect(sample(text, 'tknock_listener_packets_total{listener="nflog"}')).toBe(20);
  });

  it("when the endpoint runs then GET /metrics answers in Prometheus text and other paths 404", async () => {
    const m = new DaemonMetrics("pcap");
    const server = await startMetricsServer({ host: "127.0.0.1", port: 0, loopback: true }, m, () => SNAPSHOT);
    try {
      const res = await fetch(`http://${server.address}/metrics`);
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toContain("text/plain");
      expect(sample(await res.text(), "tknock_gate_present")).toBe(1);
      expect((await fetch(`http://${server.address}/`)).status).toBe(404);
      expect((await fetch(`http://${server.address}/metrics`, { method: "POST" })).status).toBe(405);
    } finally {
      await server.close();
    }
  });

  it("when the port is taken then starting fails with TKNOCK_METRICS_LISTEN", async () => {
    const holder = createServer();
    await new Promise<void>((r) => holder.listen(0, "127.0.0.1", r));
    const port = (holder.address() as { port: number }).port;
    try {
      await expect(startMetricsServer({ host: "127.0.0.1", port, loopback: true }, new DaemonMetrics("pcap"), () => SNAPSHOT)).rejects.toMatchObject({
        code: "TKNOCK_METRICS_LISTEN",
        exitCode: 1,
      });
    } finally {
      holder.close();
    }
  });
});

describe("daemon observed by metrics", () => {
  let dir: string;
  let nowMs: number;
  const clock: Clock = { nowMs: () => nowMs };

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "tknock-metrics-"));
    nowMs = T0_MS;
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  async function cli(args: readonly string[]): Promise<void> {
    const { io, err } = memoryIo({ clock });
    const code = await runCli(createServerCli(io), ["--config", join(dir, "server.json"), ...args], io);
    if (code !== 0) throw new Error(`tknock-server ${args.join(" ")} exited ${code}: ${err.join("")}`);
  }

  it("when a client's knock opens and is then replayed then open and refuse_replay are counted, timed, and in daemon.json", async () => {
    await cli(["init", "--interface", "lo", "--state-dir", join(dir, "state")]);
    await cli(["enroll", "alice", "--host", "server.example"]);
    const file = JSON.parse(readFileSync(join(dir, "clients.json"), "utf8")) as ClientsFile;
    const ports = deriveSequence(clientProfile("alice", file.clients["alice"]!), T);
    const metrics = new DaemonMetrics("fake");
    const listener = new FakeListener();
    const sink = new Writable({ write: (_c, _e, cb) => cb() });
    const daemon = Daemon.create({
      configPath: join(dir, "server.json"),
      log: createLogger("info", sink),
      clock,
      createListener: () => listener,
      createFirewall: () => new MemoryFirewall(clock),
      readListeningSockets: async () => ({ sockets: [], malformed: 0 }),
      observer: metrics,
    });
    const stop = new AbortController();
    const running = daemon.run(stop.signal);
    try {
      await waitFor("the daemon to run", () => listener.running);
      for (const src of ["198.18.0.1", "198.18.0.2"]) {
        for (const dstPort of ports) listener.push({ src, dstPort, proto: "tcp", atMs: (nowMs += 100) });
      }
      let text = "";
      for (let i = 0; i < 100 && sample(text, 'tknock_firewall_update_seconds_count{result="ok"}') !== 1; i++) {
        await new Promise((r) => setImmediate(r));
        text = await metrics.scrape(daemon.snapshot());
      }
      expect(sample(text, 'tknock_knocks_total{decision="open"}')).toBe(1);
      expect(sample(text, 'tknock_knocks_total{decision="refuse_replay"}')).toBe(1);
      expect(sample(text, "tknock_grants_active")).toBe(1);
      expect(sample(text, 'tknock_state_write_seconds_count{result="ok"}')).toBe(1);
      expect(sample(text, "tknock_gate_present")).toBe(1);
      nowMs += STATUS_REWRITE_EVERY_MS; // the next 1 s tick rewrites daemon.json
      await waitFor("daemon.json to show the knocks", () => readRuntimeStatus(runtimeStatusPath(join(dir, "state")))?.activity?.knocks["open"] === 1, 3000);
      expect(readRuntimeStatus(runtimeStatusPath(join(dir, "state")))?.activity).toMatchObject({
        lastOpenAt: expect.any(String) as unknown,
        knocks: { open: 1, refuse_replay: 1 },
      });
    } finally {
      stop.abort();
      await running;
    }
  });
});
