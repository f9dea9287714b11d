/**
 * The iptables gate, for hosts that run iptables (nf_tables or legacy, whichever `iptables` is): two chains of
 * its own per family (input, and forward with gateForward), each jumped to from the top of INPUT / FORWARD (or
 * Docker's DOCKER-USER), and ipset sets whose elements carry timeouts, so the kernel closes a grant even if the
 * daemon dies, as with nftables. Nothing else in the host's rules is touched; remove() deletes exactly these.
 */
import { execFile } from "node:child_process";
import { ExitCode, TknockError } from "../../../src/errors.js";
import type { Firewall, GateProblem, GateSpec, Grant, WatchPorts } from "../../../src/ports.js";
import { validateGate, validateWatch, type ValidGate } from "../validate.js";
import {
  buildGrantLines,
  buildRestoreInput,
  buildSetCreateLines,
  buildWatchLines,
  FAMILIES,
  iptablesNames,
  parseGrantSave,
  type Family,
  type IptablesNames,
} from "./iptables-rules.js";

export type IptablesLog = {
  info(fields: Record<string, unknown>, message: string): void;
  warn(fields: Record<string, unknown>, message: string): void;
};

export type IptablesFirewallOptions = {
  readonly prefix?: string;
  readonly iptablesPath?: string;
  readonly ip6tablesPath?: string;
  readonly ipsetPath?: string;
  /** Put before every command, e.g. ["ip", "netns", "exec", NS] (tests). */
  readonly commandPrefix?: readonly string[];
  readonly log?: IptablesLog;
  readonly commandTimeoutMs?: number;
};

type Result = { code: number; stdout: string; stderr: string };

const DOCKER_USER = "DOCKER-USER";
const MAX_ERROR_CHARS = 400;

export class IptablesFirewall implements Firewall {
  readonly name = "iptables";
  readonly names: IptablesNames;
  private readonly opts: Required<Omit<IptablesFirewallOptions, "log">> & { log: IptablesLog | undefined };
  /** The `-A` lines each chain listed right after the last install, by the gate they were installed for. */
  private snapshot: { readonly key: string; readonly chains: ReadonlyMap<string, readonly string[]> } | undefined;
  private installedGate: ValidGate | undefined;
  private watchPorts: WatchPorts = { starts: [], others: [] };

  constructor(options: IptablesFirewallOptions = {}) {
    this.names = iptablesNames(options.prefix ?? "tknock");
    this.opts = {
      prefix: options.prefix ?? "tknock",
      iptablesPath: options.iptablesPath ?? "iptables",
      ip6tablesPath: options.ip6tablesPath ?? "ip6tables",
      ipsetPath: options.ipsetPath ?? "ipset",
      commandPrefix: options.commandPrefix ?? [],
      log: options.log,
      commandTimeoutMs: options.commandTimeoutMs ?? 5000,
    };
  }

  async install(gate: GateSpec, options: { readonly replace?: boolean } = {}): Promise<void> {
    const valid = validateGate(gate);
    if (options.replace === true) await this.remove();
    const setLines = buildSetCreateLines(this.names, valid);
    if (valid.nflogKnocks?.watchOnly === true) setLines.push(...buildWatchLines(this.names, this.watchPorts));
    await this.ipsetRestore(setLines);
    for (const f of FAMILIES) {
      await this.must(this.restoreArgv(f), buildRestoreInput(this.names, f, valid));
      await this.ensureJump(f, "INPUT", this.names.inputChain);
      if (valid.gateForward) await this.ensureJump(f, (await this.hasChain(f, DOCKER_USER)) ? DOCKER_USER : "FORWARD", this.names.forwardChain);
      else await this.dropChain(f, this.names.forwardChain);
    }
    await this.destroyUnusedSets(valid);
    this.installedGate = valid;
    const chains = new Map<string, readonly string[]>();
    for (const f of FAMILIES) for (const chain of this.chainsOf(valid)) chains.set(`${f}/${chain}`, (await this.chainRules(f, chain)) ?? []);
    this.snapshot = { key: JSON.stringify(valid), chains };
  }

