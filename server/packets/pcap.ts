/**
 * A streaming parser for the classic pcap format (what `tcpdump -w -` writes): global header, then records of a
 * 16-byte header and the captured bytes. Chunks may split anything anywhere. Built for floods: a record costs a
 * few integer reads and, only when it is a knock, one CapturedKnock; a record never throws and bad input is
 * counted. See https://www.ietf.org/archive/id/draft-ietf-opsawg-pcap-04.html for the format.
 */
import type { ObservedKnock } from "../../src/ports.js";
import { capturedKnock } from "./captured-knock.js";
import { createIpScratch, IP_KNOCK, IP_MALFORMED, parseIpPacket } from "./ip.js";
import { MAX_SPA_PACKET_BYTES, MIN_SPA_PACKET_BYTES, SPA_VERSION } from "../../src/protocol/spa/packet.js";

export const LINKTYPE_ETHERNET = 1;
export const LINKTYPE_RAW = 101;
export const LINKTYPE_LINUX_SLL = 113;
export const LINKTYPE_LINUX_SLL2 = 276;
export const LINKTYPE_IPV4 = 228;
export const LINKTYPE_IPV6 = 229;
/** Linux NFLOG (tcpdump -i nflog:N): https://www.tcpdump.org/linktypes/LINKTYPE_NFLOG.html */
export const LINKTYPE_NFLOG = 239;
/** DLT_RAW as some systems write it into files instead of LINKTYPE_RAW (12; 14 on OpenBSD). */
export const LINKTYPE_RAW_DLT12 = 12;
export const LINKTYPE_RAW_DLT14 = 14;

const SUPPORTED_LINK_TYPES: ReadonlySet<number> = new Set([
  LINKTYPE_ETHERNET,
  LINKTYPE_RAW,
  LINKTYPE_LINUX_SLL,
  LINKTYPE_LINUX_SLL2,
  LINKTYPE_IPV4,
  LINKTYPE_IPV6,
  LINKTYPE_NFLOG,
  LINKTYPE_RAW_DLT12,
  LINKTYPE_RAW_DLT14,
]);

export function isSupportedLinkType(linkType: number): boolean {
  return SUPPORTED_LINK_TYPES.has(linkType);
}

/** libpcap's largest snaplen: a record longer than this is not a record, the stream is out of step. */
export const MAX_RECORD_BYTES = 262_144;
const GLOBAL_HEADER_BYTES = 24;
const RECORD_HEADER_BYTES = 16;

/** Counters of one parser; they survive reset() (a restarted tcpdump), so they count the listener's lifetime. */
export type PcapCounters = {
  /** Records read (knocks, other packets and malformed ones). */
  packets: number;
  /** ObservedKnocks handed to the callback. */
  knocks: number;
  /** Truncated or garbage records, skipped. */
  malformed: number;
  /** Bytes consumed: global headers, record headers and record data. */
  bytes: number;
};

export type PcapParseResult = PcapCounters & {
  readonly linkType: number | undefined;
  /** Why the stream could not be parsed further (bad global header, absurd record length), if it broke. */
  readonly fatal: string | undefined;
};

// Link-layer decoding results.
const LINK_IP = 0;
const LINK_OTHER = 1; // ARP, outgoing (cooked captures), ...: a packet, not a knock
const LINK_MALFORMED = 2;
/**
 * Where the IP packet starts and ends, filled by decodeLink on LINK_IP; one per parser, so a record allocates
 * nothing. timeMs is the kernel's timestamp when the link layer carries one (NFLOG), else NaN.
 */
type LinkScratch = { ipOffset: number; ipEnd: number; family: 0 | 4 | 6; timeMs: number };

const ETHERTYPE_IPV4 = 0x0800;
const ETHERTYPE_IPV6 = 0x86dd;
/** Linux packet type "sent by us" (if_packet.h PACKET_OUTGOING): never a knock addressed to this host. */
const PACKET_OUTGOING = 4;

function u16(b: Uint8Array, o: number): number {
  return (b[o]! << 8) | b[o + 1]!;
}

