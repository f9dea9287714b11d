import { InvalidUriError } from "../errors.js";

/**
 * The syntax layer of the enrolment URI grammar (docs/protocol.md section 7, rules 1 to 6): scheme, characters,
 * type, label and query fields. What the values mean is profile-uri.ts's business.
 */

export const MAX_URI_CHARS = 2048;

/** Parameter names a reader of protocol v1 knows; any other field is ignored. */
export const KNOWN_PARAMETERS = [
  "secret",
  "issuer",
  "algorithm",
  "digits",
  "period",
  "v",
  "knocks",
  "ports",
  "exclude",
  "proto",
  "open",
  "addr",
  "mode",
] as const;
export type KnownParameter = (typeof KNOWN_PARAMETERS)[number];

export type OtpauthParts = {
  /** The label as written, still percent-encoded. */
  readonly rawLabel: string;
  /** The first field of each known parameter, value still percent-encoded ("" for a field without "="). */
  readonly rawValues: ReadonlyMap<KnownParameter, string>;
};

const SHAPE = "expected otpauth://totp/tknock:CLIENT@HOST?secret=...";
/** Ends trimmed before parsing (copy and paste); any other whitespace is refused. */
const EDGE_WHITESPACE = /^[ \t\r\n]+|[ \t\r\n]+$/g;

/**
 * Quotes a piece of the URI in a message only when it is short: the shortest secret is 26 base32 characters, so
 * a quoted piece never holds a whole secret, whatever the user pasted where.
 */
export function quoteShort(text: string): string {
  return text.length <= 20 ? JSON.stringify(text) : `a value of ${text.length} characters`;
}

/** RFC 3986 percent-decoding of UTF-8; undefined for a bad %-escape. "+" stays "+" (no form encoding). */
export function percentDecode(raw: string): string | undefined {
  try {
    return decodeURIComponent(raw);
  } catch {
    return undefined;
  }
}

function isKnown(key: string): key is KnownParameter {
  return (KNOWN_PARAMETERS as readonly string[]).includes(key);
}

export function splitOtpauthUri(uri: string): OtpauthParts {
  const text = uri.replace(EDGE_WHITESPACE, "");

  const colon = text.indexOf(":");
  const scheme = colon < 0 ? "" : text.slice(0, colon);
  // RFC 3986 section 3.1: schemes are case-insensitive.
  if (scheme.toLowerCase() !== "otpauth") {
    const seen = /^[A-Za-z][A-Za-z0-9+.-]*$/.test(scheme) ? `, got ${quoteShort(scheme.toLowerCase())}` : "";
    throw new InvalidUriError("scheme", `URI scheme must be otpauth${seen}: ${SHAPE}`);
  }

  if (text.length > MAX_URI_CHARS) {
    throw new InvalidUriError("uri", `URI is ${text.length} characters, more than ${MAX_URI_CHARS}`);
  }
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x21 || code > 0x7e) {
      throw new InvalidUriError("uri", `URI holds whitespace, a control or a non-ASCII character at position ${i + 1}: percent-encode it`);
    }
    if (code === 0x23) throw new InvalidUriError("uri", `URI holds '#' at position ${i + 1}: an enrolment URI has no fragment`);
  }

  if (!text.startsWith("//", colon + 1)) throw new InvalidUriError("uri", `URI has no '//' after the scheme: ${SHAPE}`);
  const afterSlashes = colon + 3;
  const typeEnd = text.slice(afterSlashes).search(/[/?]/);
  const type = typeEnd < 0 ? text.slice(afterSlashes) : text.slice(afterSlashes, afterSlashes + typeEnd);
  // The type stands where RFC 3986 puts the host, which is case-insensitive (section 3.2.2).
  if (type.toLowerCase() !== "totp") throw new InvalidUriError("type", `URI type must be totp, got ${quoteShort(type)}: ${SHAPE}`);
  const labelStart = afterSlashes + type.length + 1;
  if (text[labelStart - 1] !== "/") throw new InvalidUriError("uri", `URI has no label after the type: ${SHAPE}`);

  const question = text.indexOf("?", labelStart);
  const rawLabel = question < 0 ? text.slice(labelStart) : text.slice(labelStart, question);
  const rawValues = new Map<KnownParameter, string>();
  const query = question < 0 ? "" : text.slice(question + 1);
  for (const field of query.split("&")) {
    if (field === "") continue;
    const eq = field.indexOf("=");
    const key = percentDecode(eq < 0 ? field : field.slice(0, eq));
    // An unknown key (one with a bad %-escape included) is ignored with its value; for a known one the first
    // field counts and later ones are not even decoded.
    if (key === undefined || !isKnown(key) || rawValues.has(key)) continue;
    rawValues.set(key, eq < 0 ? "" : field.slice(eq + 1));
  }
  return { rawLabel, rawValues };
}
