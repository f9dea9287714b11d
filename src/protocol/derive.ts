import { createHmac } from "node:crypto";
import { InvalidProfileError } from "../errors.js";
import type { KnockProfile } from "./profile.js";
import { stepAt } from "./window.js";

/** ASCII "tknock-v1" || 0x00: the domain separator of protocol v1. */
const DOMAIN = Buffer.from("tknock-v1\0", "ascii");
const MAX_BLOCKS = 256;
const WORDS_PER_BLOCK = 8; // a SHA-256 block is 32 bytes

/**
 * The ports of one step (docs/protocol.md "Ports"): HMAC-SHA256 keystream read as 32-bit big-endian words,
 * rejection sampling against LIMIT = floor(2^32 / N) * N so no port is favoured, exclusions and repeats skipped.
 * Pure: the same profile and step always give the same sequence.
 */
export function deriveSequence(profile: KnockProfile, step: number): number[] {
  return derivePortsForDomain(profile, step, DOMAIN, profile.knocks);
}

/**
 * The port selection of deriveSequence under another domain separator (SPA v1 derives its port with its own, see
 * src/protocol/spa/): the same keystream layout, rejection sampling and exclusions, `count` ports.
 */
export function derivePortsForDomain(profile: KnockProfile, step: number, domain: Uint8Array, count: number): number[] {
  if (!Number.isSafeInteger(step) || step < 0) throw new InvalidProfileError("step", `step ${step} is not a non-negative integer`);
  const { portMin } = profile;
  const knocks = count;
  const n = profile.portMax - portMin + 1;
  const limit = Math.floor(0x1_0000_0000 / n) * n;
  const excluded = profile.exclude;
  const ports: number[] = [];
  const message = Buffer.allocUnsafe(domain.length + 9);
  message.set(domain, 0);
  message.writeBigUInt64BE(BigInt(step), domain.length);
  for (let j = 0; j < MAX_BLOCKS; j++) {
    message[domain.length + 8] = j;
    const block = createHmac("sha256", profile.secret).update(message).digest();
    for (let i = 0; i < WORDS_PER_BLOCK; i++) {
      const w = block.readUInt32BE(i * 4);
      if (w >= limit) continue; // no modulo bias
      const p = portMin + (w % n);
      if (excluded.includes(p) || ports.includes(p)) continue;
      ports.push(p);
      if (ports.length === knocks) return ports;
    }
  }
  // Only reachable for profiles that validateProfile() rejects, or with vanishing probability.
  throw new InvalidProfileError("ports", `could not derive ${knocks} ports from ${MAX_BLOCKS} blocks: check the port range and exclusions`);
}

/** The step and ports in force at a given time. */
export function sequenceAt(profile: KnockProfile, unixMs: number): { step: number; ports: number[] } {
  const step = stepAt(unixMs, profile.periodSeconds);
  return { step, ports: deriveSequence(profile, step) };
}
