import { describe, expect, it } from "vitest";
import { LINKTYPE_RAW, parsePcapBuffer } from "../../server/packets/pcap.js";
import type { ObservedKnock } from "../../src/ports.js";
import { SPA_VECTORS } from "../vectors/spa-v1.js";

/** A RAW-link pcap of one IPv4 UDP datagram from 198.18.0.1 to port 12219, cut to `snaplen` bytes. */
function capture(payload: Buffer, snaplen = 65535): Buffer {
  const ip = Buffer.alloc(28);
  ip[0] = 0x45;
  ip.writeUInt16BE(28 + payload.length, 2);
  ip[8] = 64;
  ip[9] = 17;
  Buffer.from([198, 18, 0, 1]).copy(ip, 12);
  Buffer.from([198, 18, 0, 2]).copy(ip, 16);
  ip.writeUInt16BE(40000, 20);
  ip.writeUInt16BE(12219, 22);
  ip.writeUInt16BE(8 + payload.length, 24);
  const frame = Buffer.concat([ip, payload]);
  const kept = frame.subarray(0, Math.min(snaplen, frame.length));
  const global = Buffer.alloc(24);
  global.writeUInt32LE(0xa1b2c3d4, 0);
  global.writeUInt16LE(2, 4);
  global.writeUInt16LE(4, 6);
  global.writeUInt32LE(snaplen, 16);
  global.writeUInt32LE(LINKTYPE_RAW, 20);
  const rec = Buffer.alloc(16);
  rec.writeUInt32LE(1_700_000_000, 0);
  rec.writeUInt32LE(kept.length, 8);
  rec.writeUInt32LE(frame.length, 12);
  return Buffer.concat([global, rec, kept]);
}

function knocks(data: Buffer): ObservedKnock[] {
  const out: ObservedKnock[] = [];
  parsePcapBuffer(data, (k) => out.push(k));
  return out;
}

describe("SPA datagrams in the capture", () => {
  const spa = Buffer.from(SPA_VECTORS[0]!.packetHex, "hex");

  it("when a whole SPA datagram is captured then the knock carries its payload, copied out of the capture buffer", () => {
    const data = capture(spa);
    const [k] = knocks(data);
    expect(k).toMatchObject({ src: "198.18.0.1", dstPort: 12219, proto: "udp" });
    expect(Buffer.from(k!.payload!).equals(spa)).toBe(true);
    data.fill(0); // the listener reuses its buffers
    expect(Buffer.from(k!.payload!).equals(spa)).toBe(true);
  });

  it("when the snaplen cut the datagram then the knock carries no payload (never a partial one)", () => {
    const [k] = knocks(capture(spa, 28 + spa.length - 1));
    expect(k).toMatchObject({ dstPort: 12219, proto: "udp" });
    expect(k!.payload).toBeUndefined();
  });

  it("when a UDP knock of the sequence protocol is captured then it carries no payload", () => {
    const [k] = knocks(capture(Buffer.from([0])));
    expect(k!.payload).toBeUndefined();
  });
});
