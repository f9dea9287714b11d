/**
 * The one form the server keeps a source address in, from the captured bytes to the matcher's key: a family (4 or
 * 6) and 128 bits as four 32-bit words (IPv4: the address in the first word, zeros after). Text is made from it
 * (formatAddress) where a person or the firewall reads it, and parsed into it only where an address arrives as
 * text (a knock that did not come from a capture, a grant handed to a firewall adapter).
 *
 * The text is what inet_ntop(3) prints, and so what `nft` lists: dotted quad; IPv6 as RFC 5952 section 4
 * (lowercase, no leading zeros, the longest run of two or more zero groups as "::", the first on a tie) with a
 * dotted-quad tail for IPv4-mapped and -compatible addresses.
 */

export type AddressFamily = 4 | 6;

/** Words of an address key (Int32Array of this length). */
export const ADDRESS_WORDS = 4;

/** Longest texts: "255.255.255.255" and "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255". */
const MAX_V4_TEXT = 15;
const MAX_TEXT = 45;

const DIGIT_0 = 48;
const DOT = 46;

/** Word i of an address key is the big-endian 32 bits at b[off + 4 * i] of the address's bytes. */
export function addressWord(b: Uint8Array, off: number): number {
  return (b[off]! << 24) | (b[off + 1]! << 16) | (b[off + 2]! << 8) | b[off + 3]!;
}

/** The canonical text of an address key (see the header). */
export function formatAddress(family: AddressFamily, w0: number, w1: number, w2: number, w3: number): string {
  return family === 4 ? formatIPv4(w0) : formatIPv6([w0 >>> 16, w0 & 0xffff, w1 >>> 16, w1 & 0xffff, w2 >>> 16, w2 & 0xffff, w3 >>> 16, w3 & 0xffff], w3);
}

/** The decimal text of every octet, made once: formatting an address then only joins four strings. */
const OCTETS: readonly string[] = Array.from({ length: 256 }, (_, i) => String(i));

function formatIPv4(w: number): string {
  return `${OCTETS[w >>> 24]!}.${OCTETS[(w >>> 16) & 255]!}.${OCTETS[(w >>> 8) & 255]!}.${OCTETS[w & 255]!}`;
}

function formatIPv6(g: readonly number[], low32: number): string {
  const [zeroBase, zeroLen] = longestZeroRun(g);
  // ::a.b.c.d (compatible) and ::ffff:a.b.c.d (mapped): the cases inet_ntop prints with a dotted-quad tail.
  const dottedTail = zeroBase === 0 && (zeroLen === 6 || (zeroLen === 5 && g[5] === 0xffff));
  let s = "";
  for (let i = 0; i < 8; i++) {
    if (i === zeroBase) {
      s += "::";
      i += zeroLen - 1;
      continue;
    }
    if (i !== 0 && i !== zeroBase + zeroLen) s += ":";
    if (i === 6 && dottedTail) return s + formatIPv4(low32);
    s += g[i]!.toString(16);
  }
  return s;
}

/** [first group, length] of the longest run of two or more zero groups, the first on a tie; [-1, 0] if none. */
function longestZeroRun(g: readonly number[]): [number, number] {
  let base = -1;
  let len = 0;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > len) {
      base = i;
      len = j - i;
    }
    i = j;
  }
  return len >= 2 ? [base, len] : [-1, 0];
}

/**
 * The key of an address written in any valid spelling (IPv4 dotted quad without leading zeros; IPv6 in hex of
 * either case, "::" at most once, optionally with a dotted-quad tail; no zone id), in out[0..3]. Returns its
 * family, or 0 for anything else (out is then undefined).
 */
export function parseAddress(text: string, out: Int32Array): AddressFamily | 0 {
  if (text.length <= MAX_V4_TEXT) {
    const v4 = dottedQuadAt(text, 0);
    if (v4 >= 0) {
      out[0] = v4 | 0;
      out[1] = 0;
      out[2] = 0;
      out[3] = 0;
      return 4;
    }
  }
  return text.length <= MAX_TEXT && parseIPv6(text, out) ? 6 : 0;
}

/** parseAddress for the canonical text only: each address has exactly one text that gets its key. */
export function parseCanonicalAddress(text: string, out: Int32Array): AddressFamily | 0 {
  const family = parseAddress(text, out);
  // A dotted quad without leading zeros has one spelling; IPv6 text is compared with what formatAddress prints.
  if (family === 6 && formatAddress(6, out[0]!, out[1]!, out[2]!, out[3]!) !== text) return 0;
  return family;
}

/** The canonical text and family of an address in any valid spelling (see parseAddress), or undefined. */
export function canonicalAddress(text: string): { family: AddressFamily; address: string } | undefined {
  const w = new Int32Array(ADDRESS_WORDS);
  const family = parseAddress(text, w);
  return family === 0 ? undefined : { family, address: formatAddress(family, w[0]!, w[1]!, w[2]!, w[3]!) };
}

/** The dotted quad starting at s[from] and running to the end, as an unsigned 32-bit number, or -1. */
function dottedQuadAt(s: string, from: number): number {
  const n = s.length;
  if (n - from < 7 || n - from > MAX_V4_TEXT) return -1;
  let value = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (let i = from; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c === DOT) {
      if (digits === 0 || dots === 3) return -1;
      value = value * 256 + octet;
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
  return value * 256 + octet;
}

function parseIPv6(s: string, out: Int32Array): boolean {
  const gap = s.indexOf("::");
  if (gap >= 0 && s.indexOf("::", gap + 1) >= 0) return false;
  const head = gap < 0 ? s : s.slice(0, gap);
  const tail = gap < 0 ? "" : s.slice(gap + 2);
  const groups: number[] = [];
  const headGroups = parseGroups(head, groups, gap < 0);
  if (headGroups < 0 || parseGroups(tail, groups, true) < 0) return false;
  if (gap < 0 ? groups.length !== 8 : groups.length > 7) return false;
  const g = [...groups.slice(0, headGroups), ...new Array<number>(8 - groups.length).fill(0), ...groups.slice(headGroups)];
  for (let i = 0; i < 4; i++) out[i] = (g[2 * i]! << 16) | g[2 * i + 1]!;
  return true;
}

/**
 * Appends the groups of a ":"-separated run of 1-4 hex digits ("" has none); the last may be a dotted quad (two
 * groups) where `last` says the run ends the address. Returns the number appended, or -1 when malformed.
 */
function parseGroups(run: string, groups: number[], last: boolean): number {
  if (run === "") return 0;
  const parts = run.split(":");
  const before = groups.length;
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!;
    if (last && i === parts.length - 1 && part.includes(".")) {
      const v4 = dottedQuadAt(part, 0);
      if (v4 < 0) return -1;
      groups.push(v4 >>> 16, v4 & 0xffff);
    } else if (/^[0-9A-Fa-f]{1,4}$/.test(part)) {
      groups.push(parseInt(part, 16));
    } else {
      return -1;
    }
  }
  return groups.length - before;
}
