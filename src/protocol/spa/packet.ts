/**
 * SPA v1 packet codec (docs/protocol.md "SPA v1"): a 33-byte cleartext header, then the payload sealed with
 * AES-256-GCM under the window's key, the header as associated data.
 *
 *   version (1) = 0x01 || key id (8) || timestamp (8, uint64_be Unix ms) || nonce (16) || ciphertext || tag (16)
 *
 * Parsing never throws: every malformed input is a refusal with a reason, the daemon's input being anyone's.
 */
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { SPA_KEY_ID_BYTES, spaKey, spaKeyId } from "./keys.js";
import { decodeSpaPayload, encodeSpaPayload, MAX_SPA_PAYLOAD_BYTES, MIN_SPA_PAYLOAD_BYTES, type SpaPayload } from "./payload.js";

export const SPA_VERSION = 0x01;
export const SPA_NONCE_BYTES = 16;
/** AES-GCM takes the first 12 nonce bytes as its IV (the 96-bit IV of NIST SP 800-38D); all 16 are in the AAD. */
export const SPA_IV_BYTES = 12;
export const SPA_TAG_BYTES = 16;
export const SPA_HEADER_BYTES = 1 + SPA_KEY_ID_BYTES + 8 + SPA_NONCE_BYTES;
export const MIN_SPA_PACKET_BYTES = SPA_HEADER_BYTES + MIN_SPA_PAYLOAD_BYTES + SPA_TAG_BYTES;
export const MAX_SPA_PACKET_BYTES = SPA_HEADER_BYTES + MAX_SPA_PAYLOAD_BYTES + SPA_TAG_BYTES;

export type SpaHeader = {
  /** The key id as 16 lower-case hex digits (the server's table key). */
  readonly keyId: string;
  readonly timestampMs: number;
  /** The nonce as 32 lower-case hex digits (the replay cache's key). */
  readonly nonce: string;
};

export type SpaRefusalReason = "length" | "version" | "timestamp" | "tag" | "payload";
export type SpaRefusal = { readonly ok: false; readonly reason: SpaRefusalReason; readonly why: string };

export type SealInput = {
  readonly secret: Uint8Array;
  readonly step: number;
  readonly timestampMs: number;
  /** 16 bytes; default: fresh from the CSPRNG (fixed only in test vectors). */
  readonly nonce?: Uint8Array;
  readonly payload: SpaPayload;
};

/** A datagram that has the shape of an SPA v1 packet (version byte, length), to route it before any crypto. */
export function looksLikeSpa(b: Uint8Array): boolean {
  return b.length >= MIN_SPA_PACKET_BYTES && b.length <= MAX_SPA_PACKET_BYTES && b[0] === SPA_VERSION;
}

export function sealSpaPacket(input: SealInput): Buffer {
  const nonce = input.nonce ?? randomBytes(SPA_NONCE_BYTES);
  if (nonce.length !== SPA_NONCE_BYTES) throw new RangeError(`an SPA nonce is ${SPA_NONCE_BYTES} bytes`);
  if (!Number.isSafeInteger(input.timestampMs) || input.timestampMs < 0) throw new RangeError("an SPA timestamp is a non-negative integer of ms");
  const header = Buffer.alloc(SPA_HEADER_BYTES);
  header[0] = SPA_VERSION;
  spaKeyId(input.secret, input.step).copy(header, 1);
  header.writeBigUInt64BE(BigInt(input.timestampMs), 1 + SPA_KEY_ID_BYTES);
  header.set(nonce, 1 + SPA_KEY_ID_BYTES + 8);
  const cipher = createCipheriv("aes-256-gcm", spaKey(input.secret, input.step), nonce.subarray(0, SPA_IV_BYTES), { authTagLength: SPA_TAG_BYTES });
  cipher.setAAD(header);
  const sealed = Buffer.concat([cipher.update(encodeSpaPayload(input.payload)), cipher.final()]);
  return Buffer.concat([header, sealed, cipher.getAuthTag()]);
}

/** Reads the cleartext header; a refusal for a datagram that is not SPA v1 by its length or version. */
export function parseSpaHeader(b: Uint8Array): ({ readonly ok: true } & SpaHeader) | SpaRefusal {
  if (b.length < MIN_SPA_PACKET_BYTES || b.length > MAX_SPA_PACKET_BYTES) {
    return { ok: false, reason: "length", why: `${b.length} bytes, not ${MIN_SPA_PACKET_BYTES}..${MAX_SPA_PACKET_BYTES}` };
  }
  if (b[0] !== SPA_VERSION) return { ok: false, reason: "version", why: `version ${b[0]}` };
  // Read without BigInt or a Buffer wrapper: a flood of SPA-shaped datagrams goes through here, one per packet.
  const o = 1 + SPA_KEY_ID_BYTES;
  const hi = ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
  const lo = ((b[o + 4]! << 24) | (b[o + 5]! << 16) | (b[o + 6]! << 8) | b[o + 7]!) >>> 0;
  // Beyond 2^53 ms no clock of ours can be (and a Number would round): refused like any impossible time.
  if (hi > 0x1f_ffff) return { ok: false, reason: "timestamp", why: "timestamp beyond 2^53 ms" };
  return {
    ok: true,
    keyId: hex(b, 1, 1 + SPA_KEY_ID_BYTES),
    timestampMs: hi * 0x1_0000_0000 + lo,
    nonce: hex(b, 1 + SPA_KEY_ID_BYTES + 8, SPA_HEADER_BYTES),
  };
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

function hex(b: Uint8Array, from: number, to: number): string {
  let s = "";
  for (let i = from; i < to; i++) s += HEX[b[i]!]!;
  return s;
}

/**
 * Authenticates and decrypts a packet whose header parsed, under the window's key (spaKey); a refusal for a bad
 * tag (a wrong key, any changed bit) or a payload that breaks the layout.
 */
export function openSpaPacket(b: Uint8Array, key: Uint8Array): ({ readonly ok: true } & SpaPayload) | SpaRefusal {
  if (b.length < MIN_SPA_PACKET_BYTES || b.length > MAX_SPA_PACKET_BYTES) return { ok: false, reason: "length", why: `${b.length} bytes` };
  const header = b.subarray(0, SPA_HEADER_BYTES);
  const iv = b.subarray(1 + SPA_KEY_ID_BYTES + 8, 1 + SPA_KEY_ID_BYTES + 8 + SPA_IV_BYTES);
  const sealed = b.subarray(SPA_HEADER_BYTES, b.length - SPA_TAG_BYTES);
  const tag = b.subarray(b.length - SPA_TAG_BYTES);
  let plain: Buffer;
  try {
    const decipher = createDecipheriv("aes-256-gcm", key, iv, { authTagLength: SPA_TAG_BYTES });
    decipher.setAAD(header);
    decipher.setAuthTag(tag);
    plain = Buffer.concat([decipher.update(sealed), decipher.final()]);
  } catch {
    return { ok: false, reason: "tag", why: "authentication failed" };
  }
  const p = decodeSpaPayload(plain);
  if (!p.ok) return { ok: false, reason: "payload", why: p.why };
  return p;
}
