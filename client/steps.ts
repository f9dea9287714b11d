import { stepAt, stepStartMs } from "../src/protocol/window.js";

/**
 * Which step to knock with. A server accepts a step once, every step up to the last accepted one is spent, and it
 * also accepts one step ahead (docs/protocol.md), so a client that knocked in this window already can still knock
 * at once with the next step.
 */
export type StepChoice =
  | {
      readonly kind: "use";
      readonly step: number;
      /** current: T; next: T+1 because T was used; clock-behind: the store holds a step after T+1. */
      readonly reason: "current" | "next" | "clock-behind";
    }
  | { readonly kind: "wait"; readonly untilMs: number };

/**
 * Pure: the first step this profile has not used yet at nowMs, or when to ask again. lastStepUsed is the highest
 * step the server may have accepted (so every step up to it is spent); avoid lists steps sent that the server
 * refused as too far ahead (spent there too, but they do not spend the steps below them).
 */
export function chooseStep(nowMs: number, periodSeconds: number, lastStepUsed: number | undefined, avoid: readonly number[] = []): StepChoice {
  const current = stepAt(nowMs, periodSeconds);
  const free = (s: number): boolean => (lastStepUsed === undefined || s > lastStepUsed) && !avoid.includes(s);
  if (free(current)) return { kind: "use", step: current, reason: "current" };
  if (free(current + 1)) return { kind: "use", step: current + 1, reason: "next" };
  if (lastStepUsed === undefined || lastStepUsed <= current + 1) return { kind: "wait", untilMs: stepStartMs(current + 1, periodSeconds) };
  // The store is more than one window ahead of this clock: it moved back, or the stored time offset was lowered.
  // Waiting could take hours; the current step is the best guess (a server that saw the later step refuses it).
  return { kind: "use", step: current, reason: "clock-behind" };
}

/**
 * How a step just sent is recorded. The server accepts steps within one window of its own clock; a step further
 * from this clock (a one-off --time-offset of two windows or more) was refused as clock skew if this clock is
 * right, so it must never be sent again but does not spend the steps below it: it goes to the avoid list.
 */
export function recordKind(step: number, nowMs: number, periodSeconds: number): "last" | "avoid" {
  return Math.abs(step - stepAt(nowMs, periodSeconds)) <= 1 ? "last" : "avoid";
}
