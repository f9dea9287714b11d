import { readFileSync } from "node:fs";
import { isIP, SocketAddress } from "node:net";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ADDRESS_WORDS, canonicalAddress, formatAddress, parseCanonicalAddress } from "../../server/packets/address.js";
import { sourceKey } from "../../server/packets/captured-knock.js";
import {
  LINKTYPE_ETHERNET,
  LINKTYPE_LINUX_SLL,
  LINKTYPE_LINUX_SLL2,
  LINKTYPE_NFLOG,
  LINKTYPE_RAW,
  parsePcapBuffer,
  PcapStreamParser,
  type PcapParseResult,
} from "../../server/packets/pcap.js";
import type { ObservedKnock } from "../../src/ports.js";

// Fixtures: real tcpdump captures made by test/fixtures/pcap/make-fixtures.sh (client .1 knocks server .2).
function fixture(name: string): Buffer {
  return readFileSync(new URL(`../fixtures/pcap/${name}`, import.meta.url));
}

type Knock = Pick<ObservedKnock, "src" | "dstPort" | "proto">;

/** A knock as the listener's callback sees it, as a plain object (the parser's knocks keep the address as numbers). */
function plain(kn: ObservedKnock): ObservedKnock {
  return { src: kn.src, dstPort: kn.dstPort, proto: kn.proto, atMs: kn.atMs };
}
const k = (src: string, dstPort: number, proto: "tcp" | "udp"): Knock => ({ src, dstPort, proto });

/**
 * The standard traffic from the client: SYN to closed ports (RST back), UDP (ICMP unreachable back), a full
 * handshake to 40005; then the server sends a SYN and a datagram of its own to the client.
 */
const STANDARD: Knock[] = [
  k("198.18.0.1", 40001, "tcp"),
  k("198.18.0.1", 40002, "udp"),
  k("fd18:18::1", 40003, "tcp"),
  k("fd18:18::1", 40004, "udp"),
  k("198.18.0.1", 40005, "tcp"),
];

const FIXTURES: { name: string; linkType: number; packets: number; malformed: number; knocks: Knock[] }[] = [
  {
    // Ethernet carries no direction: the server's own SYN and datagram look like knocks from it. In production
    // the capture filter (`inbound`, `dst host` this host) keeps them out.
    name: "en10mb.pcap",
    linkType: LINKTYPE_ETHERNET,
    packets: 20,
    malformed: 0,
    knocks: [...STANDARD, k("198.18.0.2", 40006, "tcp"), k("198.18.0.2", 40007, "udp")],
  },
  // Cooked (`any`) captures mark the server's outgoing packets as such: skipped, whatever they are.
  { name: "linux-sll.pcap", linkType: LINKTYPE_LINUX_SLL, packets: 21, malformed: 0, knocks: STANDARD },
  { name: "linux-sll2.pcap", linkType: LINKTYPE_LINUX_SLL2, packets: 20, malformed: 0, knocks: STANDARD },
  {
    name: "raw.pcap", // a tun device: no link-layer header
    linkType: LINKTYPE_RAW,
    packets: 8,
    malformed: 0,
    knocks: [k("198.19.1.1", 40011, "tcp"), k("198.19.1.1", 40012, "udp"), k("fd18:18::b:1", 40013, "tcp"), k("fd18:18::b:1", 40014, "udp")],
  },
  // NFLOG group 5 fed by an nft `log group` rule on ports 40001-40007: only what the firewall saw coming in (the
  // handshake's ACKs and FIN are logged too, but are no knocks; the server's own packets never reach the input hook).
  { name: "nflog.pcap", linkType: LINKTYPE_NFLOG, packets: 8, malformed: 0, knocks: STANDARD },
  {
    // 802.1Q vlan 7, QinQ (802.1ad 100 + 802.1Q 5) IPv4 and IPv6, a tagged SYN-ACK (no knock), a priority tag (vid 0).
    name: "vlan.pcap",
    linkType: LINKTYPE_ETHERNET,
    packets: 7,
    malformed: 0,
    knocks: [
      k("198.19.7.1", 40021, "tcp"),
      k("198.19.7.1", 40022, "udp"),
      k("198.19.8.1", 40023, "tcp"),
      k("fd18:18::8:1", 40024, "udp"),
      k("fd18:18::1", 40026, "tcp"),
    ],
  },
  {
    // The same frames on `any`: the kernel strips 802.1Q tags; a QinQ frame keeps a headless inner tag that even
    // tcpdump cannot decode ("IP0 (invalid)"): counted malformed, never misread.
    name: "vlan-linux-sll2.pcap",
    linkType: LINKTYPE_LINUX_SLL2,
    packets: 7,
    malformed: 2,
    knocks: [k("198.19.7.1", 40021, "tcp"), k("198.19.7.1", 40022, "udp"), k("fd18:18::1", 40026, "tcp")],
  },
  {
    // Nanosecond timestamps; IPv4 options; fragmented UDP over IPv4 and IPv6 (later fragments skipped);
    // IPv6 hop-by-hop + destination options before UDP, hop-by-hop before TCP.
    name: "ip-extras.pcap",
    linkType: LINKTYPE_ETHERNET,
    packets: 14,
    malformed: 0,
    knocks: [
      k("198.18.0.1", 40031, "tcp"),
      k("198.18.0.1", 40032, "udp"),
      k("fd18:18::1", 40033, "udp"),
      k("fd18:18::1", 40034, "udp"),
      k("fd18:18::1", 40035, "tcp"),
    ],
  },
];

