import { sequenceAt } from "./derive.js";
import type { KnockProfile } from "./profile.js";

/** The step and ports of a profile at a time, as both CLIs print them (`sequence`, `--json` for scripts). */
export function formatSequence(profile: KnockProfile, atMs: number, json: boolean): string {
  const { step, ports } = sequenceAt(profile, atMs);
  return json ? JSON.stringify({ step, ports, proto: profile.proto }) : `step ${step}: ${profile.proto} ${ports.join(" ")}`;
}
