import { InvalidProfileError } from "../errors.js";
import { isPort } from "../port-number.js";
import type { KnockProto } from "../ports.js";

/** The protocol parameters one client shares with the server (protocol v1). */
export type KnockProfile = {
  readonly secret: Uint8Array;
  readonly periodSeconds: number;
  readonly knocks: number;
  readonly portMin: number;
  readonly portMax: number;
  readonly exclude: readonly number[];
  readonly proto: KnockProto;
};

export const PROFILE_LIMITS = {
  minSecretBytes: 16,
  defaultSecretBytes: 32,
  periodSeconds: { min: 10, max: 300, default: 30 },
  knocks: { min: 2, max: 16, default: 4 },
  portMin: 10000,
  portMax: 59999,
} as const;

/** Counts the usable ports of a range once its exclusions are taken out. */
export function usablePortCount(p: Pick<KnockProfile, "portMin" | "portMax" | "exclude">): number {
  const excludedInRange = new Set(p.exclude.filter((x) => x >= p.portMin && x <= p.portMax));
  return p.portMax - p.portMin + 1 - excludedInRange.size;
}

/** Throws InvalidProfileError naming the first rule a profile breaks. */
export function validateProfile(p: KnockProfile): KnockProfile {
  const L = PROFILE_LIMITS;
  if (p.secret.length < L.minSecretBytes) {
    throw new InvalidProfileError("secret", `secret is ${p.secret.length} bytes; at least ${L.minSecretBytes} are required`);
  }
  if (!Number.isInteger(p.periodSeconds) || p.periodSeconds < L.periodSeconds.min || p.periodSeconds > L.periodSeconds.max) {
    throw new InvalidProfileError(
      "period",
      `period ${p.periodSeconds} is not allowed: use an integer from ${L.periodSeconds.min} to ${L.periodSeconds.max} seconds`,
    );
  }
  if (!Number.isInteger(p.knocks) || p.knocks < L.knocks.min || p.knocks > L.knocks.max) {
    throw new InvalidProfileError("knocks", `knocks ${p.knocks} is not allowed: use an integer from ${L.knocks.min} to ${L.knocks.max}`);
  }
  if (!isPort(p.portMin) || !isPort(p.portMax) || p.portMin > p.portMax) {
    throw new InvalidProfileError("ports", `port range ${p.portMin}-${p.portMax} is not valid: use MIN-MAX with 1 <= MIN <= MAX <= 65535`);
  }
  for (const x of p.exclude) {
    if (!isPort(x)) throw new InvalidProfileError("exclude", `excluded port ${String(x)} is not a port number (1..65535)`);
  }
  if (p.proto !== "tcp" && p.proto !== "udp") {
    throw new InvalidProfileError("proto", `proto ${String(p.proto)} is not allowed: use tcp or udp`);
  }
  const usable = usablePortCount(p);
  if (usable < p.knocks) {
    throw new InvalidProfileError(
      "ports",
      `port range ${p.portMin}-${p.portMax} minus exclusions holds ${usable} ports, fewer than the ${p.knocks} knocks: widen the range or lower knocks`,
    );
  }
  return p;
}
