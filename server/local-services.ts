/**
 * What this host serves: the sockets listed in /proc/net/{tcp,tcp6,udp,udp6} that accept packets from other
 * hosts. A pure parser of that text, and a thin reader. The daemon and `enroll` run in the host's network
 * namespace (in the lab, inside the server's), and /proc/net always describes the namespace of the reader.
 *
 * Which sockets count:
 * - TCP: state 0A (LISTEN). Connected sockets are answered through the gate's "established" rule anyway.
 * - UDP: unconnected sockets (remote address and port all zero), which take datagrams from anyone. A
 *   connected UDP socket only hears its peer, whose replies conntrack already lets through.
 * - Sockets bound to a loopback address (127.0.0.0/8, ::1, ::ffff:127.0.0.0/104) do not count: no remote
 *   host can reach them, so leaving their port out of the knock-range drop would open it for nothing.
 */
import { readFile } from "node:fs/promises";
import { endianness } from "node:os";
import { join } from "node:path";
import type { KnockProto, ServicePort } from "../src/ports.js";

export type ListeningSocket = {
  readonly proto: KnockProto;
  readonly family: 4 | 6;
  /** The bound address as text ("0.0.0.0", "::", "198.18.0.2", "::ffff:127.0.0.1"). */
  readonly address: string;
  readonly port: number;
  /** Bound to a loopback address: reachable from this host only. */
  readonly loopback: boolean;
};

export type ProcNetTable = { readonly proto: KnockProto; readonly family: 4 | 6 };

/** The four tables, named as their files under /proc/net. */
export const PROC_NET_TABLES: Readonly<Record<"tcp" | "tcp6" | "udp" | "udp6", ProcNetTable>> = {
  tcp: { proto: "tcp", family: 4 },
  tcp6: { proto: "tcp", family: 6 },
  udp: { proto: "udp", family: 4 },
  udp6: { proto: "udp", family: 6 },
};

const TCP_LISTEN = "0A";

export type ParsedProcNet = {
  readonly sockets: ListeningSocket[];
  /** Lines that are neither the header nor a socket line, skipped. */
  readonly malformed: number;
};

/**
 * The listening sockets in the text of one /proc/net table. The kernel prints addresses as the raw bytes of
 * 32-bit words in host byte order (so 127.0.0.1 is 0100007F on x86), ports in plain hex.
 */
export function parseProcNet(text: string, table: ProcNetTable, byteOrder: "LE" | "BE" = endianness()): ParsedProcNet {
  const sockets: ListeningSocket[] = [];
  let malformed = 0;
  const hexLen = table.family === 4 ? 8 : 32;
  for (let start = 0, i = 0; start < text.length; i++) {
    const nl = text.indexOf("\n", start);
    const end = nl < 0 ? text.length : nl;
    const lineStart = start;
    start = end + 1;
    // A busy host lists every connection (100k lines, 15 MB): skip a well-laid-out TCP line that is not
    // listening by looking at its state only, without splitting it.
    if (table.proto === "tcp" && isOtherTcpState(text, lineStart, end, hexLen)) continue;
    const line = text.slice(lineStart, end).trim();
    if (line === "" || (i === 0 && line.startsWith("sl"))) continue;
    const fields = line.split(/\s+/);
    const local = splitEndpoint(fields[1], hexLen);
    const remote = splitEndpoint(fields[2], hexLen);
    const state = fields[3];
    if (!/^\d+:$/.test(fields[0] ?? "") || !local || !remote || state === undefined || !/^[0-9A-F]{2}$/i.test(state)) {
      malformed++;
      continue;
    }
    const listening = table.proto === "tcp" ? state.toUpperCase() === TCP_LISTEN : /^0+$/.test(remote.addrHex) && remote.port === 0;
    if (!listening || local.port === 0) continue;
    const bytes = addressBytes(local.addrHex, byteOrder);
    sockets.push({ proto: table.proto, family: table.family, address: formatAddress(bytes), port: local.port, loopback: isLoopback(bytes) });
  }
  return { sockets, malformed };
}

/** `   0: LOCAL:PORT REMOTE:PORT ST ...` with the separators where they belong and ST other than LISTEN. */
function isOtherTcpState(text: string, from: number, to: number, hexLen: number): boolean {
  const colon = text.indexOf(":", from);
  if (colon < 0 || colon > from + 12) return false;
  const local = colon + 2;
  const remote = local + hexLen + 6;
  const state = remote + hexLen + 6;
  return (
    state + 3 <= to &&
    text.charCodeAt(local - 1) === 32 &&
    text.charCodeAt(local + hexLen) === 58 &&
    text.charCodeAt(remote - 1) === 32 &&
    text.charCodeAt(remote + hexLen) === 58 &&
    text.charCodeAt(state - 1) === 32 &&
    text.charCodeAt(state + 2) === 32 &&
    text.slice(state, state + 2).toUpperCase() !== TCP_LISTEN
  );
}

