import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { ObservedKnock } from "../../src/ports.js";
import { deriveSequence } from "../../src/protocol/derive.js";
import type { KnockProfile } from "../../src/protocol/profile.js";
import { stepStartMs } from "../../src/protocol/window.js";
import { Matcher } from "../../server/matcher/matcher.js";
import { SourceTable } from "../../server/matcher/source-table.js";
import { CapturedKnock } from "../../server/packets/captured-knock.js";
import { client, knock, MATCHER_OPTIONS as OPTIONS, profile, T, T0_MS } from "../support/matcher-fixtures.js";

describe("matcher: source keys", () => {
  const bothWays = [
    { src: "198.18.0.1", captured: (port: number, at: number) => new CapturedKnock(4, 0xc612_0001 | 0, 0, 0, 0, port, "tcp", at) },
    { src: "fd18:18::1", captured: (port: number, at: number) => new CapturedKnock(6, 0xfd18_0018 | 0, 0, 0, 1, port, "tcp", at) },
  ];
  for (const { src, captured } of bothWays) {
    it(`when ${src} knocks both as captured bytes and as text then it is one source and its sequence opens`, () => {
      const p = profile(1);
      const m = new Matcher([client("alice", p)], OPTIONS, T0_MS);
      const [a, b, c, d] = deriveSequence(p, T) as [number, number, number, number];
      knock(m, src, a, T0_MS);
      m.onKnock(captured(b, T0_MS + 100));
      knock(m, src, c, T0_MS + 200);
      expect(m.onKnock(captured(d, T0_MS + 300))).toMatchObject({ kind: "open", client: "alice", src });
      expect(m.stats().sources).toBe(1);
    });
  }

  it("when an address is spelt another way (leading zeros, IPv4-mapped IPv6) then it is a source of its own", () => {
    const p = profile(2);
    const m = new Matcher([client("alice", p)], OPTIONS, T0_MS);
    const [a, b, c, d] = deriveSequence(p, T) as [number, number, number, number];
    knock(m, "198.18.0.1", a, T0_MS);
    knock(m, "198.18.0.1", b, T0_MS + 100);
    knock(m, "198.018.0.1", c, T0_MS + 200);
    expect(knock(m, "::ffff:198.18.0.1", d, T0_MS + 300).kind).not.toBe("open");
    expect(m.stats().sources).toBe(3);
  });

  it("when IPv4 and IPv6 sources fill the table then eviction removes them and the survivors still open", () => {
    const p = profile(3);
    const m = new Matcher([client("alice", p)], { ...OPTIONS, maxSources: 50 }, T0_MS);
    const seq = deriveSequence(p, T);
    for (let i = 0; i < 2000; i++) {
      const src = i % 2 === 0 ? `198.18.${(i >> 8) & 255}.${i & 255}` : `fd18:18::${i.toString(16)}`;
      knock(m, src, seq[0]!, T0_MS + i);
    }
    expect(m.stats()).toMatchObject({ sources: 50, evictions: 1950 });
    expect(knock(m, "198.18.7.206", seq[1]!, T0_MS + 2100).kind).toBe("progress"); // i = 1998, still tracked
    expect(knock(m, "fd18:18::7cf", seq[1]!, T0_MS + 2100).kind).toBe("progress"); // i = 1999
  });

  it("when random IPv4, IPv6 and other text sources come and go then each tracked source is found in a slot of its own", () => {
    const src = fc.oneof(
      fc.tuple(fc.nat(3), fc.nat(255)).map(([c, d]) => `10.0.${c}.${d}`),
      fc.nat(300).map((i) => `fd18:18::${i.toString(16)}`),
      fc.nat(300).map((i) => `host-${i}`),
    );
    fc.assert(
      fc.property(fc.array(src, { maxLength: 3000 }), fc.integer({ min: 1, max: 700 }), (srcs, capacity) => {
        const t = new SourceTable(capacity, 4);
        const knockFrom = (s: string): ObservedKnock => ({ src: s, dstPort: 1, proto: "tcp", atMs: 0 });
        const find = (s: string): number => t.find(knockFrom(s));
        for (const s of srcs) {
          if (find(s) >= 0) continue;
          const slot = t.insert(knockFrom(s));
          expect(find(s)).toBe(slot);
        }
        const distinct = [...new Set(srcs)];
        const slots = distinct.map(find).filter((slot) => slot >= 0);
        expect(new Set(slots).size).toBe(slots.length);
        expect(slots.length).toBe(t.size);
        expect(t.size).toBe(Math.min(capacity, distinct.length));
      }),
      { numRuns: 200 },
    );
  });
});

describe("matcher: progress storage", () => {
  it("when one knock starts more sequences than a source record holds then none is dropped and one still completes", () => {
    // 6 clients x 21 windows on 4 ports: about 30 sequences start at each port.
    const narrow = (seed: number): KnockProfile => profile(seed, { knocks: 2, portMin: 40000, portMax: 40003 });
    const clients = [1, 2, 3, 4, 5, 6].map((i) => client(`c${i}`, narrow(i)));
    const m = new Matcher(clients, OPTIONS, T0_MS);
    const [a, b] = deriveSequence(narrow(1), T) as [number, number];
    const startsAtA = m.tableSnapshot().filter((line) => Number(line.split(" ")[2]!.split(",")[0]) === a).length;
    expect(startsAtA).toBeGreaterThan(12);
    expect(knock(m, "198.18.0.1", a, T0_MS).kind).toBe("progress");
    expect(knock(m, "198.18.0.1", b, T0_MS + 100).kind).toBe("open");
    expect(m.stats().progressOverflow).toBe(0);
    // The same source again, now with few sequences in progress.
    const [a2, b2] = deriveSequence(narrow(1), T + 1) as [number, number];
    knock(m, "198.18.0.1", a2, T0_MS + 200);
    expect(knock(m, "198.18.0.1", b2, T0_MS + 300).kind).toBe("open");
  });

  it("when the windows move hundreds of steps between two knocks then the first knocks' progress does not continue", () => {
    const ps = Array.from({ length: 20 }, (_, i) => profile(40 + i));
    const m = new Matcher(
      ps.map((p, i) => client(`c${i}`, p)),
      OPTIONS,
      T0_MS,
    );
    const seqs = ps.map((p) => deriveSequence(p, T));
    seqs.forEach((seq, i) => expect(knock(m, `198.18.${i}.1`, seq[0]!, T0_MS).kind).toBe("progress"));
    // One window at a time: every sequence those knocks started retires, and retired sequence ids get reused.
    for (let x = 1; x <= 200; x++) m.tick(stepStartMs(T + x, 30));
    // Knock time stays just after the first knocks (the capture's clock may lag the daemon's timer).
    const ds = seqs.map((seq, i) => knock(m, `198.18.${i}.1`, seq[1]!, T0_MS + 100).kind);
    expect(ds).toEqual(seqs.map(() => "reset"));
  });
});
