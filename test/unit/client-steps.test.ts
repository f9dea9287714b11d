import { describe, expect, it } from "vitest";
import { chooseStep } from "../../client/steps.js";

const P = 30;
const T = 56_666_666; // the step of 1700000000 with a 30 s period
const startOfT = T * P * 1000;

describe("step selection", () => {
  it("when the profile never knocked then the current step is used", () => {
    expect(chooseStep(startOfT + 5_000, P, undefined)).toEqual({ kind: "use", step: T, reason: "current" });
  });

  it("when an earlier step was used then the current step is used", () => {
    expect(chooseStep(startOfT + 5_000, P, T - 3)).toEqual({ kind: "use", step: T, reason: "current" });
  });

  it("when the current step was used then the next one is used at once", () => {
    expect(chooseStep(startOfT + 29_999, P, T)).toEqual({ kind: "use", step: T + 1, reason: "next" });
  });

  it("when the current and the next step were used then it waits for the next window", () => {
    expect(chooseStep(startOfT + 12_000, P, T + 1)).toEqual({ kind: "wait", untilMs: (T + 1) * P * 1000 });
  });

  it("when the wait is over then the step after the last one used is free", () => {
    expect(chooseStep((T + 1) * P * 1000, P, T + 1)).toEqual({ kind: "use", step: T + 2, reason: "next" });
  });

  it("when the store is more than a window ahead of the clock then the current step is used and flagged", () => {
    expect(chooseStep(startOfT, P, T + 100)).toEqual({ kind: "use", step: T, reason: "clock-behind" });
  });

  it("when the period differs then the step follows it", () => {
    expect(chooseStep(1_700_000_000_000, 60, undefined)).toEqual({ kind: "use", step: Math.floor(1_700_000_000 / 60), reason: "current" });
  });
});