function splitEndpoint(field: string | undefined, hexLen: number): { addrHex: string; port: number } | undefined {
  if (field === undefined) return undefined;
  const m = /^([0-9A-Fa-f]+):([0-9A-Fa-f]{4})$/.exec(field);
  if (!m || (m[1] as string).length !== hexLen) return undefined;
  return { addrHex: m[1] as string, port: parseInt(m[2] as string, 16) };
}

/** Network-order bytes of an address printed as host-order 32-bit words. */
function addressBytes(hex: string, byteOrder: "LE" | "BE"): number[] {
  const bytes: number[] = [];
  for (let w = 0; w < hex.length; w += 8) {
    const word = [0, 2, 4, 6].map((o) => parseInt(hex.slice(w + o, w + o + 2), 16));
    bytes.push(...(byteOrder === "LE" ? word.reverse() : word));
  }
  return bytes;
}

function isLoopback(b: readonly number[]): boolean {
  if (b.length === 4) return b[0] === 127;
  const zeros = (from: number, to: number): boolean => b.slice(from, to).every((x) => x === 0);
  if (zeros(0, 15) && b[15] === 1) return true; // ::1
  return zeros(0, 10) && b[10] === 0xff && b[11] === 0xff && b[12] === 127; // ::ffff:127.0.0.0/104
}

function formatAddress(b: readonly number[]): string {
  if (b.length === 4) return b.join(".");
  const zeros = (from: number, to: number): boolean => b.slice(from, to).every((x) => x === 0);
  if (zeros(0, 10) && b[10] === 0xff && b[11] === 0xff) return `::ffff:${b.slice(12).join(".")}`;
  const groups = Array.from({ length: 8 }, (_, i) => (((b[2 * i] as number) << 8) | (b[2 * i + 1] as number)).toString(16));
  // Compress the longest run of zero groups (RFC 5952), as inet_ntop does.
  let best = { at: -1, len: 0 };
  for (let i = 0; i < 8;) {
    if (groups[i] !== "0") {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === "0") j++;
    if (j - i > best.len && j - i > 1) best = { at: i, len: j - i };
    i = j;
  }
  if (best.at < 0) return groups.join(":");
  return `${groups.slice(0, best.at).join(":")}::${groups.slice(best.at + best.len).join(":")}`;
}

/** The (proto, port) pairs other hosts can reach: loopback-only sockets left out; sorted, without duplicates. */
export function reachableServices(sockets: readonly ListeningSocket[]): ServicePort[] {
  const keys = new Set<string>();
  const out: ServicePort[] = [];
  for (const s of sockets) {
    if (s.loopback) continue;
    const key = `${s.proto}/${s.port}`;
    if (keys.has(key)) continue;
    keys.add(key);
    out.push({ proto: s.proto, port: s.port });
  }
  return out.sort(compareServices);
}

export function compareServices(a: ServicePort, b: ServicePort): number {
  return a.proto === b.proto ? a.port - b.port : a.proto < b.proto ? -1 : 1;
}

/**
 * Reads the four tables under procNetDir. A missing table (IPv6 disabled, no UDP in a minimal kernel) is
 * empty; any other read error is thrown (the caller decides whether to keep what it knew). Asynchronous on
 * purpose: the kernel walks its whole TCP hash table to print /proc/net/tcp (about 10 ms each for tcp and tcp6
 * on the machine this was written on, with 4 sockets), which must not stall the daemon's packet loop.
 */
export async function readListeningSockets(procNetDir = "/proc/net"): Promise<ParsedProcNet> {
  const sockets: ListeningSocket[] = [];
  let malformed = 0;
  const texts = await Promise.all(
    Object.keys(PROC_NET_TABLES).map((file) =>
      readFile(join(procNetDir, file), "latin1").catch((err: NodeJS.ErrnoException) => {
        if (err.code === "ENOENT") return "";
        throw err;
      }),
    ),
  );
  Object.values(PROC_NET_TABLES).forEach((table, i) => {
    const parsed = parseProcNet(texts[i] as string, table);
    sockets.push(...parsed.sockets);
    malformed += parsed.malformed;
  });
  return { sockets, malformed };
}
