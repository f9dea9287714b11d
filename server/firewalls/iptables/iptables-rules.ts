/**
 * Pure builders for the iptables backend: the iptables-restore input that fills tknock's own chains, the ipset
 * lines that create sets and add grants, and the parser of `ipset save`. Every value is validated (validate.ts)
 * first, and each becomes one argv element or one token of a line, never shell text.
 *
 * The same gate as the nftables backend (ruleset.ts), rule for rule: local traffic and established connections
 * pass, a granted source+port passes, the protected ports are dropped, local services in the knock range pass,
 * the knock range is logged (LOG or NFLOG, for the log and nflog listeners) and dropped. "Pass" is RETURN, not
 * ACCEPT: like the nftables table's accept, it leaves the verdict to the host's own rules after our chain.
 */
import type { Grant, KnockProto, WatchPorts } from "../../../src/ports.js";
import { isPort } from "../../../src/port-number.js";
import { canonicalAddress, invalidGate, knockSpan, validateGrants, validateWatch, type ValidGate, type ValidGrant } from "../validate.js";
import { KNOCK_LOG_BURST, KNOCK_LOG_PREFIX, KNOCK_LOG_RATE } from "../nftables/ruleset.js";

export type Family = 4 | 6;
export const FAMILIES: readonly Family[] = [4, 6];
const PROTOS: readonly KnockProto[] = ["tcp", "udp"];
/** iptables' multiport takes at most 15 ports. */
const MULTIPORT_MAX = 15;

export type IptablesNames = {
  readonly inputChain: string;
  readonly forwardChain: string;
  readonly grantSet: (family: Family) => string;
  readonly watchSet: string;
  /** Forwarded traffic: the grants of one protected port, by source only (the packet's port is the DNAT'ed one). */
  readonly forwardSet: (family: Family, port: number) => string;
  /** Every set name this prefix owns starts with this. */
  readonly setPrefix: string;
};

export function validatePrefix(prefix: string): string {
  if (typeof prefix !== "string" || !/^[a-z][a-z0-9_]{0,15}$/.test(prefix)) {
    throw invalidGate(`iptables prefix ${JSON.stringify(String(prefix).slice(0, 40))} is not allowed: use lowercase letters, digits and _ (up to 16)`);
  }
  return prefix;
}

export function inputChainName(prefix: string): string {
  return `${validatePrefix(prefix)}-in`;
}

export function iptablesNames(prefix: string): IptablesNames {
  const p = validatePrefix(prefix);
  return {
    inputChain: `${p}-in`,
    forwardChain: `${p}-fwd`,
    grantSet: (f) => `${p}-g${f}`,
    watchSet: `${p}-watch`,
    forwardSet: (f, port) => `${p}-f${f}-${port}`,
    setPrefix: `${p}-`,
  };
}

function portList(ports: readonly number[]): string[] {
  const chunks: string[] = [];
  for (let i = 0; i < ports.length; i += MULTIPORT_MAX) chunks.push(ports.slice(i, i + MULTIPORT_MAX).join(","));
  return chunks;
}

const range = (r: { min: number; max: number }): string => (r.min === r.max ? `${r.min}` : `${r.min}:${r.max}`);

/** The rules of the input chain for one family, as iptables-restore lines (`-A CHAIN ...`). */
export function inputRules(names: IptablesNames, family: Family, gate: ValidGate): string[] {
  const c = `-A ${names.inputChain}`;
  const rules = [`${c} -i lo -j RETURN`, `${c} -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN`];
  for (const proto of PROTOS) {
    for (const ports of portList(gate.protectedPorts)) {
      rules.push(`${c} -p ${proto} -m multiport --dports ${ports} -m set --match-set ${names.grantSet(family)} src,dst -j RETURN`);
      rules.push(`${c} -p ${proto} -m multiport --dports ${ports} -j DROP`);
    }
  }
  for (const s of gate.exemptServices) rules.push(`${c} -p ${s.proto} --dport ${s.port} -j RETURN`);
  // A service the daemon has not listed yet: the kernel finds the socket that would receive the packet
  // (--nowildcard: sockets bound to any address count too).
  const span = knockSpan(gate);
  if (span) for (const proto of PROTOS) rules.push(`${c} -p ${proto} --dport ${range(span)} -m socket --nowildcard -j RETURN`);
  for (const proto of PROTOS) {
    if (gate.logKnocks) {
      rules.push(
        `${c} -p ${proto} --dport ${range(gate.logKnocks)} -m limit --limit ${KNOCK_LOG_RATE}/sec --limit-burst ${KNOCK_LOG_BURST} -j LOG --log-prefix "${KNOCK_LOG_PREFIX}"`,
      );
    }
    if (gate.nflogKnocks) {
      const watched = gate.nflogKnocks.watchOnly === true ? ` -m set --match-set ${names.watchSet} dst` : "";
      rules.push(
        `${c} -p ${proto} --dport ${range(gate.nflogKnocks)}${watched} -j NFLOG --nflog-group ${gate.nflogKnocks.group} --nflog-size 128 --nflog-threshold 1`,
      );
    }
    if (gate.knockRange) rules.push(`${c} -p ${proto} --dport ${range(gate.knockRange)} -j DROP`);
  }
  return rules;
}

