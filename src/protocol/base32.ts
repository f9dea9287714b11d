/**
 * The base32 of enrolment secrets (docs/protocol.md section 7, rule 9): the RFC 4648 section 6 alphabet in
 * either case, trailing "=" ignored whatever their number, and only canonical encodings (RFC 4648 section 3.5
 * lets a decoder refuse non-zero unused bits; refusing them gives every secret exactly one spelling).
 */
export type Base32Result = { readonly ok: true; readonly bytes: Uint8Array } | { readonly ok: false; readonly why: string };

/** The value of one base32 character, -1 outside the alphabet. ASCII only: toUpperCase would turn "ß" into "SS". */
function valueOf(code: number): number {
  if (code >= 0x41 && code <= 0x5a) return code - 0x41;
  if (code >= 0x61 && code <= 0x7a) return code - 0x61;
  if (code >= 0x32 && code <= 0x37) return code - 0x32 + 26;
  return -1;
}

/** Decodes strictly; `why` never quotes the text, which is a secret. */
export function decodeBase32(text: string): Base32Result {
  const body = text.replace(/=+$/, "");
  if (body.length === 0) return { ok: false, why: "is empty" };
  const values: number[] = [];
  for (let i = 0; i < body.length; i++) {
    const value = valueOf(body.charCodeAt(i));
    if (value < 0) {
      return { ok: false, why: body[i] === "=" ? "has '=' before its end" : "holds a character outside base32 (letters A-Z, digits 2-7)" };
    }
    values.push(value);
  }
  // 2, 4, 5, 7 or 0 characters past a multiple of 8 end on a whole byte; 1, 3 or 6 cannot.
  if ([1, 3, 6].includes(body.length % 8)) {
    return { ok: false, why: `has ${body.length} base32 characters, a length no byte string encodes` };
  }
  const bytes = new Uint8Array(Math.floor((body.length * 5) / 8));
  let acc = 0;
  let bits = 0;
  let at = 0;
  for (const value of values) {
    acc = ((acc << 5) | value) & 0xfff;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      bytes[at++] = (acc >> bits) & 0xff;
    }
  }
  if ((acc & ((1 << bits) - 1)) !== 0) {
    return { ok: false, why: "has non-zero unused bits in its last character (not a canonical encoding)" };
  }
  return { ok: true, bytes };
}
