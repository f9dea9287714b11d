import { ExitCode, TknockError } from "../../src/errors.js";

const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** "90s", "10m", "2h", "7d" -> milliseconds; a usage error otherwise. */
export function parseDurationMs(text: string, option: string): number {
  const m = /^(\d{1,9})([smhd])$/.exec(text.trim());
  if (!m) throw new TknockError("TKNOCK_USAGE", `${option} takes a duration like 90s, 10m, 2h or 7d, got ${JSON.stringify(text)}`, ExitCode.usage);
  return Number(m[1]) * (UNIT_MS[m[2] as string] as number);
}
