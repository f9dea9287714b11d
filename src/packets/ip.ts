/**
 * IPv4/IPv6 header walking and address formatting, for the capture hot path: no allocation except the address
 * string a knock carries, no exception (every read is bounds-checked first).
 */
import type { KnockProto } from "../ports.js";

/** Result codes of parseIpPacket. */
export const IP_NOT_KNOCK = 0; // well-formed, but not a knock (other protocol, SYN-ACK, non-first fragment...)
export const IP_KNOCK = 1;
export const IP_MALFORMED = 2;
export type IpResult = typeof IP_NOT_KNOCK | typeof IP_KNOCK | typeof IP_MALFORMED;

/** Filled by parseIpPacket when it returns IP_KNOCK; one reused object, so a packet allocates nothing. */
export type IpScratch = {
  family: 4 | 6;
  /** Offset of the source address in the buffer (4 or 16 bytes). */
  srcOffset: number;
  dstPort: number;
  proto: KnockProto;
};

export function createIpScratch(): IpScratch {
  return { family: 4, srcOffset: 0, dstPort: 0, proto: "tcp" };
}

const PROTO_TCP = 6;
const PROTO_UDP = 17;
const TCP_FIN = 0x01;
const TCP_SYN = 0x02;
const TCP_RST = 0x04;
const TCP_ACK = 0x10;
/**
 * A knock is a connection request: SYN without ACK, FIN or RST. SYN+FIN and SYN+RST open no connection on any
 * stack (scanners send them to probe firewalls); ECE/CWR (ECN set-up), PSH and URG do not matter.
 */
const KNOCK_FLAGS_MASK = TCP_SYN | TCP_ACK | TCP_FIN | TCP_RST;
/** More IPv6 extension headers than any real packet carries: beyond this the packet is treated as garbage. */
const MAX_IPV6_EXTENSIONS = 8;

function u16(b: Uint8Array, o: number): number {
  return (b[o]! << 8) | b[o + 1]!;
}

/**
 * Parses an IP packet in b[off, end). family 4 or 6 is what the link layer announced (a mismatch is malformed);
 * 0 means "read the version nibble" (RAW link types).
 */
export function parseIpPacket(b: Uint8Array, off: number, end: number, family: 0 | 4 | 6, out: IpScratch): IpResult {
  if (off >= end) return IP_MALFORMED;
  const version = b[off]! >> 4;
  if (family !== 0 && version !== family) return IP_MALFORMED;
  if (version === 4) return parseIPv4(b, off, end, out);
  if (version === 6) return parseIPv6(b, off, end, out);
  return IP_MALFORMED;
}

function parseIPv4(b: Uint8Array, off: number, end: number, out: IpScratch): IpResult {
  if (end - off < 20) return IP_MALFORMED;
  const headerBytes = (b[off]! & 0x0f) * 4;
  const totalBytes = u16(b, off + 2);
  if (headerBytes < 20 || totalBytes < headerBytes) return IP_MALFORMED;
  // The capture may be cut by the snaplen (fine: headers come first) or padded by Ethernet (ignore the padding).
  const ipEnd = Math.min(end, off + totalBytes);
  if (off + headerBytes > ipEnd) return IP_MALFORMED;
  // Only the first fragment carries the ports (RFC 791); later ones cannot be knocks.
  if ((u16(b, off + 6) & 0x1fff) !== 0) return IP_NOT_KNOCK;
  out.family = 4;
  out.srcOffset = off + 12;
  return parseTransport(b, b[off + 9]!, off + headerBytes, ipEnd, out);
}

function parseIPv6(b: Uint8Array, off: number, end: number, out: IpScratch): IpResult {
  if (end - off < 40) return IP_MALFORMED;
  const ipEnd = Math.min(end, off + 40 + u16(b, off + 4));
  let next = b[off + 6]!;
  let p = off + 40;
  // RFC 8200 §4: walk the extension header chain to the upper-layer header.
  for (let i = 0; i <= MAX_IPV6_EXTENSIONS; i++) {
    switch (next) {
      case PROTO_TCP:
      case PROTO_UDP:
        out.family = 6;
        out.srcOffset = off + 8;
        return parseTransport(b, next, p, ipEnd, out);
      case 0: // hop-by-hop options
      case 43: // routing
      case 60: // destination options
        if (p + 2 > ipEnd) return IP_MALFORMED;
        next = b[p]!;
        p += (b[p + 1]! + 1) * 8;
        break;
      case 51: // authentication header (RFC 4302: length in 4-octet units, minus 2)
        if (p + 2 > ipEnd) return IP_MALFORMED;
        next = b[p]!;
        p += (b[p + 1]! + 2) * 4;
        break;
      case 44: // fragment
        if (p + 8 > ipEnd) return IP_MALFORMED;
        if ((u16(b, p + 2) & 0xfff8) !== 0) return IP_NOT_KNOCK;
        next = b[p]!;
        p += 8;
        break;
      default: // ICMPv6, ESP, no next header, ...
        return IP_NOT_KNOCK;
    }
  }
  return IP_MALFORMED;
}

