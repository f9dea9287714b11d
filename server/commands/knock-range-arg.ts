import { ExitCode, TknockError } from "../../src/errors.js";

/**
 * A knock range narrower than this is refused by `init`: with 4 knocks drawn from N ports a guess succeeds with
 * odds of about N^-4, so 256 ports still mean 1 in 4 billion per try (docs/protocol.md), and a client's
 * exclusions (protected and listening ports) leave room.
 */
export const MIN_KNOCK_RANGE_PORTS = 256;

/** Parses `--knock-range MIN-MAX` (e.g. 20000-29999). */
export function parseKnockRangeArg(value: string): { min: number; max: number } {
  const m = /^\s*(\d{1,5})\s*-\s*(\d{1,5})\s*$/.exec(value);
  const usage = (why: string): TknockError => new TknockError("TKNOCK_USAGE", `--knock-range ${JSON.stringify(value.slice(0, 40))} ${why}`, ExitCode.usage);
  if (!m) throw usage("is not MIN-MAX: give two port numbers, e.g. --knock-range 20000-29999");
  const min = Number(m[1]);
  const max = Number(m[2]);
  if (min < 1 || max > 65535) throw usage("is out of bounds: use ports from 1 to 65535");
  if (min > max) throw usage(`has MIN above MAX: write it as ${max}-${min}`);
  if (max - min + 1 < MIN_KNOCK_RANGE_PORTS)
    throw usage(`holds ${max - min + 1} ports: give at least ${MIN_KNOCK_RANGE_PORTS}, so knock sequences stay hard to guess`);
  return { min, max };
}
