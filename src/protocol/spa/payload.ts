/**
 * The encrypted part of an SPA v1 packet (docs/protocol.md "SPA v1", payload): what to open and for whom.
 * Decoding is strict (exact length, reserved bits zero, no repeated port) and never throws.
 */
import { isIP } from "node:net";

export const SPA_FLAG_NAT = 0x01;
/**
 * Ports one packet may name (more: send none, which means all of the client's). It bounds the packet to 80 bytes,
 * so a whole IPv6 SPA datagram (40 + 8 + 80) fits in the 128 bytes the gate's NFLOG rule copies.
 */
export const MAX_SPA_PORTS = 6;
export const MIN_SPA_PAYLOAD_BYTES = 3; // flags, family 0 (nat), no port
export const MAX_SPA_PAYLOAD_BYTES = 1 + 1 + 16 + 1 + 2 * MAX_SPA_PORTS;

export type SpaPayload = {
  /** Ports to open, a subset of the client's; empty: all of them. */
  readonly ports: readonly number[];
  /**
   * The address to open (IPv4 dotted quad or IPv6 as inet_ntop prints it); absent exactly when nat is set: then
   * the server opens the packet's source address as it arrives.
   */
  readonly address?: string;
  readonly nat: boolean;
};

export type SpaPayloadRefusal = { readonly ok: false; readonly why: string };

function ipv4Bytes(a: string): Buffer | undefined {
  const parts = a.split(".");
  if (parts.length !== 4 || isIP(a) !== 4) return undefined;
  return Buffer.from(parts.map(Number));
}

/** RFC 4291 text to 16 bytes (IPv4-embedded forms included); undefined if not IPv6. */
function ipv6Bytes(a: string): Buffer | undefined {
  if (isIP(a) !== 6) return undefined;
  let text = a;
  let tail: number[] = [];
  const lastColon = text.lastIndexOf(":");
  if (text.includes(".", lastColon)) {
    const v4 = ipv4Bytes(text.slice(lastColon + 1));
    if (v4 === undefined) return undefined;
    tail = [(v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!];
    text = `${text.slice(0, lastColon + 1)}0:0`;
  }
  const [head = "", rest] = text.split("::");
  const words = (s: string): number[] => (s === "" ? [] : s.split(":").map((w) => parseInt(w, 16)));
  const h = words(head);
  const r = rest === undefined ? [] : words(rest);
  const all = rest === undefined ? h : [...h, ...new Array<number>(8 - h.length - r.length).fill(0), ...r];
  if (tail.length > 0) all.splice(6, 2, ...tail);
  const out = Buffer.alloc(16);
  all.forEach((w, i) => out.writeUInt16BE(w, i * 2));
  return out;
}

/** 16 bytes to RFC 5952 text (what inet_ntop and the listeners print). */
export function formatIpv6(b: Uint8Array): string {
  const w: number[] = [];
  for (let i = 0; i < 8; i++) w.push((b[2 * i]! << 8) | b[2 * i + 1]!);
  // RFC 5952 §4.2.3: the longest run of two or more zero words becomes "::", the first one on a tie.
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (w[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && w[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (xs: number[]): string => xs.map((x) => x.toString(16)).join(":");
  if (bestStart < 0) return hex(w);
  return `${hex(w.slice(0, bestStart))}::${hex(w.slice(bestStart + bestLen))}`;
}

/** The address as the family byte and its bytes; undefined when it is neither IPv4 nor IPv6 text. */
export function addressBytes(address: string): { family: 4 | 6; bytes: Buffer } | undefined {
  const v4 = ipv4Bytes(address);
  if (v4 !== undefined) return { family: 4, bytes: v4 };
  const v6 = ipv6Bytes(address);
  return v6 === undefined ? undefined : { family: 6, bytes: v6 };
}

/**
 * flags (1) || family (1: 0, 4 or 6) || address (0, 4 or 16) || count (1) || ports (2 each, big-endian).
 * Throws RangeError on a payload no reader would accept (the client's bug, never network input).
 */
export function encodeSpaPayload(p: SpaPayload): Buffer {
  if (p.ports.length > MAX_SPA_PORTS) throw new RangeError(`at most ${MAX_SPA_PORTS} ports fit in an SPA packet`);
  if (new Set(p.ports).size !== p.ports.length || !p.ports.every((x) => Number.isInteger(x) && x >= 1 && x <= 65535)) {
    throw new RangeError("SPA ports must be distinct port numbers 1..65535");
  }
  let family = 0;
  let addr: Buffer = Buffer.alloc(0);
  if (p.nat) {
    if (p.address !== undefined) throw new RangeError("an SPA packet with nat carries no address");
  } else {
    const a = p.address === undefined ? undefined : addressBytes(p.address);
    if (a === undefined) throw new RangeError("an SPA packet without nat needs an IPv4 or IPv6 address");
    family = a.family;
    addr = a.bytes;
  }
  const out = Buffer.alloc(2 + addr.length + 1 + 2 * p.ports.length);
  out[0] = p.nat ? SPA_FLAG_NAT : 0;
  out[1] = family;
  addr.copy(out, 2);
  let o = 2 + addr.length;
  out[o++] = p.ports.length;
  for (const port of p.ports) {
    out.writeUInt16BE(port, o);
    o += 2;
  }
  return out;
}

/** Decodes a payload; any deviation from the layout is a refusal naming it. */
export function decodeSpaPayload(b: Uint8Array): ({ readonly ok: true } & SpaPayload) | SpaPayloadRefusal {
  if (b.length < MIN_SPA_PAYLOAD_BYTES || b.length > MAX_SPA_PAYLOAD_BYTES) return { ok: false, why: `payload of ${b.length} bytes` };
  const flags = b[0]!;
  if ((flags & ~SPA_FLAG_NAT) !== 0) return { ok: false, why: "reserved flag bits set" };
  const nat = (flags & SPA_FLAG_NAT) !== 0;
  const family = b[1]!;
  const addrBytes = family === 0 ? 0 : family === 4 ? 4 : family === 6 ? 16 : -1;
  if (addrBytes < 0) return { ok: false, why: `address family ${family}` };
  if (nat !== (family === 0)) return { ok: false, why: nat ? "nat with an address" : "no address without nat" };
  let o = 2 + addrBytes;
  if (b.length < o + 1) return { ok: false, why: "cut in the address" };
  const count = b[o++]!;
  if (count > MAX_SPA_PORTS) return { ok: false, why: `${count} ports` };
  if (b.length !== o + 2 * count) return { ok: false, why: "length does not match the port count" };
  const ports: number[] = [];
  for (let i = 0; i < count; i++, o += 2) {
    const port = (b[o]! << 8) | b[o + 1]!;
    if (port === 0 || ports.includes(port)) return { ok: false, why: port === 0 ? "port 0" : "a port given twice" };
    ports.push(port);
  }
  let address: string | undefined;
  if (family === 4) address = `${b[2]}.${b[3]}.${b[4]}.${b[5]}`;
  else if (family === 6) address = formatIpv6(b.subarray(2, 18));
  return { ok: true, ports, nat, ...(address !== undefined ? { address } : {}) };
}