function collect(data: Uint8Array): { result: PcapParseResult; knocks: ObservedKnock[] } {
  const knocks: ObservedKnock[] = [];
  const result = parsePcapBuffer(data, (kn) => knocks.push(plain(kn)));
  return { result, knocks };
}

function collectChunked(chunks: readonly Uint8Array[]): { knocks: ObservedKnock[]; counters: object; fatal: string | undefined } {
  const knocks: ObservedKnock[] = [];
  const parser = new PcapStreamParser((kn) => knocks.push(plain(kn)));
  for (const c of chunks) parser.push(c);
  const fatal = parser.fatal;
  parser.end();
  return { knocks, counters: { ...parser.counters }, fatal };
}

/** The records of a little-endian pcap, read the simple way (the test's own reference reader). */
function recordsOf(pcap: Buffer): { header: Buffer; data: Buffer }[] {
  const out: { header: Buffer; data: Buffer }[] = [];
  for (let off = 24; off + 16 <= pcap.length;) {
    const incl = pcap.readUInt32LE(off + 8);
    out.push({ header: pcap.subarray(off, off + 16), data: pcap.subarray(off + 16, off + 16 + incl) });
    off += 16 + incl;
  }
  return out;
}

/** Rewrites a little-endian pcap as the same capture written on a big-endian host (NFLOG TLV headers too). */
function toBigEndian(pcap: Buffer): Buffer {
  const out = Buffer.from(pcap);
  const nflog = pcap.readUInt32LE(20) === LINKTYPE_NFLOG;
  out.writeUInt32BE(pcap.readUInt32LE(0), 0);
  out.writeUInt16BE(pcap.readUInt16LE(4), 4);
  out.writeUInt16BE(pcap.readUInt16LE(6), 6);
  for (const o of [8, 12, 16, 20]) out.writeUInt32BE(pcap.readUInt32LE(o), o);
  for (let off = 24; off + 16 <= pcap.length;) {
    const incl = pcap.readUInt32LE(off + 8);
    for (let i = 0; i < 16; i += 4) out.writeUInt32BE(pcap.readUInt32LE(off + i), off + i);
    for (let p = off + 20; nflog && p + 4 <= off + 16 + incl;) {
      const len = pcap.readUInt16LE(p);
      out.writeUInt16BE(len, p);
      out.writeUInt16BE(pcap.readUInt16LE(p + 2), p + 2);
      if (len < 4) break;
      p += (len + 3) & ~3;
    }
    off += 16 + incl;
  }
  return out;
}

type SyntheticRecord = { seconds: number; fraction: number; data: Uint8Array; originalBytes?: number };

