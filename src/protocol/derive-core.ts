import { InvalidProfileError } from "../errors.js";
import type { KnockProfile } from "./profile.js";

/**
 * The derivation of docs/protocol.md "Ports" without a crypto backend: the caller brings HMAC-SHA256, as otplib's
 * plugins do. The CLI and the server pass node:crypto's (synchronous, derive.ts); the web page passes WebCrypto's
 * (asynchronous, web/crypto.ts). Both run this one sampling code, so the page cannot drift from the CLI.
 */
export type HmacSha256 = (key: Uint8Array, message: Uint8Array) => Uint8Array;
export type HmacSha256Async = (key: Uint8Array, message: Uint8Array) => Promise<Uint8Array>;

/** ASCII "tknock-v1" || 0x00: the domain separator of protocol v1. */
const DOMAIN = Uint8Array.from("tknock-v1\0", (c) => c.charCodeAt(0));
const MAX_BLOCKS = 256;
const WORDS_PER_BLOCK = 8; // a SHA-256 block is 32 bytes

/** One derivation: the message of block j, and the sampler the blocks feed. */
class PortSampler {
  readonly ports: number[] = [];
  readonly message: Uint8Array;
  private readonly n: number;
  private readonly limit: number;

  constructor(
    private readonly profile: KnockProfile,
    step: number,
    /** Another domain separator derives other ports from the same secret (SPA v1's port: src/protocol/spa/). */
    private readonly domain: Uint8Array = DOMAIN,
    private readonly knocks: number = profile.knocks,
  ) {
    if (!Number.isSafeInteger(step) || step < 0) throw new InvalidProfileError("step", `step ${step} is not a non-negative integer`);
    this.n = profile.portMax - profile.portMin + 1;
    this.limit = Math.floor(0x1_0000_0000 / this.n) * this.n;
    this.message = new Uint8Array(domain.length + 9);
    this.message.set(domain, 0);
    // The step as a 64-bit big-endian integer, without BigInt: a safe integer fits 53 bits.
    const view = new DataView(this.message.buffer);
    view.setUint32(domain.length, Math.floor(step / 0x1_0000_0000));
    view.setUint32(domain.length + 4, step >>> 0);
  }

  /** The message of block j: domain || step || j. */
  messageOf(j: number): Uint8Array {
    this.message[this.domain.length + 8] = j;
    return this.message;
  }

  /** Reads one HMAC block; true once the sequence is complete. */
  take(block: Uint8Array): boolean {
    const { portMin, exclude } = this.profile;
    const knocks = this.knocks;
    for (let i = 0; i < WORDS_PER_BLOCK; i++) {
      const o = i * 4;
      // 32-bit big-endian word; no DataView per block (the daemon derives on its packet path).
      const w = (((block[o] as number) << 24) | ((block[o + 1] as number) << 16) | ((block[o + 2] as number) << 8) | (block[o + 3] as number)) >>> 0;
      if (w >= this.limit) continue; // no modulo bias
      const p = portMin + (w % this.n);
      if (exclude.includes(p) || this.ports.includes(p)) continue;
      this.ports.push(p);
      if (this.ports.length === knocks) return true;
    }
    return false;
  }
}

function exhausted(knocks: number): InvalidProfileError {
  // Only reachable for profiles that validateProfile() rejects, or with vanishing probability.
  return new InvalidProfileError("ports", `could not derive ${knocks} ports from ${MAX_BLOCKS} blocks: check the port range and exclusions`);
}

/**
 * The ports of one step: HMAC-SHA256 keystream read as 32-bit big-endian words, rejection sampling against
 * LIMIT = floor(2^32 / N) * N so no port is favoured, exclusions and repeats skipped. Pure for a pure hmac.
 */
export function deriveSequenceWith(hmac: HmacSha256, profile: KnockProfile, step: number): number[] {
  const s = new PortSampler(profile, step);
  for (let j = 0; j < MAX_BLOCKS; j++) if (s.take(hmac(profile.secret, s.messageOf(j)))) return s.ports;
  throw exhausted(profile.knocks);
}

/**
 * deriveSequenceWith under another domain separator, `count` ports: the same keystream layout, rejection sampling
 * and exclusions (SPA v1 takes the first port under "tknock-spa-v1" || 0x00).
 */
export function derivePortsForDomainWith(hmac: HmacSha256, profile: KnockProfile, step: number, domain: Uint8Array, count: number): number[] {
  const s = new PortSampler(profile, step, domain, count);
  for (let j = 0; j < MAX_BLOCKS; j++) if (s.take(hmac(profile.secret, s.messageOf(j)))) return s.ports;
  throw exhausted(count);
}

/** deriveSequenceWith for an asynchronous HMAC (WebCrypto): the same blocks, the same sampling. */
export async function deriveSequenceAsync(hmac: HmacSha256Async, profile: KnockProfile, step: number): Promise<number[]> {
  const s = new PortSampler(profile, step);
  for (let j = 0; j < MAX_BLOCKS; j++) if (s.take(await hmac(profile.secret, s.messageOf(j)))) return s.ports;
  throw exhausted(profile.knocks);
}
