import { ScureBase32Plugin } from "@otplib/plugin-base32-scure";
import fc from "fast-check";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { InvalidUriError, TknockError } from "../../src/errors.js";
import { decodeSecret, encodeSecret, formatProfileUri, newSecretBase32, parseProfileUri, type EnrolledProfile } from "../../src/protocol/profile-uri.js";
import { sequenceAt } from "../../src/protocol/derive.js";

const SECRET = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZA";
/** The URI form of issue 2, byte for byte. */
const ISSUE_URI =
  `otpauth://totp/tknock:alice@host.example?secret=${SECRET}&issuer=tknock&algorithm=SHA256&digits=6&period=30` +
  "&v=1&knocks=4&ports=10000-59999&exclude=22&proto=tcp&open=22";

function uriWith(changes: Record<string, string | null>): string {
  const [head, query = ""] = ISSUE_URI.split("?");
  const params = query.split("&").map((kv) => kv.split("=") as [string, string]);
  const out: string[] = [];
  for (const [k, v] of params) {
    if (!(k in changes)) out.push(`${k}=${v}`);
    else if (changes[k] !== null) out.push(`${k}=${changes[k]}`);
  }
  for (const [k, v] of Object.entries(changes)) if (v !== null && !params.some(([pk]) => pk === k)) out.push(`${k}=${v}`);
  return `${head}?${out.join("&")}`;
}

function parseError(uri: string): InvalidUriError {
  try {
    parseProfileUri(uri);
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidUriError);
    return err as InvalidUriError;
  }
  throw new Error(`parsed without error: ${uri}`);
}

const clientArb = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/);
const hostArb = fc.oneof(
  fc.domain(),
  fc.ipV4(),
  fc.ipV6(),
  fc.ipV6().map((a) => `[${a}]`),
);
const portArb = fc.integer({ min: 1, max: 65535 });

const enrolledArb: fc.Arbitrary<EnrolledProfile> = fc
  .record({
    client: clientArb,
    host: hostArb,
    addr: fc.option(hostArb, { nil: undefined }),
    open: fc.uniqueArray(portArb, { minLength: 1, maxLength: 3 }),
    secret: fc.uint8Array({ minLength: 16, maxLength: 64 }),
    periodSeconds: fc.integer({ min: 10, max: 300 }),
    knocks: fc.integer({ min: 2, max: 16 }),
    portMin: fc.integer({ min: 1, max: 65535 - 40 }),
    width: fc.integer({ min: 40, max: 65535 }),
    exclude: fc.uniqueArray(portArb, { maxLength: 5 }),
    proto: fc.constantFrom("tcp" as const, "udp" as const),
  })
  .map(({ width, addr, ...r }) => ({
    ...r,
    ...(addr !== undefined ? { addr } : {}),
    portMax: Math.min(65535, r.portMin + width - 1),
  }));

