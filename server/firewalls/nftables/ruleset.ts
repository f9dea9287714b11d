/**
 * Pure builders of the nft text and argv the nftables adapter runs, and the parser of what it reads back. Every
 * value is validated (validate.ts) before it is written into a command: nothing unchecked ever reaches nft.
 */
import { TknockError, ExitCode } from "../../../src/errors.js";
import { isPort } from "../../../src/port-number.js";
import { canonicalAddress, knockSpan, validateGate, validateGrants, validateTableName, validateWatch, type ValidGrant } from "../validate.js";
import { ACTIVE_SECONDS_DEFAULT, ACTIVE_SET_SIZE_DEFAULT, type GateSpec, type Grant, type NflogKnocks, type WatchPorts } from "../../../src/ports.js";

export const NFT_FAMILY = "inet";
export const SET_PROTECTED = "protected";
export const SET_GRANTS4 = "grants4";
export const SET_GRANTS6 = "grants6";
export const SET_SERVICES = "services";
/**
 * The prefilter's ports (nflogKnocks.watchOnly), replaced every window by setWatch and never compared by the
 * guard: the sequences' first ports, and the others (later sequence ports and tripwires).
 */
export const SET_STARTS = "starts";
/**
 * The first ports whose packets are logged at once (SPA ports, and first ports that are also a later port of a
 * watched sequence); the rest of `starts` is logged in batches.
 */
export const SET_INSTANT = "instant";
export const SET_WATCH = "watch";
/** Sources that sent to a first port lately (the kernel adds them; each watched packet renews its timeout). */
export const SET_ACTIVE4 = "active4";
export const SET_ACTIVE6 = "active6";
/** The protocols for which an active set was full: their watched ports are then logged for every source. */
export const SET_OVERFLOW = "overflow";
/**
 * The prefilter's batched first-port messages: the kernel sends its queue when it holds this many (or its buffer,
 * about 15 such messages, is full, or 1 s has passed, or a message logged at once follows). The listener's tcpdump
 * reads with a buffer that holds a whole batch (nflog snaplen in the pcap listener).
 */
export const START_QUEUE_THRESHOLD = 64;
/** Always empty: the guard's heartbeat adds and deletes one element in one transaction, which `nft monitor` reports. */
export const SET_HEARTBEAT = "heartbeat";
/** Sets whose elements change without the daemon (the packet path) or every window (setWatch). */
export const PREFILTER_SETS = [SET_STARTS, SET_INSTANT, SET_WATCH, SET_ACTIVE4, SET_ACTIVE6, SET_OVERFLOW] as const;
export const CHAIN_INPUT = "input";
export const CHAIN_FORWARD = "forward";

/**
 * The log listener's rule: the kernel logs knock-range packets with our prefix (the listener reads only those lines).
 * The limit keeps a flood from filling the kernel log (and the disk behind journald): beyond
 * KNOCK_LOG_RATE per second, after a burst of KNOCK_LOG_BURST, packets are dropped unlogged, so knocks sent
 * during such a flood are not seen and the client knocks again after it. A knock is 3-8 packets: 200/s leaves
 * room for dozens of clients knocking in the same second.
 */
export const KNOCK_LOG_RATE = 200;
export const KNOCK_LOG_BURST = 400;
export const KNOCK_LOG_PREFIX = "tknock: ";
const KNOCK_LOG_STATEMENT = `limit rate ${KNOCK_LOG_RATE}/second burst ${KNOCK_LOG_BURST} packets log prefix "${KNOCK_LOG_PREFIX}"`;

/** Matches a packet that a local socket would receive (any socket: transparent or not). */
export const SOCKET_FOUND = "socket transparent { 0, 1 }";

/** Grants per command line: a line is one transaction; huge set literals are split. */
export const MAX_GRANTS_PER_LINE = 256;

