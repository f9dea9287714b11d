/**
 * IPv4/IPv6 header walking for the capture hot path: no allocation, no exception (every read is bounds-checked
 * first). The source address is left in the buffer (IpScratch.srcOffset); address.ts reads it.
 */
import type { KnockProto } from "../../src/ports.js";

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
  /**
   * UDP: where the datagram's payload lies in the buffer, when it was captured whole (payloadEnd < 0: cut by the
   * snaplen, or not UDP). SPA packets are read from here.
   */
  payloadOffset: number;
  payloadEnd: number;
};

export function createIpScratch(): IpScratch {
  return { family: 4, srcOffset: 0, dstPort: 0, proto: "tcp", payloadOffset: 0, payloadEnd: -1 };
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
    out.payloadEnd = -1;
    return IP_KNOCK;
  }
  if (proto === PROTO_UDP) {
    if (p + 8 > ipEnd) return IP_MALFORMED;
    out.proto = "udp";
    out.dstPort = u16(b, p + 2);
    // RFC 768: the length covers header and data. A datagram longer than what was captured has no whole payload.
    const udpEnd = p + u16(b, p + 4);
    out.payloadOffset = p + 8;
    out.payloadEnd = udpEnd >= p + 8 && udpEnd <= ipEnd ? udpEnd : -1;
    return IP_KNOCK;
  }
  return IP_NOT_KNOCK;
}
