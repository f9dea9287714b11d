import { generateTOTP } from "@otplib/uri";
// The base32 plugin alone, not all of otplib: the client loads this module on every knock, and otplib's
// crypto plugins would add tens of ms to its start. newSecretBase32 loads otplib when a secret is made.
import { ScureBase32Plugin } from "@otplib/plugin-base32-scure";
import { InvalidProfileError, InvalidUriError } from "../errors.js";
import type { KnockProto } from "../ports.js";
import { decodeBase32 } from "./base32.js";
import { percentDecode, quoteShort, splitOtpauthUri, type KnownParameter } from "./otpauth-uri.js";
import { isPort } from "../port-number.js";
import { PROFILE_LIMITS, validateProfile, type KnockProfile } from "./profile.js";
import { isKnockMode, type KnockMode } from "./spa/mode.js";

/** A profile as enrolled: the protocol parameters plus who it is for and where to knock. */
export type EnrolledProfile = KnockProfile & {
  readonly client: string;
  readonly host: string;
  /** Knock target when it differs from host (an address or another name). */
  readonly addr?: string;
  /** Ports the server opens on a valid knock. */
  readonly open: readonly number[];
  /** How the client knocks (docs/protocol.md "SPA v1"); absent: the sequence only. */
  readonly mode?: KnockMode;
};

const ISSUER = "tknock";
const PROTOCOL_VERSION = "1";
const base32 = new ScureBase32Plugin();

export function encodeSecret(secret: Uint8Array): string {
  return base32.encode(secret, { padding: false });
}

/**
 * Decodes a base32 secret by the grammar's rule (docs/protocol.md section 7); throws InvalidUriError("secret")
 * with no secret text in the message.
 */
export function decodeSecret(text: string): Uint8Array {
  const r = decodeBase32(text);
  if (!r.ok) throw new InvalidUriError("secret", `parameter secret ${r.why}`);
  return r.bytes;
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
const HOST_RE = /^[A-Za-z0-9:.[\]_-]{1,253}$/;

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
  if (p.mode !== undefined && p.mode !== "sequence") q.set("mode", p.mode);
  return `otpauth://totp/${url.pathname.replace(/^\/+/, "").replace(/%40/g, "@")}?${q.toString().replace(/%2C/gi, ",")}`;
}

function bad(param: string, why: string): InvalidUriError {
  return new InvalidUriError(param, `parameter ${param} ${why}`);
}

/** docs/protocol.md section 7, rule 8: no sign, no leading zero, no space; then the value's range. */
function uintIn(name: KnownParameter, value: string, min: number, max: number): number {
  const n = /^(0|[1-9][0-9]*)$/.test(value) ? Number(value) : NaN;
  if (!(n >= min && n <= max)) {
    throw bad(name, `must be a whole number from ${min} to ${max} (digits only, no leading zero), got ${quoteShort(value)}`);
  }
  return n;
}

function portList(name: "exclude" | "open", value: string): number[] {
  const ports: number[] = [];
  for (const item of value.split(",")) {
    const n = /^(0|[1-9][0-9]*)$/.test(item) ? Number(item) : NaN;
    if (!isPort(n)) throw bad(name, `must be comma-separated port numbers 1..65535 (digits only), got ${quoteShort(value)}`);
    if (!ports.includes(n)) ports.push(n);
  }
  return ports;
}

const URI_SHAPE = "expected otpauth://totp/tknock:CLIENT@HOST?secret=...";

/**
 * Parses an enrolment URI by the grammar of docs/protocol.md section 7. The first rule broken, in the
 * documented order (never the order of the URI), is reported by name (InvalidUriError.parameter); unknown
 * parameters are ignored so URIs of later versions stay readable. No message quotes the secret.
 */