/**
 * The whole gate, for one `nft -f -` transaction. Idempotent: `add` leaves existing objects (and the grants in
 * the grant sets) alone; the port set and the chain's rules are flushed and rebuilt in the same transaction, so
 * no packet ever sees a half-built gate.
 */
export function buildInstallScript(tableName: string, gateSpec: GateSpec): string {
  const t = `${NFT_FAMILY} ${validateTableName(tableName)}`;
  const gate = validateGate(gateSpec);
  const l4 = "meta l4proto { tcp, udp }";
  const lines = [
    `add table ${t}`,
    `add set ${t} ${SET_PROTECTED} { type inet_service; }`,
    `add set ${t} ${SET_GRANTS4} { type ipv4_addr . inet_service; flags timeout; }`,
    `add set ${t} ${SET_GRANTS6} { type ipv6_addr . inet_service; flags timeout; }`,
    `add set ${t} ${SET_SERVICES} { type inet_proto . inet_service; }`,
    `add set ${t} ${SET_HEARTBEAT} { type inet_service; }`,
    // Not flushed here: its ports are the daemon's (setWatch), put back after every install.
    ...(gate.nflogKnocks?.watchOnly === true ? prefilterSets(t, gate.nflogKnocks) : []),
    // Before the usual filter (priority 0). Our drop is final in every base chain; our accept is not, so
    // whatever else the host runs still applies to granted traffic.
    `add chain ${t} ${CHAIN_INPUT} { type filter hook input priority filter - 10; policy accept; }`,
    `flush set ${t} ${SET_PROTECTED}`,
  ];
  if (gate.protectedPorts.length > 0) lines.push(`add element ${t} ${SET_PROTECTED} { ${gate.protectedPorts.join(", ")} }`);
  lines.push(`flush set ${t} ${SET_SERVICES}`);
  if (gate.exemptServices.length > 0) {
    lines.push(`add element ${t} ${SET_SERVICES} { ${gate.exemptServices.map((s) => `${s.proto} . ${s.port}`).join(", ")} }`);
  }
  lines.push(
    `flush chain ${t} ${CHAIN_INPUT}`,
    // Local processes (health checks, a proxy on this host) keep their access; remote packets never arrive on lo.
    `add rule ${t} ${CHAIN_INPUT} iif "lo" accept`,
    // A connection opened during a grant outlives it.
    `add rule ${t} ${CHAIN_INPUT} ct state established,related accept`,
    `add rule ${t} ${CHAIN_INPUT} ${l4} th dport @${SET_PROTECTED} ip saddr . th dport @${SET_GRANTS4} accept`,
    `add rule ${t} ${CHAIN_INPUT} ${l4} th dport @${SET_PROTECTED} ip6 saddr . th dport @${SET_GRANTS6} accept`,
    // Drop, not reject: a scan sees "filtered", the same as for any unused port behind a firewall.
    `add rule ${t} ${CHAIN_INPUT} ${l4} th dport @${SET_PROTECTED} drop`,
    // A local service in the knock range: we do not decide (return, not accept), so the host's own rules still
    // apply to it, as they would without tknock. After the protected drop, so a protected port stays gated.
    `add rule ${t} ${CHAIN_INPUT} meta l4proto . th dport @${SET_SERVICES} return`,
  );
  const ports = ({ min, max }: { min: number; max: number }): string => (min === max ? `${min}` : `${min}-${max}`);
  // The same for a service the daemon has not listed yet: the kernel looks the packet's socket up (a TCP
  // listener, a UDP socket bound to the port, or the connection it belongs to) and, when one would receive it,
  // we do not decide. The services set above is what the daemon's poll saw; this rule needs no poll.
  const span = knockSpan(gate);
  if (span) lines.push(`add rule ${t} ${CHAIN_INPUT} ${l4} th dport ${ports(span)} ${SOCKET_FOUND} return`);
  // After the protected ports and the exempted services (neither is a knock), before the drop that ends the packet.
  if (gate.logKnocks) lines.push(`add rule ${t} ${CHAIN_INPUT} ${l4} th dport ${ports(gate.logKnocks)} ${KNOCK_LOG_STATEMENT}`);
  // snaplen 128: the packet's first 128 bytes hold every header a knock needs (as the pcap listener's snaplen).
  // queue-threshold 1: the kernel sends the message at once. Without it the kernel batches the group's messages
  // (up to 100 packets, its buffer, or 1 s), which would hold a knock back for up to a second.
  const n = gate.nflogKnocks;
  if (n) {
    const logTo = `log group ${n.group} snaplen 128 queue-threshold 1`;
    if (n.watchOnly !== true) {
      lines.push(`add rule ${t} ${CHAIN_INPUT} ${l4} th dport ${ports(n)} ${logTo}`);
    } else {
      // The prefilter: only the watched ports of the range cross into user space; the drop below still takes them
      // all. A packet to a first port is logged and makes its source active. A packet to another watched port (a
      // later port of a sequence, a tripwire) is logged only from an active source, the only kind that can have
      // progress to continue or reset, and renews it; so a flood from random sources reaches user space only at
      // the first ports. When an active set is full the update fails and ends its rule; the next rule then marks
      // the protocol as overflowing, and the other watched ports are logged for every source again (fail closed).
      // A port that is nothing but a first port is never a last knock, so its messages may wait in the kernel's
      // queue: they go up with the next message logged at once (the same source's second knock, in order, in the
      // same batch), when the queue holds START_QUEUE_THRESHOLD or fills the kernel's buffer, or after the kernel's
      // 1 s flush timer. Under a flood the daemon then wakes once per batch, not once per first-port packet. The
      // `instant` ports cannot wait: SPA ports (one datagram is the whole knock) and first ports that are also a
      // later port of some watched sequence (a possible last knock).
      // Without the knock-range drop, "return" ends our chain without deciding, as the drop's absence would.
      const done = gate.knockRange ? "drop" : "return";
      const starts = `${l4} th dport @${SET_STARTS}`;
      const watch = `${l4} th dport @${SET_WATCH}`;
      lines.push(
        `add rule ${t} ${CHAIN_INPUT} ${starts} th dport != @${SET_INSTANT} log group ${n.group} snaplen 128 queue-threshold ${START_QUEUE_THRESHOLD}`,
        `add rule ${t} ${CHAIN_INPUT} ${l4} th dport @${SET_INSTANT} ${logTo}`,
        `add rule ${t} ${CHAIN_INPUT} meta nfproto ipv4 ${starts} update @${SET_ACTIVE4} { ip saddr } ${done}`,
        `add rule ${t} ${CHAIN_INPUT} meta nfproto ipv6 ${starts} update @${SET_ACTIVE6} { ip6 saddr } ${done}`,
        `add rule ${t} ${CHAIN_INPUT} ${starts} update @${SET_OVERFLOW} { meta l4proto }`,
        `add rule ${t} ${CHAIN_INPUT} ${watch} ip saddr @${SET_ACTIVE4} update @${SET_ACTIVE4} { ip saddr } ${logTo} ${done}`,
        `add rule ${t} ${CHAIN_INPUT} ${watch} ip6 saddr @${SET_ACTIVE6} update @${SET_ACTIVE6} { ip6 saddr } ${logTo} ${done}`,
        `add rule ${t} ${CHAIN_INPUT} ${watch} meta l4proto @${SET_OVERFLOW} ${logTo}`,
      );
    }
  }
  if (gate.knockRange) lines.push(`add rule ${t} ${CHAIN_INPUT} ${l4} th dport ${ports(gate.knockRange)} drop`);
  lines.push(...forwardLines(t, gate.gateForward));
  return `${lines.join("\n")}\n`;
}

