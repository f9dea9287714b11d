/**
 * `tknock-server run` in the lab's server namespace, started by the bench itself (not TknockLab.startDaemon) so
 * the bench knows its pid and its tcpdump's pid, can read every JSON log line, and starts measuring as soon as
 * tcpdump is capturing.
 */
import type { ChildProcess } from "node:child_process";
import { JsonLogCollector, type LogLine } from "../lab/json-log.js";
import { SERVER_BIN, type TknockLab } from "../lab/tknock-lab.js";
import { cmdline, findProcess, parentPid, pidsInNamespace } from "./proc.js";
import { sleep } from "./stats.js";

export class DaemonHandle {
  private readonly collector = new JsonLogCollector();
  private stderr = "";

  private constructor(
    private readonly child: ChildProcess,
    readonly pid: number,
  ) {
    this.collector.attach(child.stdout);
    child.stderr?.setEncoding("utf8").on("data", (t: string) => (this.stderr += t));
  }

  get logs(): LogLine[] {
    return this.collector.lines;
  }

  /** nodeFlags: e.g. ["--cpu-prof", "--cpu-prof-dir=DIR"] to profile the daemon (written when it exits). */
  static async start(t: TknockLab, nodeFlags: readonly string[] = []): Promise<DaemonHandle> {
    const child = t.lab.spawn("server", ["node", ...nodeFlags, SERVER_BIN, "--config", t.configPath, "run"]);
    if (child.pid === undefined) throw new Error("could not start tknock-server run");
    // `ip netns exec` execs node: the child's pid is the daemon's.
    const d = new DaemonHandle(child, child.pid);
    const exited = new Promise<never>((_, reject) => child.once("exit", (code) => reject(new Error(`tknock-server run exited (${code}): ${d.stderr.trim()}`))));
    exited.catch(() => undefined);
    // pcap and nflog listeners: tcpdump has attached; log listener: the log source is open.
    await Promise.race([d.waitForLog((l) => l.msg === "tcpdump capturing" || l.msg === "log source reading", 20_000), exited]);
    return d;
  }

  /** The daemon's tcpdump (its child), if running. */
  /** The daemon's long-lived helpers other than tcpdump (`nft -i`, `nft monitor`): their CPU is the daemon's too. */
  helperPids(serverNs: string): number[] {
    return pidsInNamespace(serverNs).filter((pid) => parentPid(pid) === this.pid && cmdline(pid)[0] !== "tcpdump");
  }

  tcpdumpPid(serverNs: string): number | undefined {
    return findProcess(serverNs, (argv, pid) => argv[0] === "tcpdump" && parentPid(pid) === this.pid);
  }

  waitForLog(pred: (l: LogLine) => boolean, timeoutMs: number, fromIndex = 0): Promise<LogLine> {
    return this.collector.waitFor(pred, timeoutMs, fromIndex);
  }

  /**
   * Asks tcpdump for its counters (SIGUSR1; the listener reads the answer into its stats), then the daemon for its
   * stats line (SIGUSR1). Returns the "stats" log line.
   */
  async stats(serverNs: string): Promise<LogLine | undefined> {
    const tcpdump = this.tcpdumpPid(serverNs);
    if (tcpdump !== undefined) {
      try {
        process.kill(tcpdump, "SIGUSR1");
      } catch {
        /* gone */
      }
      await sleep(300);
    }
    const from = this.logs.length;
    this.child.kill("SIGUSR1");
    return this.waitForLog((l) => l.msg === "stats", 5000, from).catch(() => undefined);
  }

  /** SIGTERM, then the exit log line ("tknock-server stopped ..."), which carries the final counters. */
  async stop(): Promise<LogLine | undefined> {
    const from = this.logs.length;
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const done = new Promise<void>((r) => this.child.once("exit", () => r()));
      this.child.kill("SIGTERM");
      const timer = setTimeout(() => this.child.kill("SIGKILL"), 10_000);
      await done;
      clearTimeout(timer);
    }
    return this.logs.slice(from).find((l) => l.msg.startsWith("tknock-server stopped"));
  }
}
