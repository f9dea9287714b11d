/**
 * A knock decoded from captured bytes. Its source stays in the form the matcher keys sources by (address.ts: a
 * family and four words, read straight from the packet); the text that decisions, logs and the firewall read is
 * made from it on first use. So on the capture path an address is never formatted only to be parsed back, and a
 * knock the matcher ignores costs no string at all. This is the pcap listener's fast path into the matcher:
 * ObservedKnock itself carries only the text, so any other listener (or a test) works unchanged.
 */
import type { KnockProto, ObservedKnock } from "../../src/ports.js";
import { addressWord, formatAddress, parseCanonicalAddress, type AddressFamily } from "./address.js";

export class CapturedKnock implements ObservedKnock {
  private text: string | undefined = undefined;

  constructor(
    readonly family: AddressFamily,
    readonly w0: number,
    readonly w1: number,
    readonly w2: number,
    readonly w3: number,
    readonly dstPort: number,
    readonly proto: KnockProto,
    readonly atMs: number,
    /** UDP only, when it may be an SPA packet: a copy of the datagram's payload. */
    readonly payload?: Uint8Array,
  ) {}

  get src(): string {
    return (this.text ??= formatAddress(this.family, this.w0, this.w1, this.w2, this.w3));
  }
}

/** The knock whose source address is the 4 (family 4) or 16 (family 6) bytes at b[srcOffset]. */
export function capturedKnock(
  b: Uint8Array,
  srcOffset: number,
  family: AddressFamily,
  dstPort: number,
  proto: KnockProto,
  atMs: number,
  payload?: Uint8Array,
): CapturedKnock {
  const o = srcOffset;
  return family === 4
    ? new CapturedKnock(4, addressWord(b, o), 0, 0, 0, dstPort, proto, atMs, payload)
    : new CapturedKnock(6, addressWord(b, o), addressWord(b, o + 4), addressWord(b, o + 8), addressWord(b, o + 12), dstPort, proto, atMs, payload);
}

/**
 * The address key of a knock's source in out[0..3]: a captured knock's own; else its text's, for canonical text
 * only, so one address has one key however the knock arrived and any other text stays a source of its own.
 * Returns the family, or 0 for a source known only by its text.
 */
export function sourceKey(k: ObservedKnock, out: Int32Array): AddressFamily | 0 {
  if (k instanceof CapturedKnock) {
    out[0] = k.w0;
    out[1] = k.w1;
    out[2] = k.w2;
    out[3] = k.w3;
    return k.family;
  }
  return parseCanonicalAddress(k.src, out);
}