export function parseProfileUri(uri: string): EnrolledProfile {
  const { rawLabel, rawValues } = splitOtpauthUri(uri);

  /** The decoded first value of a known parameter, undefined when absent; empty only where `allowEmpty`. */
  const value = (name: KnownParameter, allowEmpty = false): string | undefined => {
    const raw = rawValues.get(name);
    if (raw === undefined) return undefined;
    const decoded = percentDecode(raw);
    if (decoded === undefined) throw bad(name, "has a bad %-escape (% must be followed by two hex digits of UTF-8)");
    if (decoded === "" && !allowEmpty) throw bad(name, "is empty: give a value or leave the parameter out");
    return decoded;
  };

  // v first: a later version may redefine any other part, and "unsupported version" is then the useful message.
  const v = value("v");
  if (v !== undefined && v !== PROTOCOL_VERSION) throw bad("v", `is ${quoteShort(v)}: this tknock speaks protocol version 1`);

  const label = percentDecode(rawLabel);
  if (label === undefined) throw new InvalidUriError("label", "label has a bad %-escape (% must be followed by two hex digits of UTF-8)");
  const body = label.startsWith(`${ISSUER}:`) ? label.slice(ISSUER.length + 1) : label;
  const at = body.indexOf("@");
  const client = at < 0 ? "" : body.slice(0, at);
  const host = at < 0 ? "" : body.slice(at + 1);
  if (!isValidClientName(client)) {
    throw new InvalidUriError("label", `label must be tknock:CLIENT@HOST with a client name of letters, digits, . _ - (up to 63): ${URI_SHAPE}`);
  }
  if (!HOST_RE.test(host)) {
    throw new InvalidUriError("label", `label must be tknock:CLIENT@HOST with a host name or address after '@' (letters, digits, . : [ ] _ -)`);
  }

  const secretText = value("secret");
  if (secretText === undefined) throw bad("secret", "is missing");
  const secret = decodeSecret(secretText);
  if (secret.length < PROFILE_LIMITS.minSecretBytes) {
    throw bad("secret", `is ${secret.length} bytes; at least ${PROFILE_LIMITS.minSecretBytes} are required`);
  }

  const issuer = value("issuer");
  if (issuer !== undefined && issuer !== ISSUER) throw bad("issuer", `must be ${ISSUER}, got ${quoteShort(issuer)}`);
  const algorithm = value("algorithm");
  if (algorithm !== undefined && algorithm.toUpperCase() !== "SHA256") {
    throw bad("algorithm", `must be SHA256, got ${quoteShort(algorithm)}`);
  }
  const digits = value("digits");
  if (digits !== undefined) uintIn("digits", digits, 6, 8);

  const L = PROFILE_LIMITS;
  const periodText = value("period");
  const periodSeconds = periodText === undefined ? L.periodSeconds.default : uintIn("period", periodText, L.periodSeconds.min, L.periodSeconds.max);
  const knocksText = value("knocks");
  const knocks = knocksText === undefined ? L.knocks.default : uintIn("knocks", knocksText, L.knocks.min, L.knocks.max);

  let portMin: number = L.portMin;
  let portMax: number = L.portMax;
  const range = value("ports");
  if (range !== undefined) {
    const m = /^(0|[1-9][0-9]*)-(0|[1-9][0-9]*)$/.exec(range);
    portMin = Number(m?.[1]);
    portMax = Number(m?.[2]);
    if (!isPort(portMin) || !isPort(portMax) || portMin > portMax) {
      throw bad("ports", `must be MIN-MAX with 1 <= MIN <= MAX <= 65535 (digits only), got ${quoteShort(range)}`);
    }
  }

  const excludeText = value("exclude", true);
  const excludeGiven = excludeText === undefined ? undefined : excludeText === "" ? [] : portList("exclude", excludeText);

  const protoText = value("proto");
  if (protoText !== undefined && protoText !== "tcp" && protoText !== "udp") {
    throw bad("proto", `must be tcp or udp, got ${quoteShort(protoText)}`);
  }
  const proto: KnockProto = protoText ?? "tcp";

  const openText = value("open");
  if (openText === undefined) throw bad("open", "is missing: give the ports the server opens, e.g. open=22");
  const open = portList("open", openText);

  const addr = value("addr");
  if (addr !== undefined && !HOST_RE.test(addr)) throw bad("addr", "must be a host name or an IP address (letters, digits, . : [ ] _ -)");

  const mode = value("mode");
  if (mode !== undefined && !isKnockMode(mode)) throw bad("mode", `must be sequence, spa or both, got ${quoteShort(mode)}`);

  const profile: EnrolledProfile = {
    client,
    host,
    ...(addr !== undefined ? { addr } : {}),
    ...(mode !== undefined && mode !== "sequence" ? { mode } : {}),
    open,
    secret,
    periodSeconds,
    knocks,
    portMin,
    portMax,
    exclude: excludeGiven ?? [...open],
    proto,
  };
  // The last rule (U >= k, named "ports") is the profile's own; validateProfile also re-checks the rest.
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
