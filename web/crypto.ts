/**
 * WebCrypto for the page: the HMAC-SHA256 that src/protocol/derive-core.ts runs on, and the passphrase
 * protection of the stored profiles (PBKDF2-SHA256, then AES-256-GCM).
 */
import type { HmacSha256Async } from "../src/protocol/derive-core.js";

const subtle = (): SubtleCrypto => {
  // WebCrypto exists only in a secure context: https, localhost or file://.
  if (globalThis.crypto?.subtle === undefined) throw new Error("this browser offers no WebCrypto here: open the page over https (or from a file)");
  return globalThis.crypto.subtle;
};

/** One imported key per secret: importKey costs more than the HMAC itself. */
const hmacKeys = new WeakMap<Uint8Array, Promise<CryptoKey>>();

export const webHmacSha256: HmacSha256Async = async (key, message) => {
  let k = hmacKeys.get(key);
  if (k === undefined) {
    k = subtle().importKey("raw", key as BufferSource, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    hmacKeys.set(key, k);
  }
  return new Uint8Array(await subtle().sign("HMAC", await k, message as BufferSource));
};

/** OWASP's 2023 figure for PBKDF2-HMAC-SHA256: about half a second on a phone, once per unlock. */
export const PBKDF2_ITERATIONS = 600_000;

export type Sealed = { readonly kdf: "PBKDF2-SHA256"; readonly iterations: number; readonly salt: string; readonly iv: string; readonly data: string };

const b64 = (bytes: Uint8Array): string => btoa(String.fromCharCode(...bytes));
const unb64 = (text: string): Uint8Array => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));

export async function deriveKey(passphrase: string, salt: Uint8Array, iterations: number): Promise<CryptoKey> {
  const base = await subtle().importKey("raw", new TextEncoder().encode(passphrase), "PBKDF2", false, ["deriveKey"]);
  return subtle().deriveKey({ name: "PBKDF2", hash: "SHA-256", salt: salt as BufferSource, iterations }, base, { name: "AES-GCM", length: 256 }, false, [
    "encrypt",
    "decrypt",
  ]);
}

export function newSalt(): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(16));
}

export async function seal(key: CryptoKey, salt: Uint8Array, iterations: number, plain: string): Promise<Sealed> {
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const data = new Uint8Array(await subtle().encrypt({ name: "AES-GCM", iv }, key, new TextEncoder().encode(plain)));
  return { kdf: "PBKDF2-SHA256", iterations, salt: b64(salt), iv: b64(iv), data: b64(data) };
}

export function saltOf(s: Sealed): Uint8Array {
  return unb64(s.salt);
}

/** Decrypts; a wrong passphrase fails AES-GCM's tag check and says so. */
export async function open(key: CryptoKey, s: Sealed): Promise<string> {
  try {
    const plain = await subtle().decrypt({ name: "AES-GCM", iv: unb64(s.iv) as BufferSource }, key, unb64(s.data) as BufferSource);
    return new TextDecoder().decode(plain);
  } catch {
    throw new Error("wrong passphrase (or a damaged backup)");
  }
}