  async check(gate: GateSpec): Promise<GateProblem | undefined> {
    const valid = validateGate(gate);
    const key = JSON.stringify(valid);
    for (const f of FAMILIES) {
      for (const chain of this.chainsOf(valid)) {
        const rules = await this.chainRules(f, chain);
        if (rules === undefined) return { kind: "chain-missing", message: `chain ${chain} missing (IPv${f})` };
        const parent = chain === this.names.inputChain ? "INPUT" : (await this.hasChain(f, DOCKER_USER)) ? DOCKER_USER : "FORWARD";
        const first = (await this.chainRules(f, parent))?.[0];
        if (first !== `-A ${parent} -j ${chain}`) return { kind: "chain-missing", message: `${parent} does not jump to ${chain} first (IPv${f})` };
        // iptables prints rules in its own form; what this instance installed is compared as iptables listed it.
        if (this.snapshot !== undefined && this.snapshot.key !== key) {
          return { kind: "rules-differ", message: `rules differ in chain ${chain}: installed for other gate settings` };
        }
        const want = this.snapshot?.chains.get(`${f}/${chain}`);
        if (want !== undefined) {
          const at = Math.max(want.length, rules.length);
          for (let i = 0; i < at; i++) {
            if (want[i] !== rules[i]) return { kind: "rules-differ", message: `rules differ in chain ${chain} (IPv${f}): rule ${i + 1} changed` };
          }
        } else {
          const expected = buildRestoreInput(this.names, f, valid)
            .split("\n")
            .filter((l) => l.startsWith(`-A ${chain} `)).length;
          if (expected !== rules.length) {
            return { kind: "rules-differ", message: `rules differ in chain ${chain} (IPv${f}): ${rules.length} rules, expected ${expected}` };
          }
        }
      }
    }
    const sets = await this.setNames();
    for (const line of buildSetCreateLines(this.names, valid)) {
      const name = line.split(" ")[1] ?? "";
      if (!sets.includes(name)) return { kind: "set-missing", message: `ipset ${name} missing` };
    }
    return undefined;
  }

  async setWatch(watch: WatchPorts): Promise<void> {
    const lines = buildWatchLines(this.names, watch); // validates before anything runs
    await this.ipsetRestore(lines);
    this.watchPorts = validateWatch(watch);
  }

  async open(grants: readonly Grant[]): Promise<void> {
    const gate = this.installedGate;
    const lines = buildGrantLines(this.names, grants, gate?.gateForward === true ? gate.protectedPorts : []); // validates first
    if (lines.length === 0) return;
    await this.ipsetRestore(lines);
  }

  async list(): Promise<Grant[]> {
    const grants: Grant[] = [];
    for (const f of FAMILIES) {
      const r = await this.exec([this.opts.ipsetPath, "save", this.names.grantSet(f)]);
      if (r.code !== 0) {
        if (/does not exist/i.test(r.stderr)) continue;
        throw this.failure([this.opts.ipsetPath, "save"], r);
      }
      grants.push(...parseGrantSave(r.stdout));
    }
    return grants;
  }

  /** Deletes our jumps, our chains and our sets; nothing else. Removing an absent gate is fine. */
  async remove(): Promise<void> {
    for (const f of FAMILIES) {
      await this.dropChain(f, this.names.forwardChain);
      await this.dropChain(f, this.names.inputChain);
    }
    const ours = new RegExp(`^${this.opts.prefix}-(g[46]|watch|f[46]-\\d+)$`);
    for (const name of (await this.setNames()).filter((n) => ours.test(n))) await this.must([this.opts.ipsetPath, "destroy", name]);
    this.installedGate = undefined;
    this.snapshot = undefined;
  }

  async close(): Promise<void> {}

  private chainsOf(gate: ValidGate): string[] {
    return gate.gateForward ? [this.names.inputChain, this.names.forwardChain] : [this.names.inputChain];
  }

  /** `parent` jumps to `chain` as its first rule, exactly once. */
  private async ensureJump(f: Family, parent: string, chain: string): Promise<void> {
    const rules = (await this.chainRules(f, parent)) ?? [];
    const jump = `-A ${parent} -j ${chain}`;
    if (rules[0] === jump && rules.filter((r) => r === jump).length === 1) return;
    for (let i = rules.filter((r) => r === jump).length; i > 0; i--) await this.must([this.tables(f), "-w", "5", "-D", parent, "-j", chain]);
    await this.must([this.tables(f), "-w", "5", "-I", parent, "1", "-j", chain]);
  }

  /** Removes every jump to `chain` (from INPUT, FORWARD, DOCKER-USER), then the chain. Absent: nothing to do. */
  private async dropChain(f: Family, chain: string): Promise<void> {
    if ((await this.chainRules(f, chain)) === undefined) return;
    for (const parent of ["INPUT", "FORWARD", DOCKER_USER]) {
      const rules = await this.chainRules(f, parent);
      for (let i = (rules ?? []).filter((r) => r === `-A ${parent} -j ${chain}`).length; i > 0; i--) {
        await this.must([this.tables(f), "-w", "5", "-D", parent, "-j", chain]);
      }
    }
    await this.must([this.tables(f), "-w", "5", "-F", chain]);
    await this.must([this.tables(f), "-w", "5", "-X", chain]);
  }

