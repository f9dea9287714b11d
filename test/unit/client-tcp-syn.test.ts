import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { addressBytes, buildSynSegment, internetChecksum, pseudoHeader } from "../../client/senders/tcp-syn.js";

describe("TCP SYN crafting", () => {
  it("when summing RFC 1071's example words then the checksum is the complement of 0xddf2", () => {
    // RFC 1071 §3: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
    expect(internetChecksum(Uint8Array.from([0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]))).toBe(~0xddf2 & 0xffff);
  });

  it("when IPv6 addresses are written in short forms then their bytes are the full form's", () => {
    expect(Buffer.from(addressBytes("fd18:18::2")).toString("hex")).toBe("fd180018000000000000000000000002");
    expect(Buffer.from(addressBytes("::1")).toString("hex")).toBe("00000000000000000000000000000001");
    expect(Buffer.from(addressBytes("::")).toString("hex")).toBe("0".repeat(32));
    expect(Buffer.from(addressBytes("::ffff:198.18.0.1")).toString("hex")).toBe("00000000000000000000ffffc6120001");
    expect(Buffer.from(addressBytes("fe80::1%eth0")).toString("hex")).toBe("fe800000000000000000000000000001");
    expect([...addressBytes("198.18.0.2")]).toEqual([198, 18, 0, 2]);
  });

  it("when any IPv6 address is compressed the way URLs print it then the bytes survive", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), (bytes) => {
        const words = [...Array(8).keys()].map((i) => ((bytes[i * 2]! << 8) | bytes[i * 2 + 1]!).toString(16));
        const compressed = new URL(`http://[${words.join(":")}]/`).hostname.slice(1, -1);
        expect([...addressBytes(compressed)]).toEqual([...bytes]);
      }),
    );
  });

  for (const [src, dst] of [
    ["198.18.0.1", "198.18.0.2"],
    ["fd18:18::1", "fd18:18::2"],
  ] as const) {
    it(`when a SYN from ${src} to ${dst} is built then it is a bare SYN whose checksum verifies`, () => {
      const seg = buildSynSegment(src, dst, { srcPort: 40000, dstPort: 34366, seq: 0xdeadbeef });
      expect(seg.length).toBe(20);
      expect(seg.readUInt16BE(0)).toBe(40000);
      expect(seg.readUInt16BE(2)).toBe(34366);
      expect(seg.readUInt32BE(4)).toBe(0xdeadbeef);
      expect(seg[12]! >> 4).toBe(5);
      expect(seg[13]).toBe(0x02);
      // A receiver sums pseudo-header and segment including the checksum and gets zero.
      expect(internetChecksum(pseudoHeader(src, dst, 6, seg.length), seg)).toBe(0);
    });
  }

  it("when anything in the segment changes then the checksum no longer verifies", () => {
    const seg = buildSynSegment("198.18.0.1", "198.18.0.2", { srcPort: 40000, dstPort: 34366, seq: 1 });
    seg.writeUInt16BE(34367, 2);
    expect(internetChecksum(pseudoHeader("198.18.0.1", "198.18.0.2", 6, seg.length), seg)).not.toBe(0);
  });
});
