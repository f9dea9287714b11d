import { generateTOTP, parse as parseOtpauth, URIParseError } from "@otplib/uri";
// The base32 plugin alone, not all of otplib: the client loads this module on every knock, and otplib's
// crypto plugins would add tens of ms to its start. newSecretBase32 loads otplib when a secret is made.
import { ScureBase32Plugin } from "@otplib/plugin-base32-scure";
import { InvalidProfileError, InvalidUriError } from "../errors.js";
import type { KnockProto } from "../ports.js";
import { isPort, PROFILE_LIMITS, validateProfile, type KnockProfile } from "./profile.js";

/** A profile as enrolled: the protocol parameters plus who it is for and where to knock. */
export type EnrolledProfile = KnockProfile & {
  readonly client: string;
  readonly host: string;
  /** Knock target when it differs from host (an address or another name). */
  readonly addr?: string;
  /** Ports the server opens on a valid knock. */
  readonly open: readonly number[];
};

const ISSUER = "tknock";
const PROTOCOL_VERSION = "1";
const base32 = new ScureBase32Plugin();

export function encodeSecret(secret: Uint8Array): string {
  return base32.encode(secret, { padding: false });
}

/** Decodes a base32 secret; throws InvalidUriError("secret") with no secret text in the message. */
export function decodeSecret(text: string): Uint8Array {
  const cleaned = text.replace(/[\s=]/g, "").toUpperCase();
  if (cleaned.length === 0 || !/^[A-Z2-7]+$/.test(cleaned)) {
    throw new InvalidUriError("secret", "parameter secret is not base32 (letters A-Z and digits 2-7)");
  }
  try {
    return base32.decode(cleaned);
  } catch (cause) {
    throw new InvalidUriError("secret", "parameter secret is not valid base32", { cause });
  }
}

/** A fresh random secret (otplib's CSPRNG), base32 without padding. */
export async function newSecretBase32(bytes: number = PROFILE_LIMITS.defaultSecretBytes): Promise<string> {
  const { generateSecret } = await import("otplib");
  return generateSecret({ length: bytes });
}

export function defaultProfileFields(open: readonly number[]): Omit<KnockProfile, "secret"> {
  return {
    periodSeconds: PROFILE_LIMITS.periodSeconds.default,
    knocks: PROFILE_LIMITS.knocks.default,
    portMin: PROFILE_LIMITS.portMin,
    portMax: PROFILE_LIMITS.portMax,
    exclude: [...open],
    proto: "tcp",
  };
}

/** Client and host names travel in the URI label `tknock:CLIENT@HOST`. */
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
const HOST_RE = /^[A-Za-z0-9:.\[\]_-]{1,253}$/;

export function isValidClientName(name: string): boolean {
  return NAME_RE.test(name);
}

export function formatProfileUri(p: EnrolledProfile): string {
  validateProfile(p);
  // otplib writes the standard part (label, secret, issuer, algorithm); tknock's own parameters follow.
  const base = generateTOTP({
    issuer: ISSUER,
    label: `${p.client}@${p.host}`,
    secret: encodeSecret(p.secret),
    algorithm: "sha256",
    digits: 6,
    period: p.periodSeconds,
  });
  const url = new URL(base);
  const q = url.searchParams;
  // otplib leaves out values equal to its defaults; tknock URIs always spell them out, in one order.
  q.delete("digits");
  q.delete("period");
  q.set("digits", "6");
  q.set("period", String(p.periodSeconds));
  q.set("v", PROTOCOL_VERSION);
  q.set("knocks", String(p.knocks));
  q.set("ports", `${p.portMin}-${p.portMax}`);
  q.set("exclude", p.exclude.join(","));
  q.set("proto", p.proto);
  q.set("open", p.open.join(","));
  if (p.addr !== undefined) q.set("addr", p.addr);
  return `otpauth://totp/${url.pathname.replace(/^\/+/, "").replace(/%40/g, "@")}?${q.toString().replace(/%2C/gi, ",")}`;
}

function bad(param: string, why: string): InvalidUriError {
  return new InvalidUriError(param, `parameter ${param} ${why}`);
}

function parseIntParam(q: URLSearchParams, name: string, fallback: number): number {
  const raw = q.get(name);
  if (raw === null) return fallback;
  if (!/^\d{1,6}$/.test(raw)) throw bad(name, `must be a whole number, got ${JSON.stringify(raw.slice(0, 20))}`);
  return Number(raw);
}

function parsePortList(q: URLSearchParams, name: string, fallback: readonly number[] | undefined, allowEmpty: boolean): number[] {
  const raw = q.get(name);
  if (raw === null) {
    if (fallback === undefined) throw bad(name, "is missing");
    return [...fallback];
  }
  if (raw.trim() === "") {
    if (allowEmpty) return [];
    throw bad(name, "is empty: give at least one port");
  }
  const ports = raw.split(",").map((s) => (/^\d{1,5}$/.test(s.trim()) ? Number(s.trim()) : NaN));
  if (!ports.every(isPort)) throw bad(name, `must be comma-separated port numbers (1..65535), got ${JSON.stringify(raw.slice(0, 40))}`);
  return [...new Set(ports)];
}

const URI_SHAPE = "expected otpauth://totp/tknock:CLIENT@HOST?secret=...";

/**
 * Maps an otplib parse error to the parameter it names. otplib's messages can quote the whole URI or a raw value
 * (secret included), so none of its text is echoed.
 */