  private async destroyUnusedSets(gate: ValidGate): Promise<void> {
    const wanted = new Set(buildSetCreateLines(this.names, gate).map((l) => l.split(" ")[1]));
    const forward = new RegExp(`^${this.opts.prefix}-f[46]-\\d+$`);
    for (const name of await this.setNames()) {
      if (forward.test(name) && !wanted.has(name)) await this.exec([this.opts.ipsetPath, "destroy", name]);
    }
  }

  /** The `-A` lines of a chain in the filter table, or undefined when it does not exist. */
  private async chainRules(f: Family, chain: string): Promise<string[] | undefined> {
    const r = await this.exec([this.tables(f), "-w", "5", "-S", chain]);
    if (r.code !== 0) {
      // iptables-nft 1.8.9 calls an absent chain "incompatible": ask the whole table whether it exists.
      const all = await this.must([this.tables(f), "-w", "5", "-S"]);
      if (!all.split("\n").some((l) => l === `-N ${chain}` || l.startsWith(`-P ${chain} `))) return undefined;
      throw this.failure([this.tables(f), "-S", chain], r);
    }
    return r.stdout.split("\n").filter((l) => l.startsWith("-A "));
  }

  private async hasChain(f: Family, chain: string): Promise<boolean> {
    return (await this.chainRules(f, chain)) !== undefined;
  }

  private async setNames(): Promise<string[]> {
    const out = await this.must([this.opts.ipsetPath, "list", "-n"]);
    return out.split("\n").filter((l) => l !== "");
  }

  private ipsetRestore(lines: readonly string[]): Promise<string> {
    return this.must([this.opts.ipsetPath, "-exist", "restore"], `${lines.join("\n")}\n`);
  }

  private tables(f: Family): string {
    return f === 4 ? this.opts.iptablesPath : this.opts.ip6tablesPath;
  }

  private restoreArgv(f: Family): string[] {
    return [`${this.tables(f)}-restore`, "-w", "5", "--noflush"];
  }

  private async must(argv: readonly string[], input?: string): Promise<string> {
    const r = await this.exec(argv, input);
    if (r.code !== 0) throw this.failure(argv, r);
    return r.stdout;
  }

  private failure(argv: readonly string[], r: Result): TknockError {
    if (r.code === 127) return firewallError(`${argv[0] ?? "?"} not found: install it (apt-get install iptables ipset)`);
    const why = r.stderr.trim().replace(/\s+/g, " ") || `exit ${r.code}`;
    return firewallError(`${argv.join(" ").slice(0, 120)} failed: ${why.length > MAX_ERROR_CHARS ? `${why.slice(0, MAX_ERROR_CHARS - 3)}...` : why}`);
  }

  private exec(argv: readonly string[], input?: string): Promise<Result> {
    const [file, ...args] = [...this.opts.commandPrefix, ...argv];
    return new Promise((resolve) => {
      const child = execFile(file as string, args, { timeout: this.opts.commandTimeoutMs, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
        const code = !err ? 0 : (err as NodeJS.ErrnoException).code === "ENOENT" ? 127 : typeof err.code === "number" ? err.code : 1;
        resolve({ code, stdout: String(stdout), stderr: err?.killed === true ? `no answer within ${this.opts.commandTimeoutMs} ms` : String(stderr) });
      });
      child.stdin?.on("error", () => {});
      child.stdin?.end(input ?? "");
    });
  }
}

function firewallError(message: string): TknockError {
  return new TknockError("TKNOCK_FIREWALL", message, ExitCode.system);
}

/** Whether a chain exists in the filter table (our input chain for `status`, DOCKER-USER for gateForward "auto"). */
export async function iptablesHasChain(iptablesPath: string, chain: string): Promise<boolean> {
  return new Promise((resolve, reject) => {
    execFile(iptablesPath, ["-w", "5", "-S"], { timeout: 5000 }, (err, stdout, stderr) => {
      if (!err) return resolve(String(stdout).split("\n").includes(`-N ${chain}`));
      reject(firewallError(`${iptablesPath} -S failed: ${String(stderr).trim() || err.message}`));
    });
  });
}
