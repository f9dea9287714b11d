/**
 * The acceptance rule of docs/protocol.md section 6, rule by rule, in the doc's names and order. Pure: the
 * matcher (matcher.ts) finds which sequences a source's knocks follow and asks this module what each step means.
 *
 * T is the client's current step (its own period), s = skewWindows, W = toleratedWrongKnocks, x the step of a
 * sequence, L the client's last accepted step.
 */

/** 1. Candidates: the steps T-s..T+s can open (steps below 0 do not exist, so none is ever derived). */
export function isCandidate(x: number, currentStep: number, skewWindows: number): boolean {
  return x - currentStep <= skewWindows && currentStep - x <= skewWindows;
}

/**
 * 2. Matching: a sequence in progress survives W wrong knocks (knocks into the range that are not its next port)
 * between two of its ports; the (W+1)-th ends the source's progress through it. The count restarts at each port.
 * Only candidates get the tolerance: it is there so spoofed knocks cannot undo a knock that could open, and a
 * sequence of a step that can only be logged as skew (rule 5) is not worth a source's progress room, so the
 * first wrong knock ends it.
 */
export function wrongKnocksAllowed(x: number, currentStep: number, skewWindows: number, toleratedWrongKnocks: number): number {
  return isCandidate(x, currentStep, skewWindows) ? toleratedWrongKnocks : 0;
}

/** What a complete match of step x means. "lockout": it would open, but the source is banned for brute force. */
export type Verdict = "open" | "lockout" | "skew" | "replay";

export type CompleteMatch = {
  /** x */
  readonly step: number;
  /** T */
  readonly currentStep: number;
  /** L (undefined: the client never opened) */
  readonly lastAcceptedStep: number | undefined;
  /** Future steps spent by earlier skew events (rule 5). */
  readonly spentSteps: readonly number[];
  /** The source is banned for brute force (rule 6, config bruteForce.ban). */
  readonly bannedSource: boolean;
};

export function verdictOf(m: CompleteMatch, skewWindows: number): Verdict {
  const newer = m.lastAcceptedStep === undefined || m.step > m.lastAcceptedStep;
  const spent = m.spentSteps.includes(m.step);
  // 3. Once: a candidate step x newer than L opens (the caller makes x the new L).
  if (isCandidate(m.step, m.currentStep, skewWindows) && newer && !spent) return m.bannedSource ? "lockout" : "open";
  // 4. Replay: every step <= L is refused, and so is a spent step (rule 5).
  if (!newer || spent) return "replay";
  // 5. Clock skew: a step x > L beyond the candidates (the matcher holds steps up to T +- d, never further).
  return "skew";
}

/** When one knock completes several sequences (only possible with tiny ranges), the first of these wins. */
export const VERDICT_PREFERENCE: readonly Verdict[] = ["open", "lockout", "skew", "replay"];

/** 5. A future step seen in a skew event is spent: a later complete match of it is a replay. */
export function spendsStep(x: number, currentStep: number): boolean {
  return x > currentStep;
}