/** A pcap written by hand, for cases no capture gives (timestamps chosen exactly, broken records). */
function pcapOf(linkType: number, records: readonly SyntheticRecord[], opts: { magic?: number; snaplen?: number } = {}): Buffer {
  const header = Buffer.alloc(24);
  header.writeUInt32LE(opts.magic ?? 0xa1b2c3d4, 0);
  header.writeUInt16LE(2, 4);
  header.writeUInt16LE(4, 6);
  header.writeUInt32LE(opts.snaplen ?? 65535, 16);
  header.writeUInt32LE(linkType, 20);
  const parts: Buffer[] = [header];
  for (const r of records) {
    const rh = Buffer.alloc(16);
    rh.writeUInt32LE(r.seconds, 0);
    rh.writeUInt32LE(r.fraction, 4);
    rh.writeUInt32LE(r.data.length, 8);
    rh.writeUInt32LE(r.originalBytes ?? r.data.length, 12);
    parts.push(rh, Buffer.from(r.data));
  }
  return Buffer.concat(parts);
}

/** The first captured frame of en10mb.pcap: an Ethernet + IPv4 TCP SYN from 198.18.0.1 to port 40001. */
function ipv4SynFrame(): Buffer {
  const first = recordsOf(fixture("en10mb.pcap"))[0];
  if (!first) throw new Error("en10mb.pcap has no record");
  return first.data;
}

function expectValidKnock(kn: ObservedKnock): void {
  expect(Number.isInteger(kn.dstPort) && kn.dstPort >= 0 && kn.dstPort <= 65535).toBe(true);
  expect(isIP(kn.src)).not.toBe(0);
  expect(["tcp", "udp"]).toContain(kn.proto);
  expect(Number.isFinite(kn.atMs)).toBe(true);
}

describe("pcap parser on real captures", () => {
  for (const f of FIXTURES) {
    it(`when parsing ${f.name} then it yields exactly the client's knocks, in order`, () => {
      const { result, knocks } = collect(fixture(f.name));
      expect(result.fatal).toBeUndefined();
      expect(result.linkType).toBe(f.linkType);
      expect(knocks.map(({ src, dstPort, proto }) => ({ src, dstPort, proto }))).toEqual(f.knocks);
      expect(result).toMatchObject({ packets: f.packets, knocks: f.knocks.length, malformed: f.malformed, bytes: fixture(f.name).length });
      for (const kn of knocks) expectValidKnock(kn);
      const times = knocks.map((kn) => kn.atMs);
      expect(times).toEqual([...times].sort((a, b) => a - b));
    });

    it(`when ${f.name} arrives split at any single byte then the knocks and counters are the same`, () => {
      const data = fixture(f.name);
      const whole = collectChunked([data]);
      for (let i = 0; i <= data.length; i++) {
        expect(collectChunked([data.subarray(0, i), data.subarray(i)])).toEqual(whole);
      }
    });
  }

  it("when every fixture is fed one byte at a time then nothing changes", () => {
    for (const f of FIXTURES) {
      const data = fixture(f.name);
      const bytes = Array.from({ length: data.length }, (_, i) => data.subarray(i, i + 1));
      expect(collectChunked(bytes)).toEqual(collectChunked([data]));
    }
  });

  it("when fixtures arrive in random chunks then the knocks are the same", () => {
    const data = fixture("en10mb.pcap");
    const whole = collectChunked([data]);
    fc.assert(
      fc.property(fc.uniqueArray(fc.integer({ min: 1, max: data.length - 1 }), { maxLength: 30 }), (cuts) => {
        const points = [0, ...cuts.sort((a, b) => a - b), data.length];
        const chunks = points.slice(1).map((end, i) => data.subarray(points[i], end));
        expect(collectChunked(chunks)).toEqual(whole);
      }),
    );
  });

  it("when a capture was written on a big-endian host then the knocks are the same", () => {
    for (const f of FIXTURES) {
      const le = collect(fixture(f.name));
      const be = collect(toBigEndian(fixture(f.name)));
      expect(be.knocks).toEqual(le.knocks);
      expect(be.result).toEqual(le.result);
    }
  });

  it("when two streams follow each other through reset() then both are parsed (a restarted tcpdump)", () => {
    const knocks: ObservedKnock[] = [];
    const parser = new PcapStreamParser((kn) => knocks.push(plain(kn)));
    parser.push(fixture("en10mb.pcap"));
    parser.reset();
    parser.push(fixture("raw.pcap"));
    expect(knocks.map((kn) => kn.dstPort)).toEqual([40001, 40002, 40003, 40004, 40005, 40006, 40007, 40011, 40012, 40013, 40014]);
    expect(parser.counters.packets).toBe(20 + 8);
  });
});

