/**
 * The nftables gate: one table (`inet tknock` by default) that the daemon owns and nothing else touches. Grants
 * are set elements with a timeout, so the kernel closes them even if the daemon dies; the table outlives the
 * daemon (fail closed) until `remove()`.
 */
import type { Firewall, GateProblem, GateSpec, Grant, WatchPorts } from "../../../src/ports.js";
import { validateTableName, validateWatch } from "../validate.js";
import { findGateProblem, outlineOfInstallScript, shapeOfListing, type GateShape } from "./gate-shape.js";
import { watchTable } from "./nft-monitor.js";
import { firewallError, NftSession, runNftOnce, silentLog, type FirewallLog } from "./nft-process.js";
import { buildHeartbeatLine, buildInstallScript, buildListArgs, buildOpenLines, buildRemoveScript, buildWatchScript, parseGrantsJson } from "./ruleset.js";

export type { FirewallLog } from "./nft-process.js";

export type NftablesFirewallOptions = {
  /** Our table in family inet. Default "tknock". */
  readonly table?: string;
  /** The nft binary. Default "nft". */
  readonly nftPath?: string;
  /** Full argv prefix that runs nft, e.g. ["ip", "netns", "exec", NS, "nft"]; overrides nftPath. */
  readonly nftCommand?: readonly string[];
  readonly log?: FirewallLog;
  /** How long one nft command may take before it counts as failed. Default 5000. */
  readonly commandTimeoutMs?: number;
  /** How long heartbeat() waits for `nft monitor` to report its change. Default 250. */
  readonly heartbeatTimeoutMs?: number;
};

export class NftablesFirewall implements Firewall {
  readonly name = "nftables";
  readonly table: string;
  private readonly nftCommand: readonly string[];
  private readonly timeoutMs: number;
  private readonly session: NftSession;
  private readonly log: FirewallLog;
  /** What the last install put in the kernel, as nft lists it, keyed by its script (see gate-shape.ts). */
  private installed: { readonly script: string; readonly shape: GateShape } | undefined;
  /** The last setWatch ports, put back by every install that has the watch sets (in the same transaction). */
  private watchPorts: WatchPorts = { starts: [], others: [] };
  private watching = false;
  /** A monitor process started and has not yet echoed a heartbeat. */
  private monitorFresh = true;
  private beat = 0;
  private readonly beatWaiters = new Map<number, (ok: boolean) => void>();
  private readonly heartbeatTimeoutMs: number;

  constructor(options: NftablesFirewallOptions = {}) {
    this.table = validateTableName(options.table ?? "tknock");
    this.nftCommand = options.nftCommand ?? [options.nftPath ?? "nft"];
    if (this.nftCommand.length === 0) throw firewallError("nftCommand is empty: give the argv that runs nft");
    this.timeoutMs = options.commandTimeoutMs ?? 5000;
    this.log = options.log ?? silentLog;
    this.heartbeatTimeoutMs = options.heartbeatTimeoutMs ?? 250;
    this.session = new NftSession({ nftCommand: this.nftCommand, timeoutMs: this.timeoutMs, log: this.log });
  }

  /** Creates the table if missing and sets its ports and rules, in one transaction; existing grants stay. */
  async install(gate: GateSpec, options: { readonly replace?: boolean } = {}): Promise<void> {
    const script = buildInstallScript(this.table, gate);
    // nft -f applies the whole input as one transaction, so a replace never leaves the table absent.
    const withWatch = gate.nflogKnocks?.watchOnly === true ? script + buildWatchScript(this.table, this.watchPorts) : script;
    const input = options.replace === true ? buildRemoveScript(this.table) + withWatch : withWatch;
    await runNftOnce(this.nftCommand, ["-f", "-"], { input, timeoutMs: this.timeoutMs });
    // Start the long-lived nft now (an idempotent no-op), so the first open does not pay for a process start.
    await this.session.run(`add table inet ${this.table}`);
    await this.snapshot(script);
  }

  /** Compares the table in the kernel with what install(gate) puts there (one `nft -j list table`). */
  async check(gate: GateSpec): Promise<GateProblem | undefined> {
    const script = buildInstallScript(this.table, gate);
    const expected = this.installed?.script === script ? this.installed.shape : outlineOfInstallScript(script);
    return findGateProblem(expected, await this.readShape());
  }