function parseTransport(b: Uint8Array, proto: number, p: number, ipEnd: number, out: IpScratch): IpResult {
  if (proto === PROTO_TCP) {
    // Ports and flags sit in the first 14 bytes of the TCP header (RFC 9293 §3.1).
    if (p + 14 > ipEnd) return IP_MALFORMED;
    if ((b[p + 13]! & KNOCK_FLAGS_MASK) !== TCP_SYN) return IP_NOT_KNOCK;
    out.proto = "tcp";
    out.dstPort = u16(b, p + 2);
    return IP_KNOCK;
  }
  if (proto === PROTO_UDP) {
    if (p + 8 > ipEnd) return IP_MALFORMED;
    out.proto = "udp";
    out.dstPort = u16(b, p + 2);
    return IP_KNOCK;
  }
  return IP_NOT_KNOCK;
}

const OCTETS: readonly string[] = Array.from({ length: 256 }, (_, i) => String(i));
// A small direct-mapped cache: a flood from a few sources (or one real client) formats each address once, and a
// spoofed random-source flood costs a miss, never unbounded memory.
const V4_CACHE_SIZE = 4096;
const v4CacheKeys = new Uint32Array(V4_CACHE_SIZE);
const v4CacheValues: (string | undefined)[] = new Array<string | undefined>(V4_CACHE_SIZE).fill(undefined);

/** Dotted-quad of the 4 bytes at b[off]. */
export function formatIPv4(b: Uint8Array, off: number): string {
  const a = b[off]!;
  const c = b[off + 1]!;
  const d = b[off + 2]!;
  const e = b[off + 3]!;
  const key = ((a << 24) | (c << 16) | (d << 8) | e) >>> 0;
  const slot = (key ^ (key >>> 12) ^ (key >>> 22)) & (V4_CACHE_SIZE - 1);
  const hit = v4CacheValues[slot];
  if (hit !== undefined && v4CacheKeys[slot] === key) return hit;
  const s = `${OCTETS[a]!}.${OCTETS[c]!}.${OCTETS[d]!}.${OCTETS[e]!}`;
  v4CacheKeys[slot] = key;
  v4CacheValues[slot] = s;
  return s;
}

const words = new Uint16Array(8);
// The longest run of zero groups in `words` (first on a tie), as RFC 5952 §4.2.3 picks it; bestBase -1: none.
let bestBase = -1;
let bestLen = 0;

function findZeroRun(w: Uint16Array): void {
  bestBase = -1;
  bestLen = 0;
  let curBase = -1;
  for (let i = 0; i < 8; i++) {
    if (w[i] === 0) {
      if (curBase < 0) curBase = i;
      if (i - curBase + 1 > bestLen) {
        bestBase = curBase;
        bestLen = i - curBase + 1;
      }
    } else {
      curBase = -1;
    }
  }
  if (bestLen < 2) bestBase = -1;
}

/** ::a.b.c.d (compatible) and ::ffff:a.b.c.d (mapped), exactly the cases inet_ntop prints as dotted-quad. */
function hasDottedTail(w: Uint16Array): boolean {
  return bestBase === 0 && (bestLen === 6 || (bestLen === 5 && w[5] === 0xffff));
}

/**
 * RFC 5952 text of the 16 bytes at b[off], as inet_ntop(3) (and so `nft`) prints it: lowercase, no leading zeros,
 * the longest run (first on a tie) of two or more zero groups as "::", and IPv4-mapped/-compatible addresses with
 * a dotted-quad tail.
 */
export function formatIPv6(b: Uint8Array, off: number): string {
  for (let i = 0; i < 8; i++) words[i] = u16(b, off + 2 * i);
  findZeroRun(words);
  let s = "";
  for (let i = 0; i < 8; i++) {
    if (i === bestBase) {
      s += "::";
      i += bestLen - 1;
      continue;
    }
    if (i === 6 && hasDottedTail(words)) {
      if (i !== bestBase + bestLen) s += ":";
      s += formatIPv4(b, off + 12);
      break;
    }
    if (s.length > 0 && i !== bestBase + bestLen) s += ":";
    s += words[i]!.toString(16);
  }
  return s;
}

const DIGIT_0 = 48;
const DOT = 46;
const COLON = 58;
const LOWER_A = 97;
const HEX_DIGITS = "0123456789abcdef";

