import { sequenceAt } from "./derive.js";
import type { KnockProfile } from "./profile.js";
import { spaPort } from "./spa/keys.js";
import type { KnockMode } from "./spa/mode.js";

/**
 * The step and ports of a profile at a time, as both CLIs print them (`sequence`, `--json` for scripts). An SPA
 * profile's "sequence" is its one SPA port (a UDP datagram); a profile of both modes also names it.
 */
export function formatSequence(profile: KnockProfile & { readonly mode?: KnockMode }, atMs: number, json: boolean): string {
  const { step, ports } = sequenceAt(profile, atMs);
  if (profile.mode === "spa") {
    const port = spaPort(profile, step);
    return json ? JSON.stringify({ step, ports: [port], proto: "udp", mode: "spa" }) : `step ${step}: spa udp ${port}`;
  }
  if (profile.mode === "both") {
    const port = spaPort(profile, step);
    return json ? JSON.stringify({ step, ports, proto: profile.proto, spaPort: port }) : `step ${step}: ${profile.proto} ${ports.join(" ")} (spa: udp ${port})`;
  }
  return json ? JSON.stringify({ step, ports, proto: profile.proto }) : `step ${step}: ${profile.proto} ${ports.join(" ")}`;
}