describe("pcap parser timestamps", () => {
  it("when the capture has microsecond timestamps then atMs is seconds*1000 + us/1000", () => {
    const { knocks } = collect(pcapOf(LINKTYPE_ETHERNET, [{ seconds: 1_700_000_000, fraction: 123_456, data: ipv4SynFrame() }]));
    expect(knocks).toEqual([{ src: "198.18.0.1", dstPort: 40001, proto: "tcp", atMs: 1_700_000_000_123.456 }]);
  });

  it("when the capture has nanosecond timestamps then atMs keeps the sub-millisecond part", () => {
    const pcap = pcapOf(LINKTYPE_ETHERNET, [{ seconds: 1_700_000_000, fraction: 999_999_999, data: ipv4SynFrame() }], { magic: 0xa1b23c4d });
    expect(collect(pcap).knocks[0]?.atMs).toBe(1_700_000_000_000 + 999.999999);
    expect(collect(toBigEndian(pcap)).knocks[0]?.atMs).toBe(1_700_000_000_000 + 999.999999);
  });

  it("when a record's fraction is not below one second then it is malformed", () => {
    const { result, knocks } = collect(pcapOf(LINKTYPE_ETHERNET, [{ seconds: 1, fraction: 1_000_000, data: ipv4SynFrame() }]));
    expect(knocks).toEqual([]);
    expect(result.malformed).toBe(1);
  });
});

/** An NFLOG record (little-endian TLVs) of the given family holding `tlvs`, each [type, value]. */
function nflogRecord(family: number, tlvs: readonly [number, Uint8Array][]): Buffer {
  const parts: Buffer[] = [Buffer.from([family, 0, 0, 5])];
  for (const [type, value] of tlvs) {
    const h = Buffer.alloc(4);
    h.writeUInt16LE(4 + value.length, 0);
    h.writeUInt16LE(type, 2);
    parts.push(h, Buffer.from(value), Buffer.alloc((4 - (value.length % 4)) % 4));
  }
  return Buffer.concat(parts);
}
const NFULA_TIMESTAMP = 3;
const NFULA_PAYLOAD = 9;
function nflogTimestamp(seconds: number, usec: number): Buffer {
  const b = Buffer.alloc(16);
  b.writeBigUInt64BE(BigInt(seconds), 0);
  b.writeBigUInt64BE(BigInt(usec), 8);
  return b;
}

