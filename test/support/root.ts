import { describe } from "vitest";

/** True when this process may create network namespaces and firewall tables. */
export const isRoot = process.getuid?.() === 0;

/**
 * describe() for suites that need root and namespaces. Outside CI they are skipped without root; in CI
 * (CI=true) a missing privilege fails the run, because these suites must never be skipped there.
 */
export function describeAsRoot(name: string, fn: () => void): void {
  if (isRoot) {
    describe(name, fn);
  } else if (process.env["CI"] === "true") {
    describe(name, () => {
      throw new Error(`${name}: needs root (network namespaces, nft), and CI must not skip it`);
    });
  } else {
    describe.skip(`${name} (needs root)`, fn);
  }
}