describe("formatProfileUri and parseProfileUri", () => {
  it("when the profile of issue 2 is formatted then the URI is exactly the issue's form", () => {
    const p = parseProfileUri(ISSUE_URI);
    expect(formatProfileUri(p)).toBe(ISSUE_URI);
  });

  it("when the period is not 30 then the parameters still come in the issue's order", () => {
    const uri = formatProfileUri({ ...parseProfileUri(ISSUE_URI), periodSeconds: 10 });
    expect(uri).toBe(ISSUE_URI.replace("period=30", "period=10"));
  });

  it("when the URI of issue 2 is parsed then every field holds the value it spells", () => {
    expect(parseProfileUri(ISSUE_URI)).toEqual({
      client: "alice",
      host: "host.example",
      open: [22],
      secret: decodeSecret(SECRET),
      periodSeconds: 30,
      knocks: 4,
      portMin: 10000,
      portMax: 59999,
      exclude: [22],
      proto: "tcp",
    });
    expect(new TextDecoder().decode(parseProfileUri(ISSUE_URI).secret)).toBe("12345678901234567890123456789012");
  });

  it("when addr is absent then the profile has no addr; when present it is the knock target", () => {
    expect("addr" in parseProfileUri(ISSUE_URI)).toBe(false);
    const withAddr = parseProfileUri(uriWith({ addr: "198.18.0.2" }));
    expect(withAddr.addr).toBe("198.18.0.2");
    expect(withAddr.host).toBe("host.example");
    expect(parseProfileUri(formatProfileUri(withAddr))).toEqual(withAddr);
  });

  it("when unknown parameters are present then they are ignored", () => {
    const plain = parseProfileUri(ISSUE_URI);
    expect(parseProfileUri(uriWith({ image: "https%3A%2F%2Fx", future: "1", "x-tknock-hint": "" }))).toEqual(plain);
  });

  it("when optional parameters are left out then the protocol defaults apply (exclude defaults to open)", () => {
    const p = parseProfileUri(`otpauth://totp/tknock:alice@host.example?secret=${SECRET}&open=2222,443`);
    expect(p).toMatchObject({ periodSeconds: 30, knocks: 4, portMin: 10000, portMax: 59999, proto: "tcp", open: [2222, 443] });
    expect(p.exclude).toEqual([2222, 443]);
  });

  it("when exclude is empty then nothing is excluded", () => {
    expect(parseProfileUri(uriWith({ exclude: "" })).exclude).toEqual([]);
  });

  it("when the secret is lower case then it decodes the same", () => {
    expect(parseProfileUri(uriWith({ secret: SECRET.toLowerCase() })).secret).toEqual(decodeSecret(SECRET));
  });

  it("when random valid profiles are formatted then parsing gives the same profile back", () => {
    fc.assert(
      fc.property(enrolledArb, (p) => {
        expect(parseProfileUri(formatProfileUri(p))).toEqual(p);
      }),
      { numRuns: 300 },
    );
  });

  it("when a new secret is generated then it is 32 bytes of base32 and round-trips", async () => {
    const s = await newSecretBase32();
    expect(decodeSecret(s)).toHaveLength(32);
    expect(encodeSecret(decodeSecret(s))).toBe(s);
    expect(await newSecretBase32()).not.toBe(s);
  });
});

describe("parseProfileUri: a missing or bad parameter is named", () => {
  const cases: { name: string; uri: string; parameter: string }[] = [
    { name: "secret is missing", uri: uriWith({ secret: null }), parameter: "secret" },
    { name: "secret is empty", uri: uriWith({ secret: "" }), parameter: "secret" },
    { name: "secret is not base32", uri: uriWith({ secret: "01891890189" }), parameter: "secret" },
    { name: "secret is shorter than 16 bytes", uri: uriWith({ secret: "GEZDGNBVGY3TQOJQ" }), parameter: "secret" },
    { name: "period=abc", uri: uriWith({ period: "abc" }), parameter: "period" },
    { name: "period=5", uri: uriWith({ period: "5" }), parameter: "period" },
    { name: "period=301", uri: uriWith({ period: "301" }), parameter: "period" },
    { name: "knocks=99", uri: uriWith({ knocks: "99" }), parameter: "knocks" },
    { name: "knocks=1", uri: uriWith({ knocks: "1" }), parameter: "knocks" },
    { name: "knocks=", uri: uriWith({ knocks: "" }), parameter: "knocks" },
    { name: "ports=5-1", uri: uriWith({ ports: "5-1" }), parameter: "ports" },
    { name: "ports=abc", uri: uriWith({ ports: "abc" }), parameter: "ports" },
    { name: "ports=1-70000", uri: uriWith({ ports: "1-70000" }), parameter: "ports" },
    { name: "ports holds fewer ports than knocks", uri: uriWith({ ports: "20000-20003", exclude: "20001" }), parameter: "ports" },
    { name: "exclude=x", uri: uriWith({ exclude: "x" }), parameter: "exclude" },
    { name: "exclude=0", uri: uriWith({ exclude: "0" }), parameter: "exclude" },
    { name: "proto=sctp", uri: uriWith({ proto: "sctp" }), parameter: "proto" },
    { name: "open is missing", uri: uriWith({ open: null }), parameter: "open" },
    { name: "open is empty", uri: uriWith({ open: "" }), parameter: "open" },
    { name: "open=ssh", uri: uriWith({ open: "ssh" }), parameter: "open" },
    { name: "v=2", uri: uriWith({ v: "2" }), parameter: "v" },
    { name: "algorithm=SHA1", uri: uriWith({ algorithm: "SHA1" }), parameter: "algorithm" },
    { name: "algorithm=MD5", uri: uriWith({ algorithm: "MD5" }), parameter: "algorithm" },
    { name: "digits=5", uri: uriWith({ digits: "5" }), parameter: "digits" },
    { name: "issuer=other", uri: uriWith({ issuer: "other" }), parameter: "issuer" },
    { name: "addr holds a space", uri: uriWith({ addr: "a%20b" }), parameter: "addr" },
    { name: "the label has no client", uri: ISSUE_URI.replace("tknock:alice@", "tknock:@"), parameter: "label" },
    { name: "the label has no host", uri: ISSUE_URI.replace("alice@host.example", "alice"), parameter: "label" },
    { name: "the client name has a space", uri: ISSUE_URI.replace("alice@", "al%20ice@"), parameter: "label" },
    { name: "the label has a bad %-encoding", uri: ISSUE_URI.replace("alice@", "al%ZZice@"), parameter: "label" },
    { name: "the type is hotp", uri: ISSUE_URI.replace("/totp/", "/hotp/"), parameter: "type" },
    { name: "the scheme is https", uri: ISSUE_URI.replace("otpauth://", "https://"), parameter: "scheme" },
    { name: "there is no path after the type", uri: `otpauth://totp?secret=${SECRET}&open=22`, parameter: "uri" },
  ];
  for (const c of cases) {
    it(`when ${c.name} then InvalidUriError names ${c.parameter} and never quotes the secret`, () => {
      const err = parseError(c.uri);
      expect(err.code).toBe("TKNOCK_INVALID_URI");
      expect(err.exitCode).toBe(1);
      expect(err.parameter).toBe(c.parameter);
      expect(err.message).not.toContain(SECRET.slice(0, 16));
      expect(err.message).not.toContain(SECRET.slice(-16));
      expect(err.message).not.toMatch(/\n/);
    });
  }

  it("when the type is followed by the query instead of a label then the secret is not in the message", () => {
    const err = parseError(`otpauth://totp?secret=${SECRET}/x`);
    expect(err.message).not.toContain(SECRET.slice(0, 16));
  });
});

