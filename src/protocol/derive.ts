import { createHmac } from "node:crypto";
import { deriveSequenceWith, type HmacSha256 } from "./derive-core.js";
import type { KnockProfile } from "./profile.js";
import { stepAt } from "./window.js";

/** node:crypto's HMAC-SHA256, synchronous: the CLI and the server derive on every knock and packet. */
export const nodeHmacSha256: HmacSha256 = (key, message) => createHmac("sha256", key).update(message).digest();

/**
 * The ports of one step (docs/protocol.md "Ports"), with node:crypto; derive-core.ts holds the algorithm.
 * Pure: the same profile and step always give the same sequence.
 */
export function deriveSequence(profile: KnockProfile, step: number): number[] {
  return deriveSequenceWith(nodeHmacSha256, profile, step);
}

/** The step and ports in force at a given time. */
export function sequenceAt(profile: KnockProfile, unixMs: number): { step: number; ports: number[] } {
  const step = stepAt(unixMs, profile.periodSeconds);
  return { step, ports: deriveSequence(profile, step) };
}