function u32(b: Uint8Array, o: number, littleEndian: boolean): number {
  return littleEndian
    ? (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0
    : ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}

/** Skips 802.1Q and 802.1ad (QinQ) tags from an ethertype at b[p - 2]; sets `link` for IP. */
function afterEthertype(b: Uint8Array, type: number, p: number, end: number, link: LinkScratch): number {
  while (type === 0x8100 || type === 0x88a8 || type === 0x9100) {
    if (p + 4 > end) return LINK_MALFORMED;
    type = u16(b, p + 2);
    p += 4;
  }
  if (type === ETHERTYPE_IPV4) link.family = 4;
  else if (type === ETHERTYPE_IPV6) link.family = 6;
  else return LINK_OTHER;
  link.ipOffset = p;
  return LINK_IP;
}

const AF_INET = 2;
const AF_INET6 = 10;
const NFULA_TIMESTAMP = 3;
const NFULA_PAYLOAD = 9;
/** Netlink attribute types carry two flag bits (NLA_F_NESTED, NLA_F_NET_BYTEORDER) above the type. */
const NLA_TYPE_MASK = 0x3fff;

function u64be(b: Uint8Array, o: number): number {
  return u32(b, o, false) * 0x1_0000_0000 + u32(b, o + 4, false);
}

/**
 * NFLOG: family, version, resource id (4 bytes), then netlink TLVs whose length (header included) and type are in
 * the byte order of the host that captured, i.e. the pcap file's; each TLV is padded to 4 bytes. The timestamp TLV
 * holds two big-endian 64-bit numbers (seconds, microseconds). The payload TLV is the packet from its IP header.
 */
function decodeNflog(b: Uint8Array, off: number, end: number, le: boolean, link: LinkScratch): number {
  if (end - off < 4) return LINK_MALFORMED;
  const family = b[off];
  if (family !== AF_INET && family !== AF_INET6) return LINK_OTHER;
  link.timeMs = NaN;
  let p = off + 4;
  while (p + 4 <= end) {
    const tlvLen = le ? b[p]! | (b[p + 1]! << 8) : u16(b, p);
    const type = (le ? b[p + 2]! | (b[p + 3]! << 8) : u16(b, p + 2)) & NLA_TYPE_MASK;
    if (tlvLen < 4) return LINK_MALFORMED;
    const valueEnd = p + tlvLen;
    if (type === NFULA_PAYLOAD) {
      // A snaplen shorter than the packet cuts the payload TLV: parse what was kept, the IP parser bounds it.
      link.family = family === AF_INET ? 4 : 6;
      link.ipOffset = p + 4;
      link.ipEnd = Math.min(valueEnd, end);
      return LINK_IP;
    }
    if (valueEnd > end) return LINK_MALFORMED;
    if (type === NFULA_TIMESTAMP && tlvLen >= 20) {
      const usec = u64be(b, p + 12);
      if (usec < 1_000_000) link.timeMs = u64be(b, p + 4) * 1000 + usec / 1000;
    }
    p += (tlvLen + 3) & ~3;
  }
  return LINK_OTHER; // logged without the packet (nft log without a copy): nothing to match
}

function decodeLink(linkType: number, b: Uint8Array, off: number, end: number, le: boolean, link: LinkScratch): number {
  link.ipEnd = end;
  link.timeMs = NaN;
  switch (linkType) {
    case LINKTYPE_NFLOG:
      return decodeNflog(b, off, end, le, link);
    case LINKTYPE_ETHERNET:
      if (end - off < 14) return LINK_MALFORMED;
      return afterEthertype(b, u16(b, off + 12), off + 14, end, link);
    case LINKTYPE_LINUX_SLL: // https://www.tcpdump.org/linktypes/LINKTYPE_LINUX_SLL.html
      if (end - off < 16) return LINK_MALFORMED;
      if (u16(b, off) === PACKET_OUTGOING) return LINK_OTHER;
      return afterEthertype(b, u16(b, off + 14), off + 16, end, link);
    case LINKTYPE_LINUX_SLL2: // https://www.tcpdump.org/linktypes/LINKTYPE_LINUX_SLL2.html
      if (end - off < 20) return LINK_MALFORMED;
      if (b[off + 10] === PACKET_OUTGOING) return LINK_OTHER;
      return afterEthertype(b, u16(b, off), off + 20, end, link);
    case LINKTYPE_IPV4:
      link.family = 4;
      link.ipOffset = off;
      return LINK_IP;
    case LINKTYPE_IPV6:
      link.family = 6;
      link.ipOffset = off;
      return LINK_IP;
    default: // RAW and its DLT aliases: the version nibble tells
      link.family = 0;
      link.ipOffset = off;
      return LINK_IP;
  }
}

const STATE_GLOBAL = 0;
const STATE_RECORDS = 1;
const STATE_FATAL = 2;

function noop(): void {}

export class PcapStreamParser {
  readonly counters: PcapCounters = { packets: 0, knocks: 0, malformed: 0, bytes: 0 };
  private state = STATE_GLOBAL;
  private littleEndian = true;
  private fracPerMs = 1000;
  private fracPerSecond = 1_000_000;
  private maxRecordBytes = MAX_RECORD_BYTES;
  private currentLinkType: number | undefined;
  private fatalReason: string | undefined;
  /** Holds the one unit (global header or record) that straddles chunks; grows to the largest seen. */
  private carry: Buffer = Buffer.allocUnsafe(256);
  private carryLen = 0;
  private readonly link: LinkScratch = { ipOffset: 0, ipEnd: 0, family: 0, timeMs: NaN };
  private readonly scratch = createIpScratch();

  constructor(private readonly onKnock: (knock: ObservedKnock) => void = noop) {}

  get linkType(): number | undefined {
    return this.currentLinkType;
  }

  /** Set once the stream is beyond repair; push() then ignores input until reset(). */
  get fatal(): string | undefined {
    return this.fatalReason;
  }

  /** Feeds the next bytes of the stream. Returns false once the stream is broken (see `fatal`). Never throws. */
  push(chunk: Uint8Array): boolean {
    if (this.state === STATE_FATAL) return false;
    try {
      this.consume(chunk);
    } catch (err) {
      // Not reachable by any input (fuzzed); a throwing callback lands here too. Resync by restarting the stream.
      this.fail(`internal error: ${err instanceof Error ? err.message : String(err)}`);
    }
    return this.state !== STATE_FATAL;
  }

  /** The stream ended: a partial record left over is counted as malformed. Then ready for a new stream. */
  end(): void {
    if (this.state === STATE_RECORDS && this.carryLen > 0) this.counters.malformed++;
    this.reset();
  }

  /** Expect a new stream (a new global header); counters are kept. */
  reset(): void {
    this.state = STATE_GLOBAL;
    this.carryLen = 0;
    this.fatalReason = undefined;
    this.currentLinkType = undefined;
  }

  private consume(chunk: Uint8Array): void {
    const len = chunk.length;
    let off = 0;
    // First finish the unit an earlier chunk began.
    while (this.carryLen > 0) {
      const need = this.unitBytes(this.carry, 0, this.carryLen);
      if (need < 0) return;
      if (this.carryLen < need) {
        if (off === len) return;
        const take = Math.min(need - this.carryLen, len - off);
        this.appendCarry(chunk, off, take);
        off += take;
        continue; // a completed record header reveals the record's full size
      }
      this.carryLen = 0;
      this.processUnit(this.carry, 0);
      if (this.state === STATE_FATAL) return;
    }
    // Then parse in place, with no copy, as long as whole units are present.
    while (off < len) {
      const avail = len - off;
      const need = this.unitBytes(chunk, off, avail);
      if (need < 0) return;
      if (avail < need) {
        this.appendCarry(chunk, off, avail);
        return;
      }
      this.processUnit(chunk, off);
      if (this.state === STATE_FATAL) return;
      off += need;
    }
  }

  /** Size of the unit starting at b[off], as far as `avail` bytes tell; -1 if the stream is broken. */
  private unitBytes(b: Uint8Array, off: number, avail: number): number {
    if (this.state === STATE_GLOBAL) return GLOBAL_HEADER_BYTES;
    if (avail < RECORD_HEADER_BYTES) return RECORD_HEADER_BYTES;
    const captured = u32(b, off + 8, this.littleEndian);
    if (captured > this.maxRecordBytes) {
      this.fail(`record of ${captured} bytes exceeds the limit of ${this.maxRecordBytes}: stream out of step`);
      return -1;
    }
    return RECORD_HEADER_BYTES + captured;
  }

  private processUnit(b: Uint8Array, off: number): void {
    if (this.state === STATE_GLOBAL) this.processGlobalHeader(b, off);
    else this.processRecord(b, off);
  }

  private processGlobalHeader(b: Uint8Array, off: number): void {
    this.counters.bytes += GLOBAL_HEADER_BYTES;
    const magic = u32(b, off, true);
    switch (magic) {
      case 0xa1b2c3d4:
      case 0xd4c3b2a1:
        this.fracPerMs = 1000;
        break;
      case 0xa1b23c4d: // nanosecond timestamps
      case 0x4d3cb2a1:
        this.fracPerMs = 1_000_000;
        break;
      case 0x0a0d0d0a:
        this.fail("pcapng stream: only classic pcap is supported (tcpdump -w writes it)");
        return;
      default:
        this.fail(`not a pcap stream (magic 0x${magic.toString(16).padStart(8, "0")})`);
        return;
    }
    this.fracPerSecond = this.fracPerMs * 1000;
    this.littleEndian = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d;
    const major = this.littleEndian ? b[off + 4]! | (b[off + 5]! << 8) : u16(b, off + 4);
    if (major !== 2) {
      this.fail(`unsupported pcap version ${major}`);
      return;
    }
    const snaplen = u32(b, off + 16, this.littleEndian);
    // The low 16 bits are the link type; the high bits may carry FCS information.
    const linkType = u32(b, off + 20, this.littleEndian) & 0xffff;
    if (!isSupportedLinkType(linkType)) {
      this.fail(`unsupported link type ${linkType} (supported: EN10MB, LINUX_SLL, LINUX_SLL2, RAW, NFLOG)`);
      return;
    }
    this.currentLinkType = linkType;
    this.maxRecordBytes = snaplen > 0 ? Math.min(MAX_RECORD_BYTES, snaplen * 2) : MAX_RECORD_BYTES;
    this.state = STATE_RECORDS;
  }

  private processRecord(b: Uint8Array, off: number): void {
    const le = this.littleEndian;
    const seconds = u32(b, off, le);
    const fraction = u32(b, off + 4, le);
    const captured = u32(b, off + 8, le);
    const original = u32(b, off + 12, le);
    const c = this.counters;
    c.packets++;
    c.bytes += RECORD_HEADER_BYTES + captured;
    if (captured > original || fraction >= this.fracPerSecond) {
      c.malformed++;
      return;
    }
    const start = off + RECORD_HEADER_BYTES;
    const end = start + captured;
    const link = this.link;
    const l = decodeLink(this.currentLinkType!, b, start, end, le, link);
    if (l !== LINK_IP) {
      if (l === LINK_MALFORMED) c.malformed++;
      return;
    }
    const s = this.scratch;
    const r = parseIpPacket(b, link.ipOffset, link.ipEnd, link.family, s);
    if (r === IP_KNOCK) {
      c.knocks++;
      const timeMs = Number.isNaN(link.timeMs) ? seconds * 1000 + fraction / this.fracPerMs : link.timeMs;
      // Only a datagram of an SPA packet's size and version costs a copy (the buffer is reused after this call).
      const n = s.payloadEnd - s.payloadOffset;
      const payload =
        s.proto === "udp" && n >= MIN_SPA_PACKET_BYTES && n <= MAX_SPA_PACKET_BYTES && b[s.payloadOffset] === SPA_VERSION
          ? Uint8Array.prototype.slice.call(b, s.payloadOffset, s.payloadEnd)
          : undefined;
      this.onKnock(capturedKnock(b, s.srcOffset, s.family, s.dstPort, s.proto, timeMs, payload));
    } else if (r === IP_MALFORMED) {
      c.malformed++;
    }
  }

  private appendCarry(src: Uint8Array, off: number, n: number): void {
    const needed = this.carryLen + n;
    if (needed > this.carry.length) {
      const grown = Buffer.allocUnsafe(Math.max(needed, this.carry.length * 2));
      this.carry.copy(grown, 0, 0, this.carryLen);
      this.carry = grown;
    }
    this.carry.set(src.subarray(off, off + n), this.carryLen);
    this.carryLen = needed;
  }

  private fail(reason: string): void {
    this.state = STATE_FATAL;
    this.fatalReason = reason;
    this.carryLen = 0;
  }
}

/** Parses a whole capture in one go (tests, benchmarks: time it to get bytes/s and packets/s from the result). */
export function parsePcapBuffer(data: Uint8Array, onKnock?: (knock: ObservedKnock) => void): PcapParseResult {
  const parser = new PcapStreamParser(onKnock);
  parser.push(data);
  const linkType = parser.linkType;
  const fatal = parser.fatal;
  parser.end();
  return { ...parser.counters, linkType, fatal };
}
