import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { InvalidUriError, TknockError } from "../../src/errors.js";
import {
  decodeSecret,
  encodeSecret,
  formatProfileUri,
  newSecretBase32,
  parseProfileUri,
  type EnrolledProfile,
} from "../../src/protocol/profile-uri.js";

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

  it("when the type segment swallows the query (otplib quotes it) then the secret is still not in the message", () => {
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
      .tuple(
        fc.integer({ min: 0, max: ISSUE_URI.length }),
        fc.integer({ min: 0, max: 20 }),
        fc.string({ unit: uriChars, maxLength: 20 }),
      )
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
