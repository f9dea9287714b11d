/** The acceptance rule (docs/protocol.md section 6) on its own, rule by rule. */
import { describe, expect, it } from "vitest";
import { isCandidate, verdictOf, wrongKnocksAllowed, type CompleteMatch } from "../../server/matcher/acceptance.js";
import { T } from "../support/matcher-fixtures.js";

function match(over: Partial<CompleteMatch> = {}): CompleteMatch {
  return { step: T, currentStep: T, lastAcceptedStep: undefined, spentSteps: [], bannedSource: false, ...over };
}

describe("acceptance rule 1: candidates", () => {
  it("when skew is s then the 2s+1 steps T-s..T+s are candidates and no others", () => {
    const candidates = (s: number): number[] => [-4, -3, -2, -1, 0, 1, 2, 3, 4].map((d) => T + d).filter((x) => isCandidate(x, T, s));
    expect(candidates(0)).toEqual([T]);
    expect(candidates(1)).toEqual([T - 1, T, T + 1]);
    expect(candidates(3)).toEqual([T - 3, T - 2, T - 1, T, T + 1, T + 2, T + 3]);
  });
});

describe("acceptance rule 2: wrong knocks", () => {
  it("when a step is a candidate then its sequence survives W wrong knocks; a diagnostic one survives none", () => {
    expect(wrongKnocksAllowed(T + 1, T, 1, 4)).toBe(4);
    expect(wrongKnocksAllowed(T + 2, T, 1, 4)).toBe(0);
    expect(wrongKnocksAllowed(T, T, 0, 0)).toBe(0);
  });
});

describe("acceptance rules 3-5: a complete match", () => {
  it("when a candidate step newer than the last accepted one completes then it opens", () => {
    expect(verdictOf(match({ step: T + 1, lastAcceptedStep: T }), 1)).toBe("open");
    expect(verdictOf(match(), 1)).toBe("open");
  });

  it("when the step is at or below the last accepted one, or spent, then it is a replay, whatever the skew", () => {
    expect(verdictOf(match({ lastAcceptedStep: T }), 1)).toBe("replay");
    expect(verdictOf(match({ step: T - 5, lastAcceptedStep: T }), 1)).toBe("replay");
    expect(verdictOf(match({ step: T + 1, spentSteps: [T + 1] }), 1)).toBe("replay");
  });

  it("when a newer step beyond the candidates completes then it is clock skew", () => {
    expect(verdictOf(match({ step: T + 2 }), 1)).toBe("skew");
    expect(verdictOf(match({ step: T - 2, lastAcceptedStep: T - 3 }), 1)).toBe("skew");
  });

  it("when the source is banned then a step that would open is a lockout, and the others keep their verdict", () => {
    expect(verdictOf(match({ bannedSource: true }), 1)).toBe("lockout");
    expect(verdictOf(match({ bannedSource: true, lastAcceptedStep: T }), 1)).toBe("replay");
    expect(verdictOf(match({ bannedSource: true, step: T + 3 }), 1)).toBe("skew");
  });
});
