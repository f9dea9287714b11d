import { createHmac } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { InvalidProfileError } from "../../src/errors.js";
import { deriveSequence, sequenceAt } from "../../src/protocol/derive.js";
import { validateProfile, type KnockProfile } from "../../src/protocol/profile.js";
import { decodeSecret } from "../../src/protocol/profile-uri.js";
import { VECTORS, type Vector } from "../vectors/v1.js";

function vectorProfile(v: Vector): KnockProfile {
  return { ...v, secret: decodeSecret(v.secretBase32), proto: "tcp" };
}

function vector(prefix: string): Vector {
  const v = VECTORS.find((x) => x.name.startsWith(prefix));
  if (!v) throw new Error(`no ${prefix} in test/vectors/v1.ts`);
  return v;
}

const v1 = vector("vector 1");
const base: KnockProfile = vectorProfile(v1);

/** Valid profiles, including ranges so tight that most words are skipped as repeats or exclusions. */
const profileArb: fc.Arbitrary<KnockProfile> = fc
  .record({
    secret: fc.uint8Array({ minLength: 16, maxLength: 64 }),
    periodSeconds: fc.integer({ min: 10, max: 300 }),
    knocks: fc.integer({ min: 2, max: 16 }),
    spare: fc.oneof(fc.integer({ min: 0, max: 8 }), fc.integer({ min: 0, max: 60_000 })),
    proto: fc.constantFrom("tcp" as const, "udp" as const),
  })
  .chain((r) => {
    const n = r.knocks + r.spare;
    return fc.integer({ min: 1, max: 65536 - n }).chain((portMin) =>
      // At most `spare` exclusions inside the range, so range minus exclusions still holds `knocks` ports.
      fc.uniqueArray(fc.integer({ min: portMin, max: portMin + n - 1 }), { maxLength: Math.min(r.spare, 20) }).map((exclude) => ({
        secret: r.secret,
        periodSeconds: r.periodSeconds,
        knocks: r.knocks,
        portMin,
        portMax: portMin + n - 1,
        exclude,
        proto: r.proto,
      })),
    );
  });

function expectInvalid(fn: () => unknown, field: string): void {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(InvalidProfileError);
  expect((caught as InvalidProfileError).code).toBe("TKNOCK_INVALID_PROFILE");
  expect((caught as InvalidProfileError).field).toBe(field);
}

describe("deriveSequence: window boundaries", () => {
  const startSeconds = v1.step * v1.periodSeconds;

  it("when t is exactly step*P then the new step's sequence is in force", () => {
    expect(sequenceAt(base, startSeconds * 1000)).toEqual({ step: v1.step, ports: v1.ports });
  });

  it("when t is 1 ms before step*P then the previous step's sequence is in force", () => {
    const before = sequenceAt(base, startSeconds * 1000 - 1);
    expect(before.step).toBe(v1.step - 1);
    expect(before.ports).toEqual(deriveSequence(base, v1.step - 1));
    expect(before.ports).not.toEqual(v1.ports);
  });

  it("when t is the last ms of the window then the sequence has not changed yet", () => {
    expect(sequenceAt(base, (startSeconds + v1.periodSeconds) * 1000 - 1)).toEqual({ step: v1.step, ports: v1.ports });
  });

  it("when the step is negative or not an integer then InvalidProfileError names the step", () => {
    expectInvalid(() => deriveSequence(base, -1), "step");
    expectInvalid(() => deriveSequence(base, 1.5), "step");
    expectInvalid(() => deriveSequence(base, Number.NaN), "step");
  });
});