/**
 * The address of canonical dotted-quad text (four decimal octets, no leading zeros: what formatIPv4 prints) as
 * an unsigned 32-bit integer, or -1 for any other text. Canonical only, so text that maps to a number is exactly
 * the text a parsed packet of that address carries.
 */
export function parseIPv4Canonical(s: string): number {
  return dottedQuadAt(s, 0);
}

function dottedQuadAt(s: string, from: number): number {
  const n = s.length;
  if (n - from < 7 || n - from > 15) return -1;
  let key = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (let i = from; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c === DOT) {
      if (digits === 0 || dots === 3) return -1;
      key = key * 256 + octet;
      octet = 0;
      digits = 0;
      dots++;
      continue;
    }
    const v = c - DIGIT_0;
    if (v < 0 || v > 9 || (digits === 1 && octet === 0)) return -1;
    octet = octet * 10 + v;
    digits++;
    if (octet > 255) return -1;
  }
  if (dots !== 3 || digits === 0) return -1;
  return key * 256 + octet;
}

/**
 * Parses IPv6 text into 8 groups in `out`; true only when the text is exactly what formatIPv6 prints for them
 * (so each address has one text that maps to numbers, and that is the text a parsed packet carries).
 */
export function parseIPv6Canonical(s: string, out: Uint16Array): boolean {
  const n = s.length;
  if (n < 2 || n > 45) return false;
  let g = 0;
  let gap = -1;
  let i = 0;
  if (s.charCodeAt(0) === COLON) {
    if (s.charCodeAt(1) !== COLON) return false;
    gap = 0;
    i = 2;
  }
  while (i < n) {
    const start = i;
    let v = 0;
    for (; i < n && i - start < 5; i++) {
      const c = s.charCodeAt(i);
      const d = c - DIGIT_0 <= 9 && c >= DIGIT_0 ? c - DIGIT_0 : c >= LOWER_A && c <= LOWER_A + 5 ? c - LOWER_A + 10 : -1;
      if (d < 0) break;
      v = v * 16 + d;
    }
    if (i < n && s.charCodeAt(i) === DOT) {
      // A dotted-quad tail takes the last two groups.
      const v4 = g <= 6 ? dottedQuadAt(s, start) : -1;
      if (v4 < 0) return false;
      out[g++] = v4 >>> 16;
      out[g++] = v4 & 0xffff;
      break;
    }
    if (i === start || i - start > 4 || g === 8) return false;
    out[g++] = v;
    if (i === n) break;
    if (s.charCodeAt(i) !== COLON) return false;
    i++;
    if (i < n && s.charCodeAt(i) === COLON) {
      if (gap >= 0) return false;
      gap = g;
      i++;
    } else if (i === n) {
      return false;
    }
  }
  if (gap < 0) {
    if (g !== 8) return false;
  } else {
    if (g > 7) return false;
    const tail = g - gap;
    for (let k = 0; k < tail; k++) out[7 - k] = out[g - 1 - k]!;
    for (let k = gap; k < 8 - tail; k++) out[k] = 0;
  }
  return isFormattedIPv6(out, s);
}

/** True when s is exactly formatIPv6's text for the groups w (compared as it would be printed, no allocation). */
function isFormattedIPv6(w: Uint16Array, s: string): boolean {
  findZeroRun(w);
  let p = 0;
  const n = s.length;
  const ch = (c: number): boolean => p < n && s.charCodeAt(p++) === c;
  const dec = (v: number): boolean => {
    if (v >= 100 && !ch(DIGIT_0 + Math.floor(v / 100))) return false;
    if (v >= 10 && !ch(DIGIT_0 + (Math.floor(v / 10) % 10))) return false;
    return ch(DIGIT_0 + (v % 10));
  };
  for (let i = 0; i < 8; i++) {
    if (i === bestBase) {
      if (!ch(COLON) || !ch(COLON)) return false;
      i += bestLen - 1;
      continue;
    }
    if (i === 6 && hasDottedTail(w)) {
      if (i !== bestBase + bestLen && !ch(COLON)) return false;
      const a = w[6]!;
      const b = w[7]!;
      return dec(a >> 8) && ch(DOT) && dec(a & 255) && ch(DOT) && dec(b >> 8) && ch(DOT) && dec(b & 255) && p === n;
    }
    if (p > 0 && i !== bestBase + bestLen && !ch(COLON)) return false;
    const v = w[i]!;
    for (let shift = v >= 0x1000 ? 12 : v >= 0x100 ? 8 : v >= 0x10 ? 4 : 0; shift >= 0; shift -= 4) {
      if (!ch(HEX_DIGITS.charCodeAt((v >> shift) & 15))) return false;
    }
  }
  return p === n;
}
