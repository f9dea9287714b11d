/**
 * SPA v1 per-window secrets (docs/protocol.md "SPA v1"): the destination port, the key id that names the client
 * in the clear, and the AES-256-GCM key. Each has its own label, so none of them says anything about another or
 * about the knock sequence of the same step.
 */
import { createHmac, hkdfSync } from "node:crypto";
import { derivePortsForDomainWith } from "../derive-core.js";
import { nodeHmacSha256 } from "../derive.js";
import type { KnockProfile } from "../profile.js";

/** ASCII "tknock-spa-v1" || 0x00: the port's keystream domain (the sequence uses "tknock-v1" || 0x00). */
export const SPA_PORT_DOMAIN = Buffer.from("tknock-spa-v1\0", "ascii");
/** ASCII "tknock-spa-v1-kid" || 0x00, followed by uint64_be(T). */
export const SPA_KEY_ID_LABEL = Buffer.from("tknock-spa-v1-kid\0", "ascii");
/** ASCII "tknock-spa-v1-key" || 0x00, followed by uint64_be(T): the HKDF info. */
export const SPA_KEY_LABEL = Buffer.from("tknock-spa-v1-key\0", "ascii");

export const SPA_KEY_ID_BYTES = 8;
export const SPA_KEY_BYTES = 32;

function withStep(label: Buffer, step: number): Buffer {
  const m = Buffer.allocUnsafe(label.length + 8);
  label.copy(m, 0);
  m.writeBigUInt64BE(BigInt(step), label.length);
  return m;
}

function checkStep(step: number): void {
  if (!Number.isSafeInteger(step) || step < 0) throw new RangeError(`step ${step} is not a non-negative integer`);
}

/** The SPA port of step T: the first port of the sequence derived under SPA_PORT_DOMAIN (same range, exclusions). */
export function spaPort(profile: KnockProfile, step: number): number {
  return derivePortsForDomainWith(nodeHmacSha256, profile, step, SPA_PORT_DOMAIN, 1)[0]!;
}

/** First 8 bytes of HMAC-SHA256(secret, "tknock-spa-v1-kid" || 0x00 || uint64_be(T)). */
export function spaKeyId(secret: Uint8Array, step: number): Buffer {
  checkStep(step);
  return createHmac("sha256", secret).update(withStep(SPA_KEY_ID_LABEL, step)).digest().subarray(0, SPA_KEY_ID_BYTES);
}

/** HKDF-SHA256 (RFC 5869) with the secret as input key material, an empty salt, info = label || uint64_be(T). */
export function spaKey(secret: Uint8Array, step: number): Buffer {
  checkStep(step);
  return Buffer.from(hkdfSync("sha256", secret, Buffer.alloc(0), withStep(SPA_KEY_LABEL, step), SPA_KEY_BYTES));
}
