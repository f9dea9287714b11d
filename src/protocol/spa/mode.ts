/** Which ways a client may knock (docs/protocol.md §7 `mode`): the sequence of section 4, SPA v1, or either. */
export type KnockMode = "sequence" | "spa" | "both";
export const KNOCK_MODES: readonly KnockMode[] = ["sequence", "spa", "both"];
export const DEFAULT_KNOCK_MODE: KnockMode = "sequence";

export function isKnockMode(x: unknown): x is KnockMode {
  return x === "sequence" || x === "spa" || x === "both";
}

export function allowsSpa(mode: KnockMode | undefined): boolean {
  return mode === "spa" || mode === "both";
}

export function allowsSequence(mode: KnockMode | undefined): boolean {
  return mode === undefined || mode === "sequence" || mode === "both";
}