describe("parseProfileUri: arbitrary input", () => {
  const uriChars = fc.constantFrom(..."otpauth:/?&=%#+@,-.[] AZaz2709".split(""));
  const inputArb = fc.oneof(
    fc.string({ unit: "binary", maxLength: 200 }),
    fc.string({ unit: uriChars, maxLength: 200 }).map((s) => `otpauth://${s}`),
    fc.string({ unit: uriChars, maxLength: 200 }).map((s) => `otpauth://totp/tknock:a@h?secret=${SECRET}&${s}`),
  );

  it("when any string is parsed then it yields a profile or a TknockError, nothing else", () => {
    fc.assert(
      fc.property(inputArb, (s) => {
        try {
          parseProfileUri(s);
        } catch (err) {
          expect(err).toBeInstanceOf(TknockError);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it("when a valid URI is mangled then any error still never quotes the secret", () => {
    const mangled = fc
      .tuple(fc.integer({ min: 0, max: ISSUE_URI.length }), fc.integer({ min: 0, max: 20 }), fc.string({ unit: uriChars, maxLength: 20 }))
      .map(([at, cut, insert]) => ISSUE_URI.slice(0, at) + insert + ISSUE_URI.slice(at + cut));
    fc.assert(
      fc.property(mangled, (uri) => {
        try {
          parseProfileUri(uri);
        } catch (err) {
          expect(err).toBeInstanceOf(TknockError);
          const message = (err as Error).message;
          expect(message).not.toContain(SECRET.slice(0, 16));
          expect(message).not.toContain(SECRET.slice(-16));
        }
      }),
      { numRuns: 2000 },
    );
  });
});

/** ISSUE_URI with raw text appended to its query. */
function plus(fields: string): string {
  return `${ISSUE_URI}&${fields}`;
}

describe("enrolment URI grammar (docs/protocol.md section 7): accepted forms", () => {
  const plain = parseProfileUri(ISSUE_URI);
  const cases: { name: string; uri: string; then: Partial<EnrolledProfile> }[] = [
    { name: "the scheme is OTPAUTH in capitals", uri: ISSUE_URI.replace("otpauth://", "OTPAUTH://"), then: {} },
    { name: "the scheme is OtpAuth", uri: ISSUE_URI.replace("otpauth://", "OtpAuth://"), then: {} },
    { name: "the type is TOTP in capitals", uri: ISSUE_URI.replace("/totp/", "/TOTP/"), then: {} },
    { name: "the label has no tknock: prefix", uri: ISSUE_URI.replace("tknock:alice", "alice"), then: {} },
    { name: "the label's colon is %3A and its @ is %40", uri: ISSUE_URI.replace("tknock:alice@", "tknock%3aalice%40"), then: {} },
    { name: "the URI ends in a newline and starts with spaces", uri: `  ${ISSUE_URI}\r\n`, then: {} },
    { name: "the URI is wrapped in tabs", uri: `\t${ISSUE_URI}\t`, then: {} },
    { name: "the secret is in mixed case", uri: uriWith({ secret: SECRET.slice(0, 10).toLowerCase() + SECRET.slice(10) }), then: {} },
    { name: "the secret carries its RFC 4648 padding", uri: uriWith({ secret: `${SECRET}====` }), then: {} },
    { name: "the secret carries the wrong number of '=' at its end", uri: uriWith({ secret: `${SECRET}=` }), then: {} },
    { name: "the padding is percent-encoded", uri: uriWith({ secret: `${SECRET}%3D%3d%3D%3D` }), then: {} },
    { name: "a letter of the secret is percent-encoded", uri: uriWith({ secret: `%47${SECRET.slice(1)}` }), then: {} },
    { name: "algorithm is sha256 in lower case", uri: uriWith({ algorithm: "sha256" }), then: {} },
    { name: "algorithm is Sha256", uri: uriWith({ algorithm: "Sha256" }), then: {} },
    {
      name: "algorithm, issuer, digits, period, v, knocks, ports and proto are left out",
      uri: `otpauth://totp/tknock:alice@host.example?secret=${SECRET}&exclude=22&open=22`,
      then: {},
    },
    { name: "digits=8", uri: uriWith({ digits: "8" }), then: {} },
    { name: "digits=7", uri: uriWith({ digits: "7" }), then: {} },
    { name: "period=10 and knocks=16 (the bounds)", uri: uriWith({ period: "10", knocks: "16" }), then: { periodSeconds: 10, knocks: 16 } },
    { name: "period=300 and knocks=2 (the other bounds)", uri: uriWith({ period: "300", knocks: "2" }), then: { periodSeconds: 300, knocks: 2 } },
    { name: "ports=1-65535", uri: uriWith({ ports: "1-65535" }), then: { portMin: 1, portMax: 65535 } },
    { name: "a port is repeated in exclude", uri: uriWith({ exclude: "443,22,443" }), then: { exclude: [443, 22] } },
    { name: "a port is repeated in open", uri: uriWith({ open: "22,2222,22" }), then: { open: [22, 2222] } },
    { name: "exclude has no '=' (an empty value)", uri: uriWith({ exclude: null }) + "&exclude", then: { exclude: [] } },
    { name: "the list comma is percent-encoded", uri: uriWith({ open: "22%2C443" }), then: { open: [22, 443] } },
    { name: "addr is a bracketed IPv6 address, percent-encoded", uri: uriWith({ addr: "%5Bfd18%3A18%3A%3A1%5D" }), then: { addr: "[fd18:18::1]" } },
    { name: "addr is an IPv6 address written raw", uri: uriWith({ addr: "fd18:18::1" }), then: { addr: "fd18:18::1" } },
    { name: "the label's host is a raw bracketed IPv6 address", uri: ISSUE_URI.replace("@host.example", "@[fd18:18::1]"), then: { host: "[fd18:18::1]" } },
    { name: "the period is given twice: the first counts", uri: uriWith({ period: "10" }) + "&period=abc", then: { periodSeconds: 10 } },
    { name: "a second secret is not base32: the first counts", uri: plus("secret=%ZZ!"), then: {} },
    { name: "the key secret is percent-encoded", uri: uriWith({ secret: null }) + `&s%65cret=${SECRET}`, then: {} },
    {
      name: "a 700-byte secret fills most of the URI",
      uri: uriWith({ secret: encodeSecret(new Uint8Array(700).fill(7)) }),
      then: { secret: new Uint8Array(700).fill(7) },
    },
    {
      name: "exclude is longer than 1024 characters",
      uri: uriWith({ exclude: Array.from({ length: 300 }, (_, i) => 20000 + i).join(",") }),
      then: { exclude: Array.from({ length: 300 }, (_, i) => 20000 + i) },
    },
  ];
  for (const c of cases) {
    it(`when ${c.name} then it parses`, () => {
      expect(parseProfileUri(c.uri)).toEqual({ ...plain, ...c.then });
    });
  }

  const unknown: { name: string; fields: string }[] = [
    { name: "has a bad %-escape in its value", fields: "image=%ZZ%4" },
    { name: "has a key with a bad %-escape", fields: "%ZZ=1&x%=2" },
    { name: "has a value of 1500 characters", fields: `note=${"x".repeat(1500)}` },
    { name: "holds ? = and %26 in its value", fields: "image=https:%2F%2Fx/?a=b%26c=d" },
    { name: "has no '='", fields: "flag" },
    { name: "is SECRET in capitals with garbage", fields: "SECRET=%ZZ" },
    { name: "is counter (an hotp parameter)", fields: "counter=-1" },
    { name: "is empty, between two &", fields: "&&x=1&" },
    { name: "has an empty key", fields: "=7" },
  ];
  for (const c of unknown) {
    it(`when an unknown parameter ${c.name} then it is ignored`, () => {
      expect(parseProfileUri(plus(c.fields))).toEqual(plain);
    });
  }

  it("when the URI is exactly 2048 characters then it parses; at 2049 it is refused naming uri", () => {
    const pad = (n: number) => plus(`pad=${"x".repeat(n - ISSUE_URI.length - 5)}`);
    expect(pad(2048)).toHaveLength(2048);
    expect(parseProfileUri(pad(2048))).toEqual(plain);
    expect(parseError(pad(2049)).parameter).toBe("uri");
  });
});

describe("enrolment URI grammar (docs/protocol.md section 7): refused forms name one parameter", () => {
  const cases: { name: string; uri: string; parameter: string }[] = [
    { name: "the text is a bare secret (no scheme)", uri: SECRET, parameter: "scheme" },
    { name: "the scheme is otpauth-migration", uri: ISSUE_URI.replace("otpauth://", "otpauth-migration://"), parameter: "scheme" },
    { name: "the URI is empty", uri: "  \n", parameter: "scheme" },
    { name: "the secret holds a raw space", uri: uriWith({ secret: `${SECRET.slice(0, 8)} ${SECRET.slice(8)}` }), parameter: "uri" },
    { name: "the secret holds a raw tab", uri: uriWith({ secret: `${SECRET.slice(0, 8)}\t${SECRET.slice(8)}` }), parameter: "uri" },
    { name: "the secret holds a raw newline", uri: uriWith({ secret: `${SECRET.slice(0, 8)}\n${SECRET.slice(8)}` }), parameter: "uri" },
    { name: "open holds a raw space after the comma", uri: uriWith({ open: "22, 443" }), parameter: "uri" },
    { name: "an unknown parameter holds a raw non-ASCII letter", uri: plus("note=é"), parameter: "uri" },
    { name: "the URI ends in a no-break space", uri: `${ISSUE_URI}\u00a0`, parameter: "uri" },
    { name: "the URI has a fragment", uri: `${ISSUE_URI}#x`, parameter: "uri" },
    { name: "there is no // after the scheme", uri: ISSUE_URI.replace("otpauth://", "otpauth:"), parameter: "uri" },
    { name: "the label is missing after totp/", uri: ISSUE_URI.replace("tknock:alice@host.example", ""), parameter: "label" },
    { name: "the type is empty", uri: ISSUE_URI.replace("//totp/", "///"), parameter: "type" },
    { name: "v=01", uri: uriWith({ v: "01" }), parameter: "v" },
    { name: "v is empty", uri: uriWith({ v: "" }), parameter: "v" },
    { name: "the prefix is TKNOCK: in capitals", uri: ISSUE_URI.replace("tknock:alice", "TKNOCK:alice"), parameter: "label" },
    { name: "the prefix is another issuer's", uri: ISSUE_URI.replace("tknock:alice", "Example:alice"), parameter: "label" },
    { name: "the label holds two @", uri: ISSUE_URI.replace("alice@", "alice@x@"), parameter: "label" },
    { name: "the label's client is followed by an encoded space", uri: ISSUE_URI.replace("tknock:alice", "tknock:%20alice"), parameter: "label" },
    { name: "the client name is 64 characters", uri: ISSUE_URI.replace("alice@", `${"a".repeat(64)}@`), parameter: "label" },
    { name: "the label is not UTF-8 (%C3%28)", uri: ISSUE_URI.replace("alice@", "al%C3%28ice@"), parameter: "label" },
    { name: "the secret holds an encoded space", uri: uriWith({ secret: `${SECRET.slice(0, 8)}%20${SECRET.slice(8)}` }), parameter: "secret" },
    { name: "the secret holds an encoded tab", uri: uriWith({ secret: `${SECRET.slice(0, 8)}%09${SECRET.slice(8)}` }), parameter: "secret" },
    { name: "the secret ends in an encoded newline", uri: uriWith({ secret: `${SECRET}%0A` }), parameter: "secret" },
    { name: "the secret has '=' before its end", uri: uriWith({ secret: `${SECRET.slice(0, 8)}=${SECRET.slice(8)}` }), parameter: "secret" },
    { name: "the secret is only padding", uri: uriWith({ secret: "========" }), parameter: "secret" },
    { name: "the secret has non-zero unused bits", uri: uriWith({ secret: `${SECRET.slice(0, -1)}B` }), parameter: "secret" },
    { name: "the secret has a length no bytes encode (54 characters)", uri: uriWith({ secret: `${SECRET}AA` }), parameter: "secret" },
    { name: "the secret is 15 bytes", uri: uriWith({ secret: encodeSecret(new Uint8Array(15).fill(1)) }), parameter: "secret" },
    { name: "the secret holds base32hex digits (0, 1, 8, 9)", uri: uriWith({ secret: `${SECRET.slice(0, -2)}01` }), parameter: "secret" },
    { name: "the secret has a bad %-escape", uri: uriWith({ secret: `${SECRET}%G0` }), parameter: "secret" },
    { name: "the secret has a lone % at its end", uri: uriWith({ secret: `${SECRET}%` }), parameter: "secret" },
    { name: "the secret key has no '=' (an empty value)", uri: uriWith({ secret: null }) + "&secret", parameter: "secret" },
    { name: "the first secret has a bad %-escape and a second one is good", uri: uriWith({ secret: "%ZZ" }) + `&secret=${SECRET}`, parameter: "secret" },
    { name: "the only secret key is SECRET in capitals", uri: uriWith({ secret: null }) + `&SECRET=${SECRET}`, parameter: "secret" },
    { name: "issuer=TKNOCK", uri: uriWith({ issuer: "TKNOCK" }), parameter: "issuer" },
    { name: "issuer is empty", uri: uriWith({ issuer: "" }), parameter: "issuer" },
    { name: "algorithm=SHA-256", uri: uriWith({ algorithm: "SHA-256" }), parameter: "algorithm" },
    { name: "algorithm=SHA_256", uri: uriWith({ algorithm: "SHA_256" }), parameter: "algorithm" },
    { name: "algorithm is empty", uri: uriWith({ algorithm: "" }), parameter: "algorithm" },
    { name: "algorithm=SHA256 followed by an encoded space", uri: uriWith({ algorithm: "SHA256%20" }), parameter: "algorithm" },
    { name: "digits=06", uri: uriWith({ digits: "06" }), parameter: "digits" },
    { name: "digits=9", uri: uriWith({ digits: "9" }), parameter: "digits" },
    { name: "digits is empty", uri: uriWith({ digits: "" }), parameter: "digits" },
    { name: "period=030", uri: uriWith({ period: "030" }), parameter: "period" },
    { name: "period=+30", uri: uriWith({ period: "+30" }), parameter: "period" },
    { name: "period=-30", uri: uriWith({ period: "-30" }), parameter: "period" },
    { name: "period=30.0", uri: uriWith({ period: "30.0" }), parameter: "period" },
    { name: "period=3e1", uri: uriWith({ period: "3e1" }), parameter: "period" },
    { name: "period has an encoded space before it", uri: uriWith({ period: "%2030" }), parameter: "period" },
    { name: "period has an encoded space after it", uri: uriWith({ period: "30%20" }), parameter: "period" },
    { name: "period is 30 digits long", uri: uriWith({ period: "9".repeat(30) }), parameter: "period" },
    { name: "knocks=04", uri: uriWith({ knocks: "04" }), parameter: "knocks" },
    { name: "knocks=17", uri: uriWith({ knocks: "17" }), parameter: "knocks" },
    { name: "ports=010000-59999", uri: uriWith({ ports: "010000-59999" }), parameter: "ports" },
    { name: "ports has encoded spaces around the dash", uri: uriWith({ ports: "10000%20-%2059999" }), parameter: "ports" },
    { name: "ports=10000-", uri: uriWith({ ports: "10000-" }), parameter: "ports" },
    { name: "ports=0-100", uri: uriWith({ ports: "0-100" }), parameter: "ports" },
    { name: "ports is empty", uri: uriWith({ ports: "" }), parameter: "ports" },
    { name: "exclude=022", uri: uriWith({ exclude: "022" }), parameter: "exclude" },
    { name: "exclude has an encoded space after a comma", uri: uriWith({ exclude: "22,%20443" }), parameter: "exclude" },
    { name: "exclude is an encoded space", uri: uriWith({ exclude: "%20" }), parameter: "exclude" },
    { name: "exclude has an empty item", uri: uriWith({ exclude: "22,,443" }), parameter: "exclude" },
    { name: "exclude ends in a comma", uri: uriWith({ exclude: "22," }), parameter: "exclude" },
    { name: "exclude=65536", uri: uriWith({ exclude: "65536" }), parameter: "exclude" },
    { name: "proto=TCP", uri: uriWith({ proto: "TCP" }), parameter: "proto" },
    { name: "proto is empty", uri: uriWith({ proto: "" }), parameter: "proto" },
    { name: "open=022", uri: uriWith({ open: "022" }), parameter: "open" },
    { name: "open ends in a comma", uri: uriWith({ open: "22," }), parameter: "open" },
    { name: "open has an encoded space after a comma", uri: uriWith({ open: "22,%20443" }), parameter: "open" },
    { name: "open has a bad %-escape", uri: uriWith({ open: "22%2" }), parameter: "open" },
    { name: "addr is empty", uri: uriWith({ addr: "" }), parameter: "addr" },
    { name: "addr holds a + (a plus, not a space)", uri: uriWith({ addr: "a+b" }), parameter: "addr" },
    { name: "addr is percent-encoded twice (%2541)", uri: uriWith({ addr: "%2541" }), parameter: "addr" },
  ];
  for (const c of cases) {
    it(`when ${c.name} then InvalidUriError names ${c.parameter}`, () => {
      const err = parseError(c.uri);
      expect(err.code).toBe("TKNOCK_INVALID_URI");
      expect(err.parameter).toBe(c.parameter);
      expect(err.message).not.toContain(SECRET.slice(0, 16));
      expect(err.message).not.toContain(SECRET.slice(-16));
    });
  }

  it("when the scheme is https then the message names https", () => {
    expect(parseError(ISSUE_URI.replace("otpauth://", "https://")).message).toContain('"https"');
  });

  it("when the scheme is OTPAUTH then it is not refused for its case (the type error is what is named)", () => {
    expect(parseError(ISSUE_URI.replace("otpauth://totp/", "OTPAUTH://hotp/")).parameter).toBe("type");
  });

  it("when the text before ':' is a long secret then the scheme error does not quote it", () => {
    const err = parseError(`${SECRET}:x`);
    expect(err.parameter).toBe("scheme");
    expect(err.message).not.toContain(SECRET.slice(0, 16));
  });
});

describe("enrolment URI grammar (docs/protocol.md section 7, rule 12): which error wins", () => {
  const cases: { name: string; uri: string; parameter: string }[] = [
    { name: "the scheme is wrong and the URI is too long", uri: `https://totp/x?a=${"x".repeat(3000)}`, parameter: "scheme" },
    { name: "the URI is too long and the type is hotp", uri: ISSUE_URI.replace("/totp/", "/hotp/") + `&a=${"x".repeat(2100)}`, parameter: "uri" },
    { name: "the URI holds a raw space and the type is hotp", uri: ISSUE_URI.replace("/totp/", "/hotp/") + "&a=x y", parameter: "uri" },
    { name: "the type is hotp and v=2", uri: ISSUE_URI.replace("/totp/", "/hotp/").replace("v=1", "v=2"), parameter: "type" },
    { name: "v=2, the label is bad and period=abc", uri: uriWith({ v: "2", period: "abc" }).replace("alice@", "@"), parameter: "v" },
    { name: "the label is bad and the secret is missing", uri: uriWith({ secret: null }).replace("alice@", "@"), parameter: "label" },
    { name: "the secret is bad and open is missing", uri: uriWith({ secret: "1", open: null }), parameter: "secret" },
    { name: "issuer and algorithm are both bad", uri: uriWith({ algorithm: "MD5", issuer: "x" }), parameter: "issuer" },
    { name: "knocks=abc comes before period=abc in the URI", uri: uriWith({ period: null, knocks: "abc" }) + "&period=abc", parameter: "period" },
    { name: "period=abc comes before knocks=abc in the URI", uri: uriWith({ period: "abc", knocks: "abc" }), parameter: "period" },
    { name: "exclude and ports are both bad", uri: uriWith({ exclude: "x", ports: "x" }), parameter: "ports" },
    { name: "proto is bad and open is missing", uri: uriWith({ proto: "sctp", open: null }), parameter: "proto" },
    { name: "open is bad and addr is bad", uri: uriWith({ open: "x", addr: "a b" }).replace("a b", "a%20b"), parameter: "open" },
    {
      name: "the range minus the exclusions is smaller than knocks and addr is bad",
      uri: uriWith({ ports: "20000-20003", exclude: "20001", addr: "a%20b" }),
      parameter: "addr",
    },
    { name: "exclude leaves too few ports and is otherwise well formed", uri: uriWith({ ports: "20000-20003", exclude: "20001" }), parameter: "ports" },
  ];
  for (const c of cases) {
    it(`when ${c.name} then ${c.parameter} is named`, () => {
      expect(parseError(c.uri).parameter).toBe(c.parameter);
    });
  }
});

describe("enrolment URI compatibility: URIs printed by earlier enroll still parse", () => {
  type Fixture = { writtenBy: string; uri: string; profile: Omit<EnrolledProfile, "secret"> & { secret: string } };
  const fixtures = JSON.parse(readFileSync(new URL("../fixtures/uri/enroll-v1.json", import.meta.url), "utf8")) as Fixture[];

  it("when the fixture file is read then it holds URIs of both writers", () => {
    expect(fixtures.length).toBeGreaterThanOrEqual(8);
    expect(new Set(fixtures.map((f) => f.writtenBy)).size).toBe(2);
  });

  for (const f of fixtures) {
    it(`when ${f.uri.slice(15, f.uri.indexOf("?"))} (${f.writtenBy}) is parsed then it gives the recorded profile`, () => {
      const p = parseProfileUri(f.uri);
      expect({ ...p, secret: Buffer.from(p.secret).toString("hex") }).toEqual(f.profile);
      if (f.writtenBy.includes("117b44b")) expect(formatProfileUri(p)).toBe(f.uri);
    });
  }

  const protocolDoc = readFileSync(new URL("../../docs/protocol.md", import.meta.url), "utf8");
  const shellChecks = [...protocolDoc.matchAll(/--at (\d+) --json \\\n\s+--uri '([^']+)'\n# (\{.*\})/g)];
  it("when docs/protocol.md is read then it has its three shell checks", () => {
    expect(shellChecks).toHaveLength(3);
  });
  for (const [, at, uri, expected] of shellChecks) {
    it(`when the doc's URI for --at ${at} is parsed then it derives the doc's answer`, () => {
      const profile = parseProfileUri(uri ?? "");
      const { step, ports } = sequenceAt(profile, Number(at) * 1000);
      expect({ step, ports, proto: profile.proto }).toEqual(JSON.parse(expected ?? ""));
    });
  }
});

describe("secret base32 (docs/protocol.md section 7, rule 9)", () => {
  const scure = new ScureBase32Plugin();

  it("when any byte string is encoded then decoding it, in either case, gives it back", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 80 }), (bytes) => {
        const text = encodeSecret(bytes);
        if (bytes.length === 0) return;
        expect(decodeSecret(text)).toEqual(bytes);
        expect(decodeSecret(text.toLowerCase())).toEqual(bytes);
      }),
      { numRuns: 500 },
    );
  });

  it("when any base32 string is decoded then it is accepted exactly when otplib's strict decoder accepts it, with the same bytes", () => {
    const b32 = fc.string({ unit: fc.constantFrom(..."ABCDEFGHIJKLMNOPQRSTUVWXYZ234567".split("")), minLength: 1, maxLength: 40 });
    fc.assert(
      fc.property(b32, (text) => {
        let theirs: Uint8Array | undefined;
        try {
          theirs = scure.decode(text);
        } catch {
          theirs = undefined;
        }
        let ours: Uint8Array | undefined;
        try {
          ours = decodeSecret(text);
        } catch (err) {
          expect(err).toBeInstanceOf(InvalidUriError);
          ours = undefined;
        }
        expect(ours === undefined ? undefined : Buffer.from(ours).toString("hex")).toBe(theirs === undefined ? undefined : Buffer.from(theirs).toString("hex"));
      }),
      { numRuns: 2000 },
    );
  });

  it("when a letter becomes a non-ASCII character that upper-cases to base32 then it is refused", () => {
    // "ß".toUpperCase() is "SS": an upper-casing decoder would read this as the 52 characters of SECRET.
    expect(() => decodeSecret(`${SECRET.slice(0, 10)}ß${SECRET.slice(12)}`)).toThrow(InvalidUriError);
  });
});
