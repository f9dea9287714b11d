/**
 * The log-only backend, for trying tknock on a live host: knocks are matched and every grant is logged as if it
 * opened, but nothing is installed, opened or closed. Its grants live in this process only (the guard and the
 * contract suite see them expire); `status` in another process shows none. It says at every start, at error
 * level, that nothing is protected, and `status` reports it as a problem.
 */
import { ExitCode, TknockError } from "../../../src/errors.js";
import { systemClock, type Clock, type Firewall, type GateProblem, type GateSpec, type Grant } from "../../../src/ports.js";
import { validateGate, validateGrants } from "../validate.js";
import type { CommandLog } from "../command/command-firewall.js";

export const NOTHING_PROTECTED =
  'firewall "none": NOTHING IS PROTECTED, knocks are only logged; set "firewall" in server.json to nftables, iptables or command';

type Entry = { readonly src: string; readonly port: number; readonly openSeconds: number; readonly client?: string; readonly expiresAtMs: number };

export class NoneFirewall implements Firewall {
  readonly name = "none";
  private installed = false;
  private readonly grants = new Map<string, Entry>();

  constructor(
    private readonly clock: Clock = systemClock,
    private readonly log?: CommandLog,
  ) {}

  async install(gate: GateSpec): Promise<void> {
    const valid = validateGate(gate);
    if (!this.installed) this.log?.error({ protect: valid.protectedPorts }, NOTHING_PROTECTED);
    this.installed = true;
  }

  async check(gate: GateSpec): Promise<GateProblem | undefined> {
    validateGate(gate);
    return undefined;
  }

  async open(grants: readonly Grant[]): Promise<void> {
    const valid = validateGrants(grants);
    if (!this.installed) throw new TknockError("TKNOCK_FIREWALL", "the none firewall is not installed: install() first", ExitCode.system);
    const nowMs = this.clock.nowMs();
    for (const g of valid) {
      this.grants.set(`${g.src}|${g.port}`, { ...g, expiresAtMs: nowMs + g.openSeconds * 1000 });
      this.log?.warn({ src: g.src, port: g.port, client: g.client, openSeconds: g.openSeconds }, 'would open (firewall "none": nothing was opened)');
    }
  }

  async list(): Promise<Grant[]> {
    const nowMs = this.clock.nowMs();
    const out: Grant[] = [];
    for (const [k, e] of this.grants) {
      if (e.expiresAtMs <= nowMs) this.grants.delete(k);
      else out.push({ src: e.src, port: e.port, openSeconds: e.openSeconds, expiresInSeconds: Math.floor((e.expiresAtMs - nowMs) / 1000) });
    }
    return out;
  }

  async remove(): Promise<void> {
    this.installed = false;
    this.grants.clear();
  }

  async close(): Promise<void> {}
}