describe("pcap parser on NFLOG records", () => {
  it("when the record carries the kernel's timestamp then atMs is that time, not the pcap record's", () => {
    const ip = ipv4SynFrame().subarray(14);
    const data = nflogRecord(2, [
      [NFULA_TIMESTAMP, nflogTimestamp(1_700_000_000, 250_000)],
      [NFULA_PAYLOAD, ip],
    ]);
    const { knocks } = collect(pcapOf(LINKTYPE_NFLOG, [{ seconds: 1, fraction: 0, data }]));
    expect(knocks).toEqual([{ src: "198.18.0.1", dstPort: 40001, proto: "tcp", atMs: 1_700_000_000_250 }]);
  });

  it("when the record has no timestamp TLV then atMs is the pcap record's time", () => {
    const data = nflogRecord(2, [[NFULA_PAYLOAD, ipv4SynFrame().subarray(14)]]);
    const { knocks } = collect(pcapOf(LINKTYPE_NFLOG, [{ seconds: 1_700_000_000, fraction: 5_000, data }]));
    expect(knocks[0]?.atMs).toBe(1_700_000_000_005);
  });

  it("when every record of the real capture is re-stamped then the knock times do not move (the kernel's time is used)", () => {
    const data = Buffer.from(fixture("nflog.pcap"));
    const before = collect(data).knocks.map((kn) => kn.atMs);
    for (const r of recordsOf(data)) r.header.writeUInt32LE(1, 0);
    expect(collect(data).knocks.map((kn) => kn.atMs)).toEqual(before);
  });

  it("when a TLV is shorter than its header or runs past the record then the record is malformed, not thrown", () => {
    const ip = ipv4SynFrame().subarray(14);
    const short = nflogRecord(2, [[NFULA_PAYLOAD, ip]]);
    short.writeUInt16LE(2, 4);
    const overlong = nflogRecord(2, [
      [NFULA_TIMESTAMP, nflogTimestamp(1, 0)],
      [NFULA_PAYLOAD, ip],
    ]);
    overlong.writeUInt16LE(4000, 4);
    const { result, knocks } = collect(
      pcapOf(
        LINKTYPE_NFLOG,
        [short, overlong, Buffer.from([2, 0])].map((data) => ({ seconds: 1, fraction: 0, data })),
      ),
    );
    expect(knocks).toEqual([]);
    expect(result).toMatchObject({ packets: 3, malformed: 3 });
  });

  it("when a record has no payload or another family then it is a packet but neither a knock nor malformed", () => {
    const noPayload = nflogRecord(2, [[NFULA_TIMESTAMP, nflogTimestamp(1, 0)]]);
    const arp = nflogRecord(3, [[NFULA_PAYLOAD, ipv4SynFrame().subarray(14)]]);
    const { result, knocks } = collect(
      pcapOf(
        LINKTYPE_NFLOG,
        [noPayload, arp].map((data) => ({ seconds: 1, fraction: 0, data })),
      ),
    );
    expect(knocks).toEqual([]);
    expect(result).toMatchObject({ packets: 2, malformed: 0 });
  });
});