describe("deriveSequence: port selection", () => {
  it("when the range holds exactly k usable ports then every one of them comes out once (repeats are skipped)", () => {
    const tight = { ...base, knocks: 5, portMin: 30000, portMax: 30006, exclude: [30002, 30004] };
    for (let step = 0; step < 50; step++) {
      expect([...deriveSequence(tight, step)].sort((a, b) => a - b)).toEqual([30000, 30001, 30003, 30005, 30006]);
    }
  });

  it("when ports are excluded then they never appear, across many steps", () => {
    const exclude = [20000, 20001, 20002, 20005, 20007];
    const p = { ...base, knocks: 4, portMin: 20000, portMax: 20009, exclude };
    const seen = new Set<number>();
    for (let step = 0; step < 200; step++) for (const port of deriveSequence(p, step)) seen.add(port);
    expect([...seen].sort((a, b) => a - b)).toEqual([20003, 20004, 20006, 20008, 20009]);
  });

  it("when k is 16 over a 20-port range then 16 distinct ports come out (more than one block's 8 words)", () => {
    const p = { ...base, knocks: 16, portMin: 20000, portMax: 20019, exclude: [] };
    for (let step = 0; step < 50; step++) {
      const ports = deriveSequence(p, step);
      expect(ports).toHaveLength(16);
      expect(new Set(ports).size).toBe(16);
      expect(ports.every((x) => x >= 20000 && x <= 20019)).toBe(true);
    }
  });

  it("when a keystream word is at or above LIMIT then it is rejected, not reduced modulo N", () => {
    const v4 = vector("vector 4");
    const p = vectorProfile(v4);
    const n = v4.portMax - v4.portMin + 1;
    const limit = Math.floor(2 ** 32 / n) * n;
    const message = Buffer.concat([Buffer.from("tknock-v1\0", "ascii"), Buffer.alloc(9)]);
    message.writeBigUInt64BE(BigInt(v4.step), 10);
    const block = createHmac("sha256", p.secret).update(message).digest();
    const words = Array.from({ length: 8 }, (_, i) => block.readUInt32BE(i * 4));
    // The vector is only a test of the rule if a word is rejected before the last port is chosen.
    expect(words.slice(0, v4.knocks).some((w) => w >= limit)).toBe(true);
    const modulo = words.slice(0, v4.knocks).map((w) => v4.portMin + (w % n));
    expect(deriveSequence(p, v4.step)).toEqual(v4.ports);
    expect(deriveSequence(p, v4.step)).not.toEqual(modulo);
  });

  it("when the same profile and step are derived twice then the sequences are equal (pure)", () => {
    expect(deriveSequence(base, 123456)).toEqual(deriveSequence({ ...base, secret: Uint8Array.from(base.secret) }, 123456));
  });

  it("when the secret differs by one bit then the sequence differs", () => {
    const flipped = Uint8Array.from(base.secret);
    flipped[0] = (flipped[0] ?? 0) ^ 1;
    expect(deriveSequence({ ...base, secret: flipped }, v1.step)).not.toEqual(v1.ports);
  });

  it("when profiles and steps are random then k distinct, in-range, non-excluded ports come out", () => {
    fc.assert(
      fc.property(profileArb, fc.integer({ min: 0, max: 2 ** 36 }), (p, step) => {
        validateProfile(p);
        const ports = deriveSequence(p, step);
        expect(ports).toHaveLength(p.knocks);
        expect(new Set(ports).size).toBe(p.knocks);
        for (const port of ports) {
          expect(port).toBeGreaterThanOrEqual(p.portMin);
          expect(port).toBeLessThanOrEqual(p.portMax);
          expect(p.exclude).not.toContain(port);
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe("validateProfile: invalid profiles", () => {
  const cases: { name: string; profile: KnockProfile; field: string }[] = [
    { name: "the secret is 15 bytes", profile: { ...base, secret: new Uint8Array(15) }, field: "secret" },
    { name: "the period is 9 s", profile: { ...base, periodSeconds: 9 }, field: "period" },
    { name: "the period is 301 s", profile: { ...base, periodSeconds: 301 }, field: "period" },
    { name: "the period is not an integer", profile: { ...base, periodSeconds: 30.5 }, field: "period" },
    { name: "knocks is 1", profile: { ...base, knocks: 1 }, field: "knocks" },
    { name: "knocks is 17", profile: { ...base, knocks: 17 }, field: "knocks" },
    { name: "the range is reversed", profile: { ...base, portMin: 20000, portMax: 10000 }, field: "ports" },
    { name: "the range leaves 65535", profile: { ...base, portMax: 65536 }, field: "ports" },
    {
      name: "range minus exclusions holds fewer than k ports",
      profile: { ...base, knocks: 4, portMin: 20000, portMax: 20004, exclude: [20001, 20003] },
      field: "ports",
    },
    { name: "an excluded port is 0", profile: { ...base, exclude: [0] }, field: "exclude" },
    { name: "proto is sctp", profile: { ...base, proto: "sctp" as "tcp" }, field: "proto" },
  ];
  for (const c of cases) {
    it(`when ${c.name} then InvalidProfileError names ${c.field}`, () => {
      expectInvalid(() => validateProfile(c.profile), c.field);
    });
  }

  it("when a 16-byte secret, period 10..300 and knocks 2..16 are used then the profile is valid", () => {
    for (const [periodSeconds, knocks] of [
      [10, 2],
      [300, 16],
    ] as const) {
      expect(() => validateProfile({ ...base, secret: new Uint8Array(16), periodSeconds, knocks })).not.toThrow();
    }
  });

  it("when range minus exclusions holds fewer than k ports then deriving fails with the ports field, not a hang", () => {
    expectInvalid(() => deriveSequence({ ...base, knocks: 4, portMin: 20000, portMax: 20002, exclude: [] }, 1), "ports");
  });
});