/** The forward chain's rules: connections DNAT'ed from a protected port need a grant for that port. */
export function forwardRules(names: IptablesNames, family: Family, gate: ValidGate): string[] {
  const c = `-A ${names.forwardChain}`;
  const rules = [`${c} -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN`];
  for (const port of gate.protectedPorts) {
    for (const proto of PROTOS) {
      const match = `-m conntrack --ctstate DNAT --ctproto ${proto} --ctorigdstport ${port}`;
      rules.push(`${c} ${match} -m set --match-set ${names.forwardSet(family, port)} src -j RETURN`);
      rules.push(`${c} ${match} -j DROP`);
    }
  }
  return rules;
}

/**
 * iptables-restore --noflush input that (re)fills our chains in one transaction per family: declaring a chain
 * creates it or flushes it, so no packet sees a half-built chain.
 */
export function buildRestoreInput(names: IptablesNames, family: Family, gate: ValidGate): string {
  const lines = ["*filter", `:${names.inputChain} - [0:0]`];
  if (gate.gateForward) lines.push(`:${names.forwardChain} - [0:0]`);
  lines.push(...inputRules(names, family, gate));
  if (gate.gateForward) lines.push(...forwardRules(names, family, gate));
  lines.push("COMMIT", "");
  return lines.join("\n");
}

/** `ipset restore -exist` lines that create the sets the gate uses (existing sets and their grants stay). */
export function buildSetCreateLines(names: IptablesNames, gate: ValidGate): string[] {
  const lines: string[] = [];
  for (const f of FAMILIES) {
    const family = f === 4 ? "inet" : "inet6";
    lines.push(`create ${names.grantSet(f)} hash:ip,port family ${family} timeout 0 comment`);
    if (gate.gateForward) for (const port of gate.protectedPorts) lines.push(`create ${names.forwardSet(f, port)} hash:ip family ${family} timeout 0`);
  }
  if (gate.nflogKnocks?.watchOnly === true) lines.push(`create ${names.watchSet} bitmap:port range 1-65535`);
  return lines;
}

/**
 * Replaces the watch set's ports (`ipset restore`, one transaction). This backend keeps one set and logs its ports
 * from every source: unlike the nftables gate it does not tell first ports apart (no active-source sets), so a
 * flood reaches user space at every watched port, later ports and tripwires included.
 */
export function buildWatchLines(names: IptablesNames, watch: WatchPorts): string[] {
  const { starts, others } = validateWatch(watch);
  return [`flush ${names.watchSet}`, ...[...starts, ...others].sort((a, b) => a - b).map((p) => `add ${names.watchSet} ${p}`)];
}

/**
 * `ipset restore -exist` lines that grant or re-grant (`-exist` makes add restart an element's timeout). A grant
 * is one element per protocol, the comment keeps its full time for list(); with `forwardPorts`, the source also
 * goes into the forward set of each port granted that is protected.
 */
export function buildGrantLines(names: IptablesNames, grants: readonly Grant[], forwardPorts: readonly number[]): string[] {
  const lines: string[] = [];
  for (const g of validateGrants(grants)) {
    for (const proto of PROTOS) lines.push(`add ${names.grantSet(g.family)} ${g.src},${proto}:${g.port} timeout ${g.openSeconds} comment "${comment(g)}"`);
    if (forwardPorts.includes(g.port)) lines.push(`add ${names.forwardSet(g.family, g.port)} ${g.src} timeout ${g.openSeconds}`);
  }
  return lines;
}

function comment(g: ValidGrant): string {
  return g.client === undefined ? `${g.openSeconds}` : `${g.openSeconds} ${g.client}`;
}

/**
 * The grants in `ipset save SET` output: `add tknock-g4 198.18.0.2,tcp:22 timeout 27 comment "30 alice"`. The tcp
 * and udp elements of one grant are one grant; anything else is skipped (the sets are ours).
 */
export function parseGrantSave(text: string): Grant[] {
  const byKey = new Map<string, Grant>();
  for (const line of text.split("\n")) {
    const m = /^add \S+ ([0-9a-fA-F.:]+),(?:tcp|udp):(\d+) timeout (\d+)(?: comment "(\d+)(?: ([A-Za-z0-9._-]+))?")?/.exec(line.trim());
    if (!m) continue;
    const addr = canonicalAddress(m[1]);
    const port = Number(m[2]);
    if (!addr || !isPort(port)) continue;
    const left = Number(m[3]);
    const grant: Grant = {
      src: addr.address,
      port,
      openSeconds: m[4] !== undefined ? Number(m[4]) : left,
      ...(m[5] !== undefined ? { client: m[5] } : {}),
      expiresInSeconds: left,
    };
    const k = `${grant.src}|${port}`;
    const seen = byKey.get(k);
    if (!seen || (seen.expiresInSeconds ?? 0) < left) byKey.set(k, grant);
  }
  return [...byKey.values()];
}