function otplibParseError(cause: unknown): InvalidUriError {
  const text = cause instanceof URIParseError ? cause.message : "";
  const missing = /^Missing required parameter: (\w+)$/.exec(text)?.[1];
  if (missing !== undefined) return new InvalidUriError(missing, `parameter ${missing} is missing`, { cause });
  const invalid = /^Invalid value for parameter '([^']{1,64})'/.exec(text)?.[1];
  if (invalid === "type") return new InvalidUriError("type", `URI type must be totp: ${URI_SHAPE}`, { cause });
  if (invalid !== undefined) return new InvalidUriError(invalid, `parameter ${invalid} has an invalid value`, { cause });
  const where = /^Invalid otpauth URI: (?:Invalid URI encoding in (label|parameter '[^']{1,64}')|(label|parameter '[^']{1,64}') exceeds maximum length)/.exec(text);
  if (where) {
    const name = (where[1] ?? where[2] ?? "uri").replace(/^parameter '|'$/g, "");
    const why = where[1] !== undefined ? "has a bad %-encoding" : "is too long";
    return new InvalidUriError(name, `${name === "label" ? "label" : `parameter ${name}`} ${why}`, { cause });
  }
  if (/^Invalid otpauth URI: URI exceeds maximum length/.test(text)) {
    return new InvalidUriError("uri", "URI is too long (at most 2048 characters)", { cause });
  }
  return new InvalidUriError("uri", `URI cannot be parsed: ${URI_SHAPE}`, { cause });
}

/**
 * Parses an enrolment URI. Every missing or bad parameter is reported by name (InvalidUriError.parameter);
 * unknown parameters are ignored so URIs of later versions stay readable.
 */
export function parseProfileUri(uri: string): EnrolledProfile {
  const text = uri.trim();
  if (!text.toLowerCase().startsWith("otpauth://")) {
    throw new InvalidUriError("scheme", "not an otpauth:// URI: expected otpauth://totp/tknock:CLIENT@HOST?secret=...");
  }
  let parsed: ReturnType<typeof parseOtpauth>;
  try {
    parsed = parseOtpauth(text);
  } catch (cause) {
    throw otplibParseError(cause);
  }
  if (parsed.type !== "totp") throw bad("type", `must be totp, got ${parsed.type}`);
  let q: URLSearchParams;
  try {
    q = new URL(text).searchParams;
  } catch (cause) {
    throw new InvalidUriError("uri", "URI cannot be parsed", { cause });
  }
  const v = q.get("v");
  if (v !== null && v !== PROTOCOL_VERSION) throw bad("v", `is ${JSON.stringify(v)}: this tknock speaks protocol version 1`);
  if (parsed.params.algorithm !== undefined && parsed.params.algorithm !== "sha256") {
    throw bad("algorithm", `must be SHA256, got ${String(parsed.params.algorithm).toUpperCase()}`);
  }
  const issuer = parsed.params.issuer;
  if (issuer !== undefined && issuer !== ISSUER) throw bad("issuer", `must be ${ISSUER}, got ${JSON.stringify(issuer)}`);

  // Label: "tknock:CLIENT@HOST" (issuer prefix optional); the host is after the last '@'.
  const label = parsed.label.startsWith(`${ISSUER}:`) ? parsed.label.slice(ISSUER.length + 1) : parsed.label;
  const at = label.lastIndexOf("@");
  const client = at > 0 ? label.slice(0, at) : "";
  const host = at > 0 ? label.slice(at + 1) : "";
  if (!isValidClientName(client)) throw bad("label", `must be tknock:CLIENT@HOST with a client name of letters, digits, . _ -`);
  if (!HOST_RE.test(host)) throw bad("label", `must be tknock:CLIENT@HOST with a host name or address after '@'`);

  const secret = decodeSecret(parsed.params.secret);
  const periodSeconds = parseIntParam(q, "period", PROFILE_LIMITS.periodSeconds.default);
  const knocks = parseIntParam(q, "knocks", PROFILE_LIMITS.knocks.default);
  const range = q.get("ports");
  let portMin: number = PROFILE_LIMITS.portMin;
  let portMax: number = PROFILE_LIMITS.portMax;
  if (range !== null) {
    const m = /^(\d{1,5})-(\d{1,5})$/.exec(range);
    if (!m) throw bad("ports", `must be MIN-MAX, got ${JSON.stringify(range.slice(0, 20))}`);
    portMin = Number(m[1]);
    portMax = Number(m[2]);
  }
  const open = parsePortList(q, "open", undefined, false);
  const exclude = parsePortList(q, "exclude", open, true);
  const protoRaw = q.get("proto") ?? "tcp";
  if (protoRaw !== "tcp" && protoRaw !== "udp") throw bad("proto", `must be tcp or udp, got ${JSON.stringify(protoRaw.slice(0, 10))}`);
  const proto: KnockProto = protoRaw;
  const addr = q.get("addr");
  if (addr !== null && !HOST_RE.test(addr)) throw bad("addr", "must be a host name or an IP address");

  const profile: EnrolledProfile = {
    client,
    host,
    ...(addr !== null ? { addr } : {}),
    open,
    secret,
    periodSeconds,
    knocks,
    portMin,
    portMax,
    exclude,
    proto,
  };
  try {
    validateProfile(profile);
  } catch (err) {
    if (err instanceof InvalidProfileError) {
      throw new InvalidUriError(err.field, `parameter ${err.field}: ${err.message}`, { cause: err });
    }
    throw err;
  }
  return profile;
}
