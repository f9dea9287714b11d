/**
 * tknock on the namespace lab: a server host running the real `tknock-server run`, a client host running the
 * real `tknock`, and an "other" host for replays and scans. Shared by the e2e suite, the demo and the benchmarks.
 */
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { JsonLogCollector, type LogLine } from "./json-log.js";
import { Lab, removeStaleLabs, type ExecResult } from "./lab.js";

export type { LogLine };

/** Repository root, whether running from lab/ (vitest) or dist/lab/ (the built demo and benches). */
export const REPO_ROOT = (() => {
  const here = fileURLToPath(new URL(".", import.meta.url));
  return here.includes(`${"/dist/"}`) ? resolve(here, "../..") : resolve(here, "..");
})();
export const SERVER_BIN = join(REPO_ROOT, "dist/server/bin.js");
export const CLIENT_BIN = join(REPO_ROOT, "dist/client/bin.js");

export type TknockLabOptions = {
  readonly protectPort?: number;
  readonly openSeconds?: number;
  readonly extraConfig?: Record<string, unknown>;
  readonly hosts?: readonly string[];
};

export class TknockLab {
  readonly protectPort: number;
  readonly configPath: string;
  readonly stateDir: string;
  readonly clientHome: string;
  private daemon: ChildProcess | undefined;
  private readonly logs = new JsonLogCollector();

  private constructor(
    readonly lab: Lab,
    readonly dir: string,
    protectPort: number,
  ) {
    this.protectPort = protectPort;
    this.configPath = join(dir, "etc/server.json");
    this.stateDir = join(dir, "state");
    this.clientHome = join(dir, "client-home");
  }

  static async create(opts: TknockLabOptions = {}): Promise<TknockLab> {
    await removeStaleLabs();
    const lab = await Lab.create(opts.hosts ?? ["client", "server", "other"]);
    const dir = mkdtempSync(join(tmpdir(), "tknock-lab-"));
    const t = new TknockLab(lab, dir, opts.protectPort ?? 2222);
    try {
      await t.serverOk(["init", "--interface", "eth0", "--protect", String(t.protectPort), "--state-dir", t.stateDir]);
      const config = JSON.parse(readFileSync(t.configPath, "utf8")) as Record<string, unknown>;
      Object.assign(config, { openSeconds: opts.openSeconds ?? 30 }, opts.extraConfig ?? {});
      writeFileSync(t.configPath, JSON.stringify(config, null, 2));
    } catch (err) {
      await t.destroy();
      throw err;
    }
    return t;
  }

  get serverAddr(): string {
    return this.lab.host("server").ipv4;
  }

  /** `tknock-server --config ... ARGS` inside the server namespace. */
  server(args: readonly string[], timeoutMs = 20_000): Promise<ExecResult> {
    return this.lab.exec("server", ["node", SERVER_BIN, "--config", this.configPath, ...args], { timeoutMs });
  }

  async serverOk(args: readonly string[]): Promise<string> {
    const r = await this.server(args);
    if (r.code !== 0) throw new Error(`tknock-server ${args.join(" ")} failed (${r.code}): ${r.stderr.trim()}`);
    return r.stdout;
  }

  /** `tknock ARGS` inside a host's namespace with this lab's store. */
  client(args: readonly string[], opts: { host?: string; timeoutMs?: number; home?: string } = {}): Promise<ExecResult> {
    return this.lab.exec(opts.host ?? "client", ["env", `TKNOCK_HOME=${opts.home ?? this.clientHome}`, "node", CLIENT_BIN, ...args], {
      timeoutMs: opts.timeoutMs ?? 30_000,
    });
  }

  /** Enrols a client on the server and adds its URI to the client's store under the same name. */
  async enrollClient(name: string, extra: readonly string[] = []): Promise<{ uri: string; qr: string }> {
    const out = await this.serverOk(["enroll", name, "--host", "server", "--addr", this.serverAddr, ...extra]);
    const lines = out.split("\n");
    const uri = lines.find((l) => l.startsWith("otpauth://"));
    if (!uri) throw new Error(`enroll printed no URI: ${out}`);
    const added = await this.client(["add", uri, "--name", name]);
    if (added.code !== 0) throw new Error(`tknock add failed: ${added.stderr}`);
    return { uri, qr: lines.filter((l) => !l.startsWith("otpauth://")).join("\n") };
  }

  /** Starts `tknock-server run` in the server namespace and waits until it says it is running. */
  async startDaemon(): Promise<void> {
    if (this.daemon && this.daemon.exitCode === null && this.daemon.signalCode === null) throw new Error("daemon already running");
    const child = this.lab.spawn("server", ["node", SERVER_BIN, "--config", this.configPath, "run"]);
    this.daemon = child;
    const from = this.logs.lines.length; // lines of an earlier run must not count
    this.logs.attach(child.stdout);
    let stderr = "";
    child.stderr?.setEncoding("utf8").on("data", (c: string) => (stderr += c));
    const exited = new Promise<never>((_, reject) =>
      child.once("exit", (code) => reject(new Error(`daemon exited (${code}) before it ran: ${stderr.trim()}`))),
    );
    exited.catch(() => undefined);
    await Promise.race([this.waitForLog((l) => l.msg === "tknock-server running", 15_000, from), exited]);
    // Knocks count once tcpdump has attached its filter (or the log listener reads its source).
    await Promise.race([this.waitForLog((l) => l.msg === "tcpdump capturing" || l.msg === "log source reading", 10_000, from), exited]);
  }