/**
 * The forward gate (gateForward): a connection DNAT'ed to another host or a container (`docker run -p 8080:80`)
 * never reaches the input hook, so it is gated here by the port it was sent to before the DNAT. Only DNAT'ed
 * connections: traffic this host merely routes is not ours to gate. Off: the chain is removed if an earlier
 * install added it (nft 1.0.6 has no "destroy", so it is added, flushed and deleted in the same transaction).
 */
function forwardLines(t: string, on: boolean): string[] {
  const chain = `add chain ${t} ${CHAIN_FORWARD} { type filter hook forward priority filter - 10; policy accept; }`;
  if (!on) return [chain, `flush chain ${t} ${CHAIN_FORWARD}`, `delete chain ${t} ${CHAIN_FORWARD}`];
  const dnat = `ct status dnat meta l4proto { tcp, udp } ct original proto-dst @${SET_PROTECTED}`;
  return [
    chain,
    `flush chain ${t} ${CHAIN_FORWARD}`,
    `add rule ${t} ${CHAIN_FORWARD} ct state established,related accept`,
    `add rule ${t} ${CHAIN_FORWARD} ${dnat} ip saddr . ct original proto-dst @${SET_GRANTS4} accept`,
    `add rule ${t} ${CHAIN_FORWARD} ${dnat} ip6 saddr . ct original proto-dst @${SET_GRANTS6} accept`,
    `add rule ${t} ${CHAIN_FORWARD} ${dnat} drop`,
  ];
}