describe("pcap parser on bad input", () => {
  it("when the stream ends inside a record then that record is counted malformed and earlier knocks stand", () => {
    for (const f of FIXTURES) {
      const data = fixture(f.name);
      const last = recordsOf(data).at(-1);
      if (!last) throw new Error(`${f.name} has no record`);
      const withoutLast = collect(data.subarray(0, data.length - last.header.length - last.data.length));
      const { result, knocks } = collect(data.subarray(0, data.length - 5));
      expect(knocks).toEqual(withoutLast.knocks);
      expect(result.malformed).toBe(withoutLast.result.malformed + 1);
      expect(result.fatal).toBeUndefined();
    }
  });

  it("when a SYN also carries FIN, RST or ACK then it is not a knock, while SYN with ECN flags still is (checksums unchecked)", () => {
    const frame = ipv4SynFrame();
    const flagsAt = 14 + 20 + 13; // Ethernet, IPv4 without options, TCP flags byte
    expect(frame[flagsAt]! & 0x17).toBe(0x02);
    const withFlags = (flags: number): Buffer => {
      const f = Buffer.from(frame);
      f[flagsAt] = flags;
      return f; // TCP checksum now wrong, as with checksum offload: the parser does not check it
    };
    const cases = [0x03 /* SYN+FIN */, 0x06 /* SYN+RST */, 0x12 /* SYN+ACK */, 0x07, 0xc2 /* SYN+ECE+CWR */, 0x0a /* SYN+PSH */];
    const knocks = cases.map((flags) => collect(pcapOf(LINKTYPE_ETHERNET, [{ seconds: 1, fraction: 0, data: withFlags(flags) }])));
    expect(knocks.map(({ result }) => result.knocks)).toEqual([0, 0, 0, 0, 1, 1]);
    expect(knocks.map(({ result }) => result.malformed)).toEqual([0, 0, 0, 0, 0, 0]);
  });

  it("when a record was cut by the snaplen before the TCP flags then it is malformed, not a knock", () => {
    const frame = ipv4SynFrame();
    const cut = frame.subarray(0, 14 + 20 + 10);
    const { result, knocks } = collect(pcapOf(LINKTYPE_ETHERNET, [{ seconds: 1, fraction: 0, data: cut, originalBytes: frame.length }]));
    expect(knocks).toEqual([]);
    expect(result).toMatchObject({ packets: 1, malformed: 1 });
  });

  it("when records are too short for their link-layer header then each is malformed", () => {
    const records = [LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2, LINKTYPE_RAW].map(
      (lt) => collect(pcapOf(lt, [{ seconds: 1, fraction: 0, data: Buffer.alloc(3) }])).result,
    );
    for (const r of records) expect(r).toMatchObject({ packets: 1, malformed: 1, knocks: 0 });
  });

  it("when a record claims more bytes captured than sent then it is skipped as malformed", () => {
    const frame = ipv4SynFrame();
    const { result } = collect(
      pcapOf(LINKTYPE_ETHERNET, [
        { seconds: 1, fraction: 0, data: frame, originalBytes: 20 },
        { seconds: 2, fraction: 0, data: frame },
      ]),
    );
    expect(result).toMatchObject({ packets: 2, malformed: 1, knocks: 1 });
  });

  it("when the global header is garbage then the stream is fatal and push reports it", () => {
    const parser = new PcapStreamParser();
    expect(parser.push(Buffer.from("GET / HTTP/1.1\r\nHost: example\r\n\r\n"))).toBe(false);
    expect(parser.fatal).toMatch(/not a pcap stream/);
    expect(parser.push(fixture("en10mb.pcap"))).toBe(false);
    parser.reset();
    expect(parser.push(fixture("en10mb.pcap"))).toBe(true);
    expect(parser.counters.knocks).toBe(7);
  });

  it("when the stream is pcapng, another pcap version or an unsupported link type then it is fatal", () => {
    const pcapng = Buffer.alloc(24);
    pcapng.writeUInt32LE(0x0a0d0d0a, 0);
    expect(collect(pcapng).result.fatal).toMatch(/pcapng/);
    const v3 = pcapOf(LINKTYPE_ETHERNET, []);
    v3.writeUInt16LE(3, 4);
    expect(collect(v3).result.fatal).toMatch(/version/);
    expect(collect(pcapOf(105, [])).result.fatal).toMatch(/link type 105/); // 802.11
  });

  it("when a record length is absurd for the snaplen then the stream is fatal instead of swallowing megabytes", () => {
    const pcap = pcapOf(LINKTYPE_ETHERNET, [{ seconds: 1, fraction: 0, data: ipv4SynFrame() }], { snaplen: 128 });
    pcap.writeUInt32LE(257, 24 + 8); // > 2 x snaplen
    const { result, knocks } = collect(pcap);
    expect(knocks).toEqual([]);
    expect(result.fatal).toMatch(/exceeds/);
    const huge = pcapOf(LINKTYPE_ETHERNET, [{ seconds: 1, fraction: 0, data: ipv4SynFrame() }], { snaplen: 0 });
    huge.writeUInt32LE(262_145, 24 + 8);
    expect(collect(huge).result.fatal).toMatch(/exceeds/);
  });

  it("when the knock callback throws then push reports a broken stream instead of throwing", () => {
    const parser = new PcapStreamParser(() => {
      throw new Error("boom");
    });
    expect(parser.push(fixture("en10mb.pcap"))).toBe(false);
    expect(parser.fatal).toMatch(/boom/);
  });
});

describe("pcap parser fuzzing", () => {
  const supported = [1, 12, 14, 101, 113, 228, 229, 276];

  it("when fed random bytes then it never throws and every knock is valid", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2000 }), fc.integer({ min: 1, max: 64 }), (bytes, chunk) => {
        const parser = new PcapStreamParser(expectValidKnock);
        for (let i = 0; i < bytes.length; i += chunk) parser.push(bytes.subarray(i, i + chunk));
        parser.end();
      }),
      { numRuns: 300 },
    );
  });

  it("when random records follow a valid header then it never throws and every knock is valid", () => {
    fc.assert(
      fc.property(fc.constantFrom(...supported), fc.boolean(), fc.array(fc.uint8Array({ maxLength: 120 }), { maxLength: 20 }), (linkType, nano, frames) => {
        const pcap = pcapOf(
          linkType,
          frames.map((data, i) => ({ seconds: i, fraction: i, data })),
          nano ? { magic: 0xa1b23c4d } : {},
        );
        const { result, knocks } = collect(pcap);
        expect(result.fatal).toBeUndefined();
        expect(result.packets).toBe(frames.length);
        knocks.forEach(expectValidKnock);
      }),
      { numRuns: 500 },
    );
  });

  it("when fixtures are mutated at random then it never throws and every knock is valid", () => {
    const fixtures = FIXTURES.map((f) => fixture(f.name));
    fc.assert(
      fc.property(
        fc.nat({ max: fixtures.length - 1 }),
        fc.array(fc.tuple(fc.nat(), fc.nat({ max: 255 })), { minLength: 1, maxLength: 20 }),
        fc.nat(),
        (which, flips, cutAt) => {
          const data = Buffer.from(fixtures[which]!);
          for (const [at, value] of flips) data[at % data.length] = value;
          const knocks: ObservedKnock[] = [];
          const parser = new PcapStreamParser((kn) => knocks.push(plain(kn)));
          const cut = cutAt % (data.length + 1);
          parser.push(data.subarray(0, cut));
          parser.push(data.subarray(cut));
          parser.end();
          knocks.forEach(expectValidKnock);
        },
      ),
      { numRuns: 1000 },
    );
  });
});

