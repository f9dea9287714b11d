/**
 * The lab the benchmark parts 2-5 share: tknock's TknockLab (server 198.18.0.2 running `tknock-server run`,
 * nftables gate on port 2222), a second server host "kserver" (198.18.0.4) for knockd, an "other" host for the
 * flood sender, and several client hosts, because grants are per source address: a client host is reused only
 * after its last grant expired. A TCP service listens on port 2222 on both servers.
 */
import type { ChildProcess } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { hostname } from "node:os";
import { loadServerConfig } from "../server/config/load.js";
import { clientProfile, type ClientRecord } from "../server/config/schema.js";
import { formatProfileUri, newSecretBase32 } from "../src/protocol/profile-uri.js";
import { validateProfile } from "../src/protocol/profile.js";
import { deriveSequence } from "../src/protocol/derive.js";
import { stepAt } from "../src/protocol/window.js";
import { ProfileStore } from "../client/store.js";
import { readClients, writeClients } from "../server/clients-file.js";
import { CLIENT_BIN, TknockLab } from "../lab/tknock-lab.js";
import { ConnectProber } from "./capture.js";
import { DaemonHandle } from "./daemon-handle.js";
import { KnockdServer } from "./knockd.js";
import { pidsInNamespace } from "./proc.js";
import { sleep } from "./stats.js";

export const PROTECT_PORT = 2222;
export const OPEN_SECONDS = 1;
export const KNOCK_RANGE = { min: 10000, max: 59999 } as const;

export type BenchLabOptions = { clientHosts: number; knockd: boolean };

/** The daemon's listener (server.json `listener`); the log listener reads /dev/kmsg in the lab. */
export type BenchListener = "pcap" | "log" | "nflog";

export class BenchLab {
  readonly clientHosts: string[];
  readonly probers = new Map<string, ConnectProber>();
  daemon: DaemonHandle | undefined;
  knockd: KnockdServer | undefined;
  private readonly services: ChildProcess[] = [];
  /** Per "server|host": when that host's last grant may still be alive until (ms). */
  private readonly grantUntil = new Map<string, number>();
  readonly enrolled: { name: string; record: ClientRecord }[] = [];

  private constructor(
    readonly t: TknockLab,
    readonly withKnockd: boolean,
  ) {
    this.clientHosts = [...t.lab.hosts.keys()].filter((h) => h === "client" || /^c\d+$/.test(h));
  }

  static async create(o: BenchLabOptions): Promise<BenchLab> {
    const extra = Array.from({ length: Math.max(0, o.clientHosts - 1) }, (_, i) => `c${i + 2}`);
    const t = await TknockLab.create({ hosts: ["client", "server", "other", "kserver", ...extra], openSeconds: OPEN_SECONDS, protectPort: PROTECT_PORT });
    const bl = new BenchLab(t, o.knockd);
    try {
      bl.services.push(t.startService(PROTECT_PORT, "hello\n", "server"));
      bl.services.push(t.startService(PROTECT_PORT, "hello\n", "kserver"));
      for (const h of bl.clientHosts) bl.probers.set(h, ConnectProber.start(t.lab, h));
      await sleep(500); // services listening, probers' node started
    } catch (err) {
      await bl.destroy();
      throw err;
    }
    return bl;
  }

  get serverAddr(): string {
    return this.t.lab.host("server").ipv4;
  }

  get kserverAddr(): string {
    return this.t.lab.host("kserver").ipv4;
  }

  ns(host: string): string {
    return this.t.lab.host(host).ns;
  }

  /**
   * Enrols clients the way `tknock-server enroll` + `tknock add` do, through the same modules, in-process
   * (running the two CLIs 120 times would cost a minute). Must run before the daemon reads the clients file.
   */
  async enroll(names: readonly string[], extra: Pick<ClientRecord, "mode"> = {}): Promise<void> {
    const config = loadServerConfig(this.t.configPath);
    const file = readClients(config.clientsFile);
    const store = ProfileStore.open({ dir: this.t.clientHome, warn: () => {} });
    const added: Record<string, ClientRecord> = {};
    for (const name of names) {
      const record: ClientRecord = {
        secret: await newSecretBase32(32),
        periodSeconds: 30,
        knocks: 4,
        portMin: config.knockRange.min,
        portMax: config.knockRange.max,
        exclude: [...config.protect],
        proto: "tcp",
        open: [...config.protect],
        host: hostname(),
        addr: this.serverAddr,
        enrolledAt: new Date().toISOString(),
        ...extra,
      };
      const profile = validateProfile(clientProfile(name, record));
      const uri = formatProfileUri({ ...profile, open: record.open, host: record.host, addr: this.serverAddr, client: name });
      await store.add(name, { uri, addr: this.serverAddr }, true);
      added[name] = record;
      this.enrolled.push({ name, record });
    }
    writeClients(config.clientsFile, { version: 1, clients: { ...file.clients, ...added } });
  }

