import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { msUntilNextStep, stepAt, stepStartMs } from "../../src/protocol/window.js";

const periodArb = fc.integer({ min: 10, max: 300 });
/** Steps up to unix time 2^36 s (year ~4000), so step*P*1000 stays an exact double. */
const stepFor = (periodSeconds: number) => fc.integer({ min: 1, max: Math.floor(2 ** 36 / periodSeconds) });

describe("stepAt", () => {
  it("when the time is 1700000000 s with P = 30 then T = 56666666 (vector 1)", () => {
    expect(stepAt(1_700_000_000_000, 30)).toBe(56666666);
  });

  it("when the time is the unix epoch then T = 0, and 1 ms before the first boundary it is still 0", () => {
    expect(stepAt(0, 30)).toBe(0);
    expect(stepAt(29_999, 30)).toBe(0);
    expect(stepAt(30_000, 30)).toBe(1);
  });

  it("when the time is exactly step*P then stepAt is that step, and 1 ms earlier the step before (any P)", () => {
    fc.assert(
      fc.property(
        periodArb.chain((p) => fc.tuple(fc.constant(p), stepFor(p))),
        ([p, step]) => {
          const startMs = step * p * 1000;
          expect(stepStartMs(step, p)).toBe(startMs);
          expect(stepAt(startMs, p)).toBe(step);
          expect(stepAt(startMs - 1, p)).toBe(step - 1);
          expect(stepAt(startMs + p * 1000 - 1, p)).toBe(step);
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe("msUntilNextStep", () => {
  it("when the time is exactly a step boundary then a full period remains", () => {
    expect(msUntilNextStep(56666666 * 30_000, 30)).toBe(30_000);
  });

  it("when the time is the last ms of a window then 1 ms remains", () => {
    expect(msUntilNextStep(56666667 * 30_000 - 1, 30)).toBe(1);
  });

  it("when 1700000000 s with P = 30 then 10 s remain (the window began at 1699999980)", () => {
    expect(msUntilNextStep(1_700_000_000_000, 30)).toBe(10_000);
  });

  it("when any time is given then waiting that long lands exactly on the next step's first ms", () => {
    fc.assert(
      fc.property(periodArb, fc.integer({ min: 0, max: 2 ** 36 * 1000 }), (p, nowMs) => {
        const wait = msUntilNextStep(nowMs, p);
        expect(wait).toBeGreaterThan(0);
        expect(wait).toBeLessThanOrEqual(p * 1000);
        expect(stepAt(nowMs + wait, p)).toBe(stepAt(nowMs, p) + 1);
        expect(stepAt(nowMs + wait - 1, p)).toBe(stepAt(nowMs, p));
      }),
      { numRuns: 500 },
    );
  });
});
