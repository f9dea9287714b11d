/** Window math of protocol v1: step T = floor(unix_seconds / P). */

export function stepAt(unixMs: number, periodSeconds: number): number {
  return Math.floor(unixMs / 1000 / periodSeconds);
}

/** First instant (ms) of a step. */
export function stepStartMs(step: number, periodSeconds: number): number {
  return step * periodSeconds * 1000;
}

/** Milliseconds until the next step begins. */
export function msUntilNextStep(unixMs: number, periodSeconds: number): number {
  return stepStartMs(stepAt(unixMs, periodSeconds) + 1, periodSeconds) - unixMs;
}

/**
 * The candidate steps T-s..T+s of the acceptance rule, oldest first. Steps below 0 do not exist (T is a uint64 in
 * the HMAC message); a host whose clock reads 1970 (no RTC, before NTP) would otherwise ask deriveSequence for them.
 */
export function candidateSteps(currentStep: number, skewWindows: number): number[] {
  const steps: number[] = [];
  for (let s = Math.max(0, currentStep - skewWindows); s <= currentStep + skewWindows; s++) steps.push(s);
  return steps;
}