function prefilterSets(t: string, n: NflogKnocks): string[] {
  const activeSeconds = n.activeSeconds ?? ACTIVE_SECONDS_DEFAULT;
  const active = `flags dynamic,timeout; timeout ${activeSeconds}s; size ${n.activeSetSize ?? ACTIVE_SET_SIZE_DEFAULT};`;
  return [
    `add set ${t} ${SET_STARTS} { type inet_service; }`,
    `add set ${t} ${SET_INSTANT} { type inet_service; }`,
    `add set ${t} ${SET_WATCH} { type inet_service; }`,
    `add set ${t} ${SET_ACTIVE4} { type ipv4_addr; ${active} }`,
    `add set ${t} ${SET_ACTIVE6} { type ipv6_addr; ${active} }`,
    `add set ${t} ${SET_OVERFLOW} { type inet_proto; flags dynamic,timeout; timeout ${activeSeconds}s; size 4; }`,
  ];
}

/** One heartbeat (for `nft -i`): a change that changes nothing, which `nft monitor` reports as two lines. */
export function buildHeartbeatLine(tableName: string, beat: number): string {
  const t = `${NFT_FAMILY} ${validateTableName(tableName)}`;
  if (!isPort(beat)) throw new Error("internal: a heartbeat must be 1..65535");
  return `add element ${t} ${SET_HEARTBEAT} { ${beat} }; delete element ${t} ${SET_HEARTBEAT} { ${beat} }`;
}

/** Replaces the watched ports (first ports and the others) in one transaction (for `nft -f -`). */
export function buildWatchScript(tableName: string, watch: WatchPorts): string {
  const t = `${NFT_FAMILY} ${validateTableName(tableName)}`;
  const valid = validateWatch(watch);
  const lines: string[] = [];
  for (const [set, list] of [
    [SET_STARTS, valid.starts],
    [SET_INSTANT, valid.instant],
    [SET_WATCH, valid.others],
  ] as const) {
    lines.push(`flush set ${t} ${set}`);
    if (list.length > 0) lines.push(`add element ${t} ${set} { ${list.join(", ")} }`);
  }
  return `${lines.join("\n")}\n`;
}

/**
 * Command lines (for `nft -i`, one transaction each) that grant or re-grant. `add element` leaves an existing
 * element's timeout as it is, so the element is added (in case it is absent or just expired, since deleting an
 * absent element fails), deleted, and added again with the new timeout: the grant's timeout restarts.
 */
