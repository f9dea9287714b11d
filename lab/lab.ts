/**
 * The namespace lab: hosts in their own network namespaces, joined by a bridge in a "switch" namespace, with
 * addresses from 198.18.0.0/15 (IPv4) and a ULA prefix (IPv6) that exist only inside the lab. Used by the
 * integration tests, the end-to-end suite, the demo and the benchmarks. Everything it creates is torn down by
 * destroy(), also on test failure and on Ctrl-C (see the exit hooks below).
 */
import { execFile, spawn, spawnSync, type ChildProcess, type SpawnOptions } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export type LabHost = {
  readonly name: string;
  /** Namespace name (for `ip netns exec`). */
  readonly ns: string;
  readonly ipv4: string;
  readonly ipv6: string;
  /** Interface name inside the namespace. */
  readonly ifname: string;
};

export type ExecResult = { code: number; stdout: string; stderr: string };

const LAB_PREFIX = "tkl";
/** Each live lab leaves its owner's pid here, so a cleanup never deletes a lab that a parallel run still uses. */
const OWNER_DIR = "/run/tknock-lab";
const live = new Set<Lab>();

function run(argv: readonly string[], opts: { timeoutMs?: number; input?: string } = {}): Promise<ExecResult> {
  return new Promise((resolve) => {
    const [cmd, ...args] = argv;
    const child = execFile(cmd as string, args, { timeout: opts.timeoutMs ?? 30_000, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === "number" ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

async function must(argv: readonly string[]): Promise<string> {
  const r = await run(argv);
  if (r.code !== 0) throw new Error(`lab: ${argv.join(" ")} failed (${r.code}): ${r.stderr.trim()}`);
  return r.stdout;
}

export class Lab {
  readonly hosts = new Map<string, LabHost>();
  private readonly children = new Set<ChildProcess>();
  private destroyed = false;

  private constructor(
    readonly id: string,
    private readonly switchNs: string,
  ) {}

  /**
   * Creates one namespace per host name, in order: the first host gets 198.18.0.1, the second .2, and so on
   * (IPv6 fd18:18::1, ::2, ...).
   */
  static async create(hostNames: readonly string[]): Promise<Lab> {
    if (process.getuid?.() !== 0) throw new Error("the namespace lab needs root (ip netns, veth, nft)");
    if (hostNames.length === 0 || hostNames.length > 200) throw new Error("lab: give 1..200 hosts");
    const id = randomBytes(3).toString("hex");
    const lab = new Lab(id, `${LAB_PREFIX}-${id}-sw`);
    mkdirSync(OWNER_DIR, { recursive: true });
    writeFileSync(join(OWNER_DIR, id), String(process.pid));
    live.add(lab);
    installExitHooks();
    try {
      await must(["ip", "netns", "add", lab.switchNs]);
      await must(["ip", "-n", lab.switchNs, "link", "add", "br0", "type", "bridge"]);
      await must(["ip", "-n", lab.switchNs, "link", "set", "br0", "up"]);
      for (const [i, name] of hostNames.entries()) {
        const ns = `${LAB_PREFIX}-${id}-${name}`;
        const n = i + 1;
        const host: LabHost = { name, ns, ipv4: `198.18.0.${n}`, ipv6: `fd18:18::${n.toString(16)}`, ifname: "eth0" };
        const outer = `tk${id}p${n}`; // <= 15 chars
        await must(["ip", "netns", "add", ns]);
        lab.hosts.set(name, host);
        await must(["ip", "link", "add", outer, "type", "veth", "peer", "name", "eth0", "netns", ns]);
        await must(["ip", "link", "set", outer, "netns", lab.switchNs]);
        await must(["ip", "-n", lab.switchNs, "link", "set", outer, "master", "br0"]);
        await must(["ip", "-n", lab.switchNs, "link", "set", outer, "up"]);
        await must(["ip", "-n", ns, "link", "set", "lo", "up"]);
        await must(["ip", "-n", ns, "addr", "add", `${host.ipv4}/24`, "dev", "eth0"]);
        await must(["ip", "-n", ns, "addr", "add", `${host.ipv6}/64`, "dev", "eth0", "nodad"]);
        await must(["ip", "-n", ns, "link", "set", "eth0", "up"]);
      }
    } catch (err) {
      await lab.destroy();
      throw err;
    }
    return lab;
  }

  /**
   * A host in a network of its own behind `router` (one veth, 198.19.N.0/24: the router .1, the host .2, its
   * default route via the router), so other lab hosts reach it only through the router: a container behind a
   * DNAT, for example. IPv4 only. The router forwards (ip_forward on in its namespace).
   */
  async addHostBehind(name: string, router: string): Promise<LabHost> {
    if (this.hosts.has(name)) throw new Error(`lab: host ${name} exists`);
    const r = this.host(router);
    const n = this.hosts.size + 1;
    const ns = `${LAB_PREFIX}-${this.id}-${name}`;
    const host: LabHost = { name, ns, ipv4: `198.19.${n}.2`, ipv6: "", ifname: "eth0" };
    const outer = `tk${this.id}b${n}`;
    await must(["ip", "netns", "add", ns]);
    this.hosts.set(name, host);
    await must(["ip", "link", "add", outer, "type", "veth", "peer", "name", "eth0", "netns", ns]);
    await must(["ip", "link", "set", outer, "netns", r.ns]);
    await must(["ip", "-n", r.ns, "addr", "add", `198.19.${n}.1/24`, "dev", outer]);
    await must(["ip", "-n", r.ns, "link", "set", outer, "up"]);
    await must(["ip", "netns", "exec", r.ns, "sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    await must(["ip", "-n", ns, "link", "set", "lo", "up"]);
    await must(["ip", "-n", ns, "addr", "add", `${host.ipv4}/24`, "dev", "eth0"]);
    await must(["ip", "-n", ns, "link", "set", "eth0", "up"]);
    await must(["ip", "-n", ns, "route", "add", "default", "via", `198.19.${n}.1`]);
    return host;
  }

  host(name: string): LabHost {
    const h = this.hosts.get(name);
    if (!h) throw new Error(`lab: no host ${name}`);
    return h;
  }

  /** Runs a command inside a host's namespace and waits for it. */
  exec(hostName: string, argv: readonly string[], opts: { timeoutMs?: number; input?: string } = {}): Promise<ExecResult> {
    return run(["ip", "netns", "exec", this.host(hostName).ns, ...argv], opts);
  }

  /** Starts a long-running command inside a host's namespace; destroy() kills it if still running. */
  spawn(hostName: string, argv: readonly string[], opts: SpawnOptions = {}): ChildProcess {
    const child = spawn("ip", ["netns", "exec", this.host(hostName).ns, ...argv], { stdio: ["ignore", "pipe", "pipe"], ...opts });
    this.children.add(child);
    child.once("exit", () => this.children.delete(child));
    return child;
  }

  /** Kills what the lab started and deletes its namespaces (and with them every veth, nft table and socket). */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const child of this.children) {
      if (child.exitCode === null) child.kill("SIGKILL");
    }
    await Promise.all(
      [...this.children].map((c) => new Promise<void>((r) => (c.exitCode !== null || c.signalCode !== null ? r() : c.once("exit", () => r())))),
    );
    // Kill anything else still running inside (e.g. a daemon started through a shell).
    for (const ns of [...[...this.hosts.values()].map((h) => h.ns), this.switchNs]) {
      const pids = await run(["ip", "netns", "pids", ns]);
      for (const pid of pids.stdout.split(/\s+/).filter(Boolean)) {
        try {
          process.kill(Number(pid), "SIGKILL");
        } catch {
          /* already gone */
        }
      }
      await run(["ip", "netns", "del", ns]);
    }
    rmSync(join(OWNER_DIR, this.id), { force: true });
    live.delete(this);
  }
}

/** Deletes namespaces left by a lab whose owning process died (e.g. SIGKILL); run at the start of a suite. */
export async function removeStaleLabs(): Promise<void> {
  const list = await run(["ip", "netns", "list"]);
  for (const line of list.stdout.split("\n")) {
    const ns = line.split(" ")[0] ?? "";
    const id = ns.split("-")[1];
    if (!ns.startsWith(`${LAB_PREFIX}-`) || id === undefined || ownerAlive(id)) continue;
    await run(["ip", "netns", "del", ns]);
    rmSync(join(OWNER_DIR, id), { force: true });
  }
}

function ownerAlive(id: string): boolean {
  let pid: number;
  try {
    pid = Number(readFileSync(join(OWNER_DIR, id), "utf8"));
  } catch {
    return false;
  }
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

let hooksInstalled = false;
function installExitHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  const destroyAllSync = (): void => {
    for (const lab of live) {
      for (const h of lab.hosts.values()) spawnSyncQuiet(["ip", "netns", "del", h.ns]);
      spawnSyncQuiet(["ip", "netns", "del", `${LAB_PREFIX}-${lab.id}-sw`]);
      rmSync(join(OWNER_DIR, lab.id), { force: true });
    }
  };
  process.once("exit", destroyAllSync);
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    process.once(sig, () => {
      destroyAllSync();
      process.exit(130);
    });
  }
}

function spawnSyncQuiet(argv: readonly string[]): void {
  const [cmd, ...args] = argv;
  spawnSync(cmd as string, args, { stdio: "ignore", timeout: 5000 });
}