const word = fc.oneof(fc.constant(0), fc.constant(0), fc.constant(0xffff), fc.integer({ min: 0, max: 0xffff }));
/** The address key of eight IPv6 groups. */
const keyOf = (ws: readonly number[]): [number, number, number, number] =>
  [0, 1, 2, 3].map((i) => (ws[2 * i]! << 16) | ws[2 * i + 1]! | 0) as [number, number, number, number];
const v6 = (ws: readonly number[]): string => formatAddress(6, ...keyOf(ws));

describe("address formatting", () => {
  it("when formatting any IPv6 address then the text is what inet_ntop (and nft) prints", () => {
    // Words biased towards zero so that runs of zeros, ties and IPv4-mapped forms come up.
    fc.assert(
      fc.property(fc.array(word, { minLength: 8, maxLength: 8 }), (ws) => {
        const full = ws.map((w) => w.toString(16)).join(":");
        expect(v6(ws)).toBe(new SocketAddress({ address: full, family: "ipv6" }).address);
      }),
      { numRuns: 3000 },
    );
  });

  it("when formatting any IPv4 address then the text is its dotted quad", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 4, maxLength: 4 }), (a) => {
        expect(formatAddress(4, Buffer.from(a).readInt32BE(0), 0, 0, 0)).toBe(Array.from(a).join("."));
      }),
    );
  });
});

