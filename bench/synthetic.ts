/**
 * Synthetic inputs for the pure benchmarks: a pcap capture of SYNs built in memory (classic pcap, EN10MB), and
 * packet streams for the matcher. Deterministic (seeded), so two runs measure the same work.
 */

/** Mulberry32: a tiny seeded PRNG; Math.random would make runs differ. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const GLOBAL_HEADER_BYTES = 24;
export const RECORD_HEADER_BYTES = 16;
const ETH_BYTES = 14;
const IPV4_BYTES = 20;
/** A Linux SYN: 20-byte header + 20 bytes of options (MSS, SACK permitted, timestamps, NOP, window scale). */
const TCP_SYN_BYTES = 40;
export const SYN_FRAME_BYTES = ETH_BYTES + IPV4_BYTES + TCP_SYN_BYTES;

export type SyntheticCapture = {
  readonly data: Buffer;
  readonly packets: number;
  readonly recordBytes: number;
};

/**
 * `packets` EN10MB records of IPv4 TCP SYNs to `dst` on random ports of [portMin, portMax], from random sources in
 * 198.18.0.0/15 (131072 addresses: what a spoofed flood in the lab looks like, so the parser's address cache misses
 * as it would). Microsecond timestamps 2 us apart.
 */
export function buildSynCapture(packets: number, opts: { portMin: number; portMax: number; seed: number; startMs: number }): SyntheticCapture {
  const recordBytes = RECORD_HEADER_BYTES + SYN_FRAME_BYTES;
  const data = Buffer.alloc(GLOBAL_HEADER_BYTES + packets * recordBytes);
  data.writeUInt32LE(0xa1b2c3d4, 0);
  data.writeUInt16LE(2, 4);
  data.writeUInt16LE(4, 6);
  data.writeUInt32LE(128, 16); // snaplen, as the daemon's tcpdump uses
  data.writeUInt32LE(1, 20); // LINKTYPE_ETHERNET

  // One template frame; per record only the source, ports, checksums and time change.
  const frame = Buffer.alloc(SYN_FRAME_BYTES);
  Buffer.from([0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1]).copy(frame, 0);
  frame.writeUInt16BE(0x0800, 12);
  const ip = ETH_BYTES;
  frame[ip] = 0x45;
  frame.writeUInt16BE(IPV4_BYTES + TCP_SYN_BYTES, ip + 2);
  frame.writeUInt16BE(0x4000, ip + 6); // DF
  frame[ip + 8] = 64;
  frame[ip + 9] = 6;
  Buffer.from([198, 18, 0, 2]).copy(frame, ip + 16);
  const tcp = ip + IPV4_BYTES;
  frame[tcp + 12] = (TCP_SYN_BYTES / 4) << 4;
  frame[tcp + 13] = 0x02;
  frame.writeUInt16BE(64240, tcp + 14);
  Buffer.from([2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7]).copy(frame, tcp + 20);

  const rnd = seededRandom(opts.seed);
  const span = opts.portMax - opts.portMin + 1;
  let off = GLOBAL_HEADER_BYTES;
  for (let i = 0; i < packets; i++) {
    const atUs = opts.startMs * 1000 + i * 2;
    data.writeUInt32LE(Math.floor(atUs / 1e6), off);
    data.writeUInt32LE(atUs % 1e6, off + 4);
    data.writeUInt32LE(SYN_FRAME_BYTES, off + 8);
    data.writeUInt32LE(SYN_FRAME_BYTES, off + 12);
    const f = off + RECORD_HEADER_BYTES;
    frame.copy(data, f);
    const src = 0xc6120000 + Math.floor(rnd() * 131072);
    data.writeUInt32BE(src >>> 0, f + ip + 12);
    data.writeUInt16BE(1024 + Math.floor(rnd() * 64000), f + tcp);
    data.writeUInt16BE(opts.portMin + Math.floor(rnd() * span), f + tcp + 2);
    data.writeUInt32BE(Math.floor(rnd() * 0xffffffff), f + tcp + 4);
    data.writeUInt16BE(ipChecksum(data, f + ip), f + ip + 10);
    off += recordBytes;
  }
  return { data, packets, recordBytes };
}

function ipChecksum(b: Buffer, off: number): number {
  let sum = 0;
  for (let i = 0; i < IPV4_BYTES; i += 2) if (i !== 10) sum += b.readUInt16BE(off + i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}
