import { isIP } from "node:net";

/** RFC 9293 §3.1: a 20-byte TCP header, no options. */
export const TCP_HEADER_BYTES = 20;
const SYN = 0x02;
const WINDOW = 64240;

export type SynFields = { readonly srcPort: number; readonly dstPort: number; readonly seq: number };

/** Internet checksum (RFC 1071): one's-complement sum of 16-bit big-endian words, folded and inverted. */
export function internetChecksum(...parts: readonly Uint8Array[]): number {
  let sum = 0;
  for (const part of parts) {
    // Every part but the last has an even length here (pseudo-headers, headers), so words never straddle parts.
    for (let i = 0; i < part.length; i += 2) sum += ((part[i] ?? 0) << 8) | (part[i + 1] ?? 0);
  }
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** Address bytes of a textual IPv4 or IPv6 address (RFC 4291 §2.2 forms, including ::ffff:a.b.c.d). */
export function addressBytes(address: string): Uint8Array {
  const family = isIP(address);
  if (family === 4) return Uint8Array.from(address.split(".").map(Number));
  if (family !== 6) throw new Error(`not an IP address: ${address}`);
  let text = address.split("%")[0] ?? address; // a zone id is not part of the address
  const out = new Uint8Array(16);
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  let tailWords: number[] = [];
  if (dotted?.[1] !== undefined) {
    const v4 = dotted[1].split(".").map(Number);
    tailWords = [((v4[0] ?? 0) << 8) | (v4[1] ?? 0), ((v4[2] ?? 0) << 8) | (v4[3] ?? 0)];
    text = text.slice(0, -dotted[1].length) + "0:0";
  }
  const [head = "", tail] = text.split("::");
  const parse = (s: string): number[] => (s === "" ? [] : s.split(":").map((w) => parseInt(w, 16)));
  const headWords = parse(head);
  const tailParsed = tail === undefined ? [] : parse(tail);
  const words = [...headWords, ...new Array<number>(8 - headWords.length - tailParsed.length).fill(0), ...tailParsed];
  if (tailWords.length === 2) words.splice(6, 2, ...tailWords);
  words.forEach((w, i) => {
    out[i * 2] = w >> 8;
    out[i * 2 + 1] = w & 0xff;
  });
  return out;
}

/** The pseudo-header the TCP checksum covers: RFC 9293 §3.1 (IPv4), RFC 8200 §8.1 (IPv6). */
export function pseudoHeader(src: string, dst: string, protocol: number, length: number): Uint8Array {
  const s = addressBytes(src);
  const d = addressBytes(dst);
  if (s.length !== d.length) throw new Error("source and destination differ in address family");
  if (s.length === 4) {
    const b = Buffer.alloc(12);
    b.set(s, 0);
    b.set(d, 4);
    b[9] = protocol;
    b.writeUInt16BE(length, 10);
    return b;
  }
  const b = Buffer.alloc(40);
  b.set(s, 0);
  b.set(d, 16);
  b.writeUInt32BE(length, 32);
  b[39] = protocol;
  return b;
}

/** One TCP SYN segment (no IP header: the kernel adds it), checksum included. */
export function buildSynSegment(src: string, dst: string, f: SynFields): Buffer {
  const seg = Buffer.alloc(TCP_HEADER_BYTES);
  seg.writeUInt16BE(f.srcPort, 0);
  seg.writeUInt16BE(f.dstPort, 2);
  seg.writeUInt32BE(f.seq >>> 0, 4);
  seg.writeUInt32BE(0, 8); // ack
  seg[12] = (TCP_HEADER_BYTES / 4) << 4; // data offset in 32-bit words
  seg[13] = SYN;
  seg.writeUInt16BE(WINDOW, 14);
  seg.writeUInt16BE(internetChecksum(pseudoHeader(src, dst, 6, seg.length), seg), 16);
  return seg;
}
