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