describe("address text parsing (source keys)", () => {
  const out = new Int32Array(ADDRESS_WORDS);

  it("when formatted IPv6 text is parsed then the same groups come back", () => {
    fc.assert(
      fc.property(fc.array(word, { minLength: 8, maxLength: 8 }), (ws) => {
        expect(parseCanonicalAddress(v6(ws), out)).toBe(6);
        expect(Array.from(out)).toEqual(keyOf(ws));
      }),
      { numRuns: 3000 },
    );
  });

  it("when IPv6 text is parsed then it is accepted only if it is exactly what formatAddress prints", () => {
    const accepts = (s: string): boolean => parseCanonicalAddress(s, out) === 6 && formatAddress(6, out[0]!, out[1]!, out[2]!, out[3]!) === s;
    const rejects = (s: string): boolean => parseCanonicalAddress(s, out) === 0;
    for (const s of ["::", "::1", "fd18:18::1", "::ffff:198.18.0.1", "::198.18.0.1", "1:2:3:4:5:6:7:0", "1::", "1:0:0:2::3"]) expect(accepts(s), s).toBe(true);
    for (const s of [
      "FD18::1",
      "fd18:0::1",
      "fd18:018::1",
      "::ffff:c612:1",
      "1:2:3:4:5:6:7::",
      "1::2::3",
      ":1::",
      "1:",
      "",
      ":",
      ":::",
      "1:2:3:4:5:6:7:8:9",
      "::1.2.3",
      "::ffff:1.2.3.04",
      "0:0::1",
      "1:0::2:0:0:0:3",
    ]) {
      expect(rejects(s), s).toBe(true);
    }
    // Mutations of real texts and random strings: whatever is accepted must print back identically.
    const canonical = fc.array(word, { minLength: 8, maxLength: 8 }).map(v6);
    const mutated = fc.tuple(canonical, fc.nat(), fc.constantFrom("", "0", ":", "::", ".", "a", "A", "00", "1.2.3.4")).map(([s, at, ins]) => {
      const i = at % (s.length + 1);
      return s.slice(0, i) + ins + s.slice(i + (at % 3 === 0 ? 1 : 0));
    });
    const random = fc.string({ unit: fc.constantFrom(..."0123456789abcdefA:."), maxLength: 45 });
    fc.assert(
      fc.property(fc.oneof(mutated, random), (s) => {
        const family = parseCanonicalAddress(s, out);
        if (family !== 0) expect(formatAddress(family, out[0]!, out[1]!, out[2]!, out[3]!)).toBe(s);
      }),
      { numRuns: 5000 },
    );
  });

  it("when IPv4 text is parsed then only the exact dotted quad gets a key, and it is the address", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 4, maxLength: 4 }), (a) => {
        expect(parseCanonicalAddress(Array.from(a).join("."), out)).toBe(4);
        expect(Array.from(out)).toEqual([Buffer.from(a).readInt32BE(0), 0, 0, 0]);
      }),
    );
    for (const s of ["198.018.0.1", "256.0.0.1", "1.2.3", "1.2.3.4.5", "1..2.3", " 1.2.3.4", "1.2.3.4 "]) expect(parseCanonicalAddress(s, out), s).toBe(0);
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom(..."0123456789."), maxLength: 16 }), (s) => {
        if (parseCanonicalAddress(s, out) === 4) expect(formatAddress(4, out[0]!, 0, 0, 0)).toBe(s);
      }),
      { numRuns: 3000 },
    );
  });

  it("when a capture holds IPv4 and IPv6 knocks then each knock has the key of its text", () => {
    const knocks: ObservedKnock[] = [];
    parsePcapBuffer(fixture("en10mb.pcap"), (kn) => knocks.push(kn));
    expect(knocks.some((kn) => kn.src.includes(":"))).toBe(true);
    const fromText = new Int32Array(ADDRESS_WORDS);
    for (const kn of knocks) {
      const family = sourceKey(kn, out);
      expect(family).toBe(kn.src.includes(":") ? 6 : 4);
      expect(parseCanonicalAddress(kn.src, fromText)).toBe(family);
      expect(Array.from(out)).toEqual(Array.from(fromText));
    }
  });

  it("when any valid spelling of an address is made canonical then it is what inet_ntop prints, and other text is refused", () => {
    const spelling = fc.array(word, { minLength: 8, maxLength: 8 }).chain((ws) =>
      fc.constantFrom(
        ws.map((w) => w.toString(16)).join(":"),
        ws.map((w) => w.toString(16).toUpperCase().padStart(4, "0")).join(":"),
        v6(ws),
        `${ws
          .slice(0, 6)
          .map((w) => w.toString(16))
          .join(":")}:${ws[6]! >> 8}.${ws[6]! & 255}.${ws[7]! >> 8}.${ws[7]! & 255}`,
      ),
    );
    fc.assert(
      fc.property(spelling, (s) => {
        expect(canonicalAddress(s)).toEqual({ family: 6, address: new SocketAddress({ address: s, family: "ipv6" }).address });
      }),
      { numRuns: 2000 },
    );
    expect(canonicalAddress("198.18.0.1")).toEqual({ family: 4, address: "198.18.0.1" });
    for (const s of ["fe80::1%eth0", "198.018.0.1", "1.2.3.4.5", "::1 ", "", "1:2:3:4:5:6:7:8:9", "g::1", "1.2.3.4::"])
      expect(canonicalAddress(s), s).toBeUndefined();
    const random = fc.string({ unit: fc.constantFrom(..."0123456789abcdefABCDEF:.%"), maxLength: 46 });
    fc.assert(
      fc.property(random, (s) => {
        const family = isIP(s);
        const c = canonicalAddress(s);
        if (family === 0 || s.includes("%")) expect(c).toBeUndefined();
        else expect(c).toEqual({ family, address: new SocketAddress({ address: s, family: family === 4 ? "ipv4" : "ipv6" }).address });
      }),
      { numRuns: 5000 },
    );
  });
});