  /** The lab's clients file (every enrolled client), kept while a daemon runs with a subset. */
  private allClientsFile: string | undefined;

  /** Node flags for the daemon (profiling); set by run.ts --profile. */
  daemonNodeFlags: string[] = [];

  /**
   * Starts a fresh daemon with the given listener (written into server.json first). The log listener needs
   * net.netfilter.nf_log_all_netns=1 on the host, which the caller sets and restores (bench/listeners-bench.ts).
   */
  async startDaemon(listener: BenchListener = "pcap", clients?: readonly string[]): Promise<DaemonHandle> {
    if (this.daemon) await this.daemon.stop();
    const config = JSON.parse(readFileSync(this.t.configPath, "utf8")) as Record<string, unknown>;
    this.allClientsFile ??= loadServerConfig(this.t.configPath).clientsFile;
    let clientsFile = this.allClientsFile;
    if (clients !== undefined) {
      // The same records (secrets, used steps) for just these names: the daemon then has as many clients as knock.
      const all = readClients(this.allClientsFile);
      clientsFile = join(this.t.dir, "clients-subset.json");
      writeClients(clientsFile, { version: 1, clients: Object.fromEntries(clients.map((n) => [n, all.clients[n]!])) });
    }
    writeFileSync(this.t.configPath, JSON.stringify({ ...config, clientsFile, listener, ...(listener === "log" ? { logSource: "kmsg" } : {}) }, null, 2));
    this.daemon = await DaemonHandle.start(this.t, this.daemonNodeFlags);
    return this.daemon;
  }

  async startKnockd(): Promise<KnockdServer> {
    if (this.knockd) await this.knockd.stop();
    this.knockd = await KnockdServer.start(this.t.lab, "kserver", this.t.dir, { protectPort: PROTECT_PORT, openSeconds: OPEN_SECONDS, range: KNOCK_RANGE });
    return this.knockd;
  }

  /**
   * Picks the client host whose grant at `server` expired longest ago (waiting if none has expired yet), and
   * books it for reserveMs (the caller re-books it when it knows when its grant was made).
   */
  async takeHost(server: string, reserveMs = OPEN_SECONDS * 1000 + 300): Promise<string> {
    let best = this.clientHosts[0]!;
    let bestUntil = Number.POSITIVE_INFINITY;
    for (const h of this.clientHosts) {
      const until = this.grantUntil.get(`${server}|${h}`) ?? 0;
      if (until < bestUntil) {
        best = h;
        bestUntil = until;
      }
    }
    const wait = bestUntil - Date.now();
    if (wait > 0) await sleep(wait);
    this.grantUntil.set(`${server}|${best}`, Date.now() + reserveMs);
    return best;
  }

  /** A grant seen at `atMs` lives openSeconds; kernel timeouts are exact, conntrack keeps only live connections. */
  bookHost(server: string, host: string, atMs: number): void {
    this.grantUntil.set(`${server}|${host}`, atMs + OPEN_SECONDS * 1000 + 300);
  }

  /** Runs a command in a host and measures its wall time from here (includes `ip netns exec`, ~1-2 ms). */
  async timed(
    host: string,
    argv: readonly string[],
    timeoutMs = 20_000,
  ): Promise<{ code: number; stdout: string; stderr: string; wallMs: number; startMs: number }> {
    const startMs = Date.now();
    const t0 = performance.now();
    const r = await this.t.lab.exec(host, argv, { timeoutMs });
    return { ...r, wallMs: performance.now() - t0, startMs };
  }

  /**
   * The ports of an enrolled client's current step, for sending a tknock knock with knockd's own `knock` client
   * (so both daemons get identical client behaviour). Each such client must be used once: the step is not stored.
   */
  currentPorts(name: string): number[] {
    const e = this.enrolled.find((x) => x.name === name);
    if (!e) throw new Error(`bench: ${name} is not enrolled`);
    const profile = clientProfile(name, e.record);
    return deriveSequence(profile, stepAt(Date.now(), profile.periodSeconds));
  }

  /** `tknock ARGS` in a host, with this lab's client store. */
  tknockArgv(args: readonly string[]): string[] {
    return ["env", `TKNOCK_HOME=${this.t.clientHome}`, "node", CLIENT_BIN, ...args];
  }

  /**
   * On Ctrl-C or SIGTERM: kill everything running in the lab's namespaces, synchronously (the lab's own signal
   * hook then deletes the namespaces, which alone would leave the daemons running).
   */
  killAllSync(): void {
    const namespaces = [...[...this.t.lab.hosts.values()].map((h) => h.ns), `tkl-${this.t.lab.id}-sw`];
    for (const ns of namespaces) {
      for (const pid of pidsInNamespace(ns)) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          /* already gone */
        }
      }
    }
  }

  async destroy(): Promise<void> {
    for (const p of this.probers.values()) p.close();
    for (const s of this.services) s.kill();
    await this.knockd?.stop().catch(() => undefined);
    await this.daemon?.stop().catch(() => undefined);
    await this.t.destroy();
  }
}
