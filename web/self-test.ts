/** docs/protocol.md's test vectors, derived in this browser with WebCrypto by the shared derivation code. */
import { VECTORS } from "../test/vectors/v1.js";
import { deriveSequenceAsync } from "../src/protocol/derive-core.js";
import { decodeSecret } from "../src/protocol/profile-uri.js";
import { stepAt } from "../src/protocol/window.js";
import { webHmacSha256 } from "./crypto.js";

export async function runVectors(): Promise<{ passed: string[]; failed: string[] }> {
  const passed: string[] = [];
  const failed: string[] = [];
  for (const v of VECTORS) {
    const profile = { ...v, secret: decodeSecret(v.secretBase32), proto: "tcp" as const };
    const step = stepAt(v.atUnixSeconds * 1000, v.periodSeconds);
    const ports = await deriveSequenceAsync(webHmacSha256, profile, step);
    const ok = step === v.step && JSON.stringify(ports) === JSON.stringify(v.ports);
    (ok ? passed : failed).push(ok ? v.name : `${v.name}: got step ${step} ports ${ports.join(",")}`);
  }
  return { passed, failed };
}