export function buildOpenLines(tableName: string, grants: readonly Grant[]): string[] {
  const t = `${NFT_FAMILY} ${validateTableName(tableName)}`;
  const valid = validateGrants(grants);
  const lines: string[] = [];
  for (let i = 0; i < valid.length; i += MAX_GRANTS_PER_LINE) {
    const chunk = valid.slice(i, i + MAX_GRANTS_PER_LINE);
    const commands: string[] = [];
    for (const [set, family] of [
      [SET_GRANTS4, 4],
      [SET_GRANTS6, 6],
    ] as const) {
      const of = chunk.filter((g) => g.family === family);
      if (of.length === 0) continue;
      const timed = of.map(timedElement).join(", ");
      const keys = of.map(elementKey).join(", ");
      commands.push(`add element ${t} ${set} { ${timed} }`, `delete element ${t} ${set} { ${keys} }`, `add element ${t} ${set} { ${timed} }`);
    }
    lines.push(commands.join("; "));
  }
  return lines;
}

function elementKey(g: ValidGrant): string {
  return `${g.src} . ${g.port}`;
}

function timedElement(g: ValidGrant): string {
  return `${elementKey(g)} timeout ${g.openSeconds}s`;
}

/** Removes our table and nothing else; `add` first so removing an absent gate is not an error. */
export function buildRemoveScript(tableName: string): string {
  const t = `${NFT_FAMILY} ${validateTableName(tableName)}`;
  return `add table ${t}\ndelete table ${t}\n`;
}

/** The argv that lists our table (sets with their elements) as JSON. */
export function buildListArgs(tableName: string): string[] {
  return ["-j", "list", "table", NFT_FAMILY, validateTableName(tableName)];
}

/** Command prefix + arguments, split for spawn/execFile (never a shell string). */
export function nftArgv(nftCommand: readonly string[], args: readonly string[]): { file: string; args: string[] } {
  const [file, ...prefix] = nftCommand;
  if (file === undefined || file === "") throw new TknockError("TKNOCK_FIREWALL", "nft command is empty", ExitCode.system);
  return { file, args: [...prefix, ...args] };
}

type NftElem = { val?: unknown; timeout?: unknown; expires?: unknown; concat?: unknown };

/**
 * The grants in the output of `nft -j list table ...`. Elements look like
 * `{"elem":{"val":{"concat":["198.18.0.2",22]},"timeout":30,"expires":28}}`, or a bare `{"concat":[...]}` for an
 * element without timeout. Anything else is skipped: the table is ours, so a surprise is not worth a crash.
 */
export function parseGrantsJson(json: string, tableName: string): Grant[] {
  const doc = JSON.parse(json) as { nftables?: unknown };
  if (!Array.isArray(doc.nftables)) throw new TknockError("TKNOCK_FIREWALL", "nft -j output has no nftables array", ExitCode.system);
  const grants: Grant[] = [];
  for (const item of doc.nftables as unknown[]) {
    const set = (item as { set?: { name?: unknown; table?: unknown; elem?: unknown } } | null)?.set;
    if (!set || set.table !== tableName || (set.name !== SET_GRANTS4 && set.name !== SET_GRANTS6)) continue;
    if (!Array.isArray(set.elem)) continue;
    for (const raw of set.elem as unknown[]) {
      const grant = parseElement(raw);
      if (grant) grants.push(grant);
    }
  }
  return grants;
}

function parseElement(raw: unknown): Grant | undefined {
  if (typeof raw !== "object" || raw === null) return undefined;
  const wrapped = (raw as { elem?: NftElem }).elem;
  const elem: NftElem = wrapped ?? raw;
  const concat = wrapped ? (elem.val as NftElem | undefined)?.concat : elem.concat;
  if (!Array.isArray(concat) || concat.length !== 2) return undefined;
  const [addr, port] = concat as [unknown, unknown];
  const canonical = canonicalAddress(addr);
  if (!canonical || !isPort(port)) return undefined;
  const timeout = typeof elem.timeout === "number" ? elem.timeout : 0;
  const base = { src: canonical.address, port, openSeconds: timeout };
  return typeof elem.expires === "number" ? { ...base, expiresInSeconds: elem.expires } : base;
}