  /** Resolves with the first log line (past or future) that matches, or rejects after timeoutMs. */
  waitForLog(pred: (l: LogLine) => boolean, timeoutMs: number, fromIndex = 0): Promise<LogLine> {
    return this.logs.waitFor(pred, timeoutMs, fromIndex);
  }

  get logCount(): number {
    return this.logs.lines.length;
  }

  logsSince(index: number): LogLine[] {
    return this.logs.lines.slice(index);
  }

  async stopDaemon(signal: NodeJS.Signals = "SIGTERM"): Promise<number | null> {
    const child = this.daemon;
    if (!child || child.exitCode !== null || child.signalCode !== null) return child?.exitCode ?? null;
    const done = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
    // `ip netns exec` execs node, so the child pid is the daemon itself.
    child.kill(signal);
    const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
    const code = await done;
    clearTimeout(timer);
    return code;
  }

  signalDaemon(signal: NodeJS.Signals): void {
    this.daemon?.kill(signal);
  }

  /**
   * Starts tcpdump in a host's namespace, printing packets line by line, and resolves once it is listening
   * (its filter attached), so nothing sent afterwards is missed. stop() ends it and returns what it printed.
   */
  async capture(host: string, filter: string): Promise<{ stop: () => Promise<string> }> {
    const child = this.lab.spawn(host, ["tcpdump", "-i", "eth0", "-n", "-l", "-U", filter]);
    let out = "";
    let err = "";
    child.stdout?.setEncoding("utf8").on("data", (c: string) => (out += c));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`tcpdump did not start: ${err.trim()}`)), 10_000);
      child.stderr?.setEncoding("utf8").on("data", (c: string) => {
        err += c;
        if (err.includes("listening on")) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once("exit", () => {
        clearTimeout(timer);
        reject(new Error(`tcpdump exited: ${err.trim()}`));
      });
    });
    return {
      stop: async () => {
        await sleep(200); // let the last packets through the pipe
        const exited = new Promise((r) => child.once("exit", r));
        child.kill("SIGINT");
        await exited;
        return out;
      },
    };
  }

  /** A TCP service on a port in a host's namespace that greets each connection and then echoes. */
  startService(port: number, greeting = "hello from the protected service\n", host = "server"): ChildProcess {
    const code = `const net=require("net");net.createServer(s=>{s.write(${JSON.stringify(greeting)});s.on("data",d=>s.write(d));s.on("error",()=>{})}).listen(${port},"::",()=>console.log("listening"))`;
    return this.lab.spawn(host, ["node", "-e", code]);
  }

  /**
   * One TCP connect from a host: "open" (connected; returns the first bytes received), "refused" (RST: closed),
   * or "filtered" (no answer within timeoutMs).
   */
  async probe(
    host: string,
    port: number,
    timeoutMs = 1000,
    addr = this.serverAddr,
  ): Promise<{ state: "open" | "refused" | "filtered" | "error"; data: string }> {
    const code = `const s=require("net").connect({host:${JSON.stringify(addr)},port:${port}});let d="";const t=setTimeout(()=>{console.log(JSON.stringify({state:"filtered",data:""}));process.exit(0)},${timeoutMs});
s.on("connect",()=>{setTimeout(()=>{clearTimeout(t);console.log(JSON.stringify({state:"open",data:d}));s.destroy();process.exit(0)},150)});
s.on("data",c=>d+=c);s.on("error",e=>{clearTimeout(t);console.log(JSON.stringify({state:e.code==="ECONNREFUSED"?"refused":"error",data:e.code}));process.exit(0)});`;
    const r = await this.lab.exec(host, ["node", "-e", code], { timeoutMs: timeoutMs + 5000 });
    try {
      return JSON.parse(r.stdout.trim()) as { state: "open" | "refused" | "filtered" | "error"; data: string };
    } catch {
      return { state: "error", data: r.stderr };
    }
  }

  /** Sends one TCP SYN per port, in order, from a host (the same packets a tcp-transport knock sends). */
  async sendSyns(host: string, ports: readonly number[], delayMs = 10, addr = this.serverAddr): Promise<void> {
    const code = `const net=require("net");const ports=${JSON.stringify(ports)};(async()=>{for(const p of ports){const s=net.connect({host:${JSON.stringify(addr)},port:p});s.on("error",()=>{});await new Promise(r=>setTimeout(r,${delayMs}));s.destroy();}})()`;
    const r = await this.lab.exec(host, ["node", "-e", code], { timeoutMs: 30_000 });
    if (r.code !== 0) throw new Error(`sendSyns failed: ${r.stderr}`);
  }

  async replays(): Promise<{ kind: string; source: string; client?: string; step?: number; offsetWindows?: number; ports?: number[] }[]> {
    return JSON.parse(await this.serverOk(["replays", "--json"])) as { kind: string; source: string; client?: string; step?: number; offsetWindows?: number }[];
  }

  async destroy(): Promise<void> {
    await this.stopDaemon("SIGKILL").catch(() => undefined);
    await this.lab.destroy();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
