import { stepAt, stepStartMs } from "../src/protocol/window.js";

/**
 * Which step to knock with. A server accepts a step once and also one step ahead (docs/protocol.md), so a client
 * that knocked in this window already can still knock at once with the next step.
 */
export type StepChoice =
  | {
      readonly kind: "use";
      readonly step: number;
      /** current: T; next: T+1 because T was used; clock-behind: the store holds a step after T+1. */
      readonly reason: "current" | "next" | "clock-behind";
    }
  | { readonly kind: "wait"; readonly untilMs: number };

/** Pure: the first step this profile has not used yet at nowMs, or when to ask again. */
export function chooseStep(nowMs: number, periodSeconds: number, lastStepUsed: number | undefined): StepChoice {
  const current = stepAt(nowMs, periodSeconds);
  if (lastStepUsed === undefined || current > lastStepUsed) return { kind: "use", step: current, reason: "current" };
  if (current + 1 > lastStepUsed) return { kind: "use", step: current + 1, reason: "next" };
  if (lastStepUsed === current + 1) return { kind: "wait", untilMs: stepStartMs(current + 1, periodSeconds) };
  // The store is more than one window ahead of this clock: it moved back, or an earlier run used --time-offset.
  // Waiting could take hours; the current step is the best guess (a server that saw the later step refuses it).
  return { kind: "use", step: current, reason: "clock-behind" };
}