  /** `nft monitor` for changes to our table, restarted with backoff if it dies, until the signal aborts. */
  watch(onChange: (what: string) => void, signal: AbortSignal): void {
    this.watching = true;
    signal.addEventListener("abort", () => (this.watching = false), { once: true });
    watchTable(
      {
        nftCommand: this.nftCommand,
        tableName: this.table,
        log: this.log,
        onStart: () => (this.monitorFresh = true),
        onHeartbeat: (beat) => this.beatWaiters.get(beat)?.(true),
      },
      onChange,
      signal,
    );
  }

  /**
   * One heartbeat through the long-lived `nft -i` (no process start): add and delete an element of the heartbeat
   * set in one transaction, and wait up to heartbeatTimeoutMs for `nft monitor` to report it. The monitor reports
   * changes in the order they were made, so an echo means every earlier change was reported too.
   */
  async heartbeat(): Promise<boolean> {
    if (!this.watching) return false;
    this.beat = (this.beat % 65535) + 1;
    const beat = this.beat;
    const echoed = new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), this.heartbeatTimeoutMs);
      this.beatWaiters.set(beat, (ok) => {
        clearTimeout(timer);
        resolve(ok);
      });
    });
    try {
      await this.session.run(buildHeartbeatLine(this.table, beat));
      if (!(await echoed)) return false;
    } catch {
      return false;
    } finally {
      this.beatWaiters.delete(beat);
    }
    // The first echo after a (re)start proves the monitor listens now, not that it saw what came before.
    if (this.monitorFresh) {
      this.monitorFresh = false;
      return false;
    }
    return true;
  }

  /**
   * Records the kernel's listing of the gate just installed, to compare rules with later. If it does not even
   * match the script's outline (it would be a bug), the outline alone is used.
   */
  private async snapshot(script: string): Promise<void> {
    this.installed = undefined;
    const shape = await this.readShape();
    const problem = findGateProblem(outlineOfInstallScript(script), shape);
    if (shape && !problem) this.installed = { script, shape };
    else this.log.warn({ problem: problem?.message }, "the installed gate does not match its script's outline; checking the outline only");
  }

  private async readShape(): Promise<GateShape | undefined> {
    const result = await runNftOnce(this.nftCommand, buildListArgs(this.table), {
      timeoutMs: this.timeoutMs,
      allowFailure: (stderr) => /^Error: No such file or directory/m.test(stderr),
    });
    try {
      return shapeOfListing(result.stdout, this.table);
    } catch (err) {
      throw firewallError(`cannot read nft -j output: ${err instanceof Error ? err.message : String(err)}`, err);
    }
  }

  /** Replaces the watched ports (flush and add in one transaction); install() must have created the sets. */
  async setWatch(watch: WatchPorts): Promise<void> {
    const script = buildWatchScript(this.table, watch); // validates before anything runs
    await runNftOnce(this.nftCommand, ["-f", "-"], { input: script, timeoutMs: this.timeoutMs });
    this.watchPorts = validateWatch(watch);
  }

  async open(grants: readonly Grant[]): Promise<void> {
    const lines = buildOpenLines(this.table, grants); // validates everything before anything runs
    const outputs = await Promise.all(lines.map((line) => this.session.run(line)));
    for (const output of outputs) if (output !== "") this.log.warn({ output }, "nft printed a warning");
  }

  /** The grants in the kernel now; none when the table does not exist. */
  async list(): Promise<Grant[]> {
    const result = await runNftOnce(this.nftCommand, buildListArgs(this.table), {
      timeoutMs: this.timeoutMs,
      // ENOENT from the kernel: no such table, so nothing is granted.
      allowFailure: (stderr) => /^Error: No such file or directory/m.test(stderr),
    });
    if (result.stdout.trim() === "") return [];
    try {
      return parseGrantsJson(result.stdout, this.table);
    } catch (err) {
      throw firewallError(`cannot read nft -j output: ${err instanceof Error ? err.message : String(err)}`, err);
    }
  }

  /** Deletes our table (and with it every grant); other tables are never touched. */
  async remove(): Promise<void> {
    await runNftOnce(this.nftCommand, ["-f", "-"], { input: buildRemoveScript(this.table), timeoutMs: this.timeoutMs });
  }

  /** Ends the nft child; the table and its grants stay in the kernel. */
  async close(): Promise<void> {
    await this.session.close();
  }

  /** The pid of the long-lived nft, if running (diagnostics and tests). */
  get nftPid(): number | undefined {
    return this.session.pid;
  }
}
