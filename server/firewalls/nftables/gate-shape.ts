/**
 * Pure comparison of the gate in the kernel with the gate tknock installs, for the self-healing check.
 *
 * The expectation comes from the same builder that installs the gate (buildInstallScript): its outline (table,
 * sets, chains, rule count, elements of the sets it fills) is read from the script's text, so whatever rules a
 * GateSpec produces are what is expected, with nothing restated here. nft prints rules in its own canonical
 * form, which the script's text need not match word for word; so right after each install the adapter also
 * records the kernel's listing of what it just installed (a snapshot, checked against the outline) and later
 * compares rules expression by expression with that.
 */
import type { GateProblem } from "../../../src/ports.js";
import { PREFILTER_SETS, SET_HEARTBEAT } from "./ruleset.js";

/**
 * The prefilter's sets: the daemon replaces their ports as windows move, and the kernel adds active sources from
 * the packet path. Present, but their elements not compared.
 */
const ELEMENTS_NOT_COMPARED = new Set<string>([...PREFILTER_SETS, SET_HEARTBEAT]);

export type SetShape = {
  /** A set with timeouts holds grants, which come and go: its elements are never compared. */
  readonly dynamic: boolean;
  /** Sorted, normalized; undefined when not known or not compared. */
  readonly elements?: readonly string[];
};

export type ChainShape = {
  readonly ruleCount: number;
  /** Each rule's expressions as normalized JSON, in order; undefined when not known (outline only). */
  readonly rules?: readonly string[];
  /** "type/hook/priority/policy" for a base chain, "" for a regular chain; undefined when not known. */
  readonly hook?: string;
};

export type GateShape = {
  readonly sets: ReadonlyMap<string, SetShape>;
  readonly chains: ReadonlyMap<string, ChainShape>;
};

/** The gate an install script builds, read from the script itself (see buildInstallScript). */
export function outlineOfInstallScript(script: string): GateShape {
  const sets = new Map<string, { dynamic: boolean; elements: string[] }>();
  const chains = new Map<string, { ruleCount: number }>();
  for (const raw of script.split("\n")) {
    const line = raw.trim();
    // A chain the script deletes again (the forward gate turned off) is not part of the gate.
    const deleted = /^delete chain \S+ \S+ (\S+)$/.exec(line)?.[1];
    if (deleted !== undefined) chains.delete(deleted);
    // add set|chain|element|rule FAMILY TABLE NAME ...
    const m = /^add (set|chain|element|rule) \S+ \S+ (\S+)(.*)$/.exec(line);
    if (!m) continue;
    const [, what, name, rest] = m as unknown as [string, string, string, string];
    if (what === "set") {
      sets.set(name, { dynamic: /\bflags\b[^;]*\btimeout\b/.test(rest), elements: sets.get(name)?.elements ?? [] });
    } else if (what === "chain") {
      if (!chains.has(name)) chains.set(name, { ruleCount: 0 });
    } else if (what === "rule") {
      const chain = chains.get(name) ?? { ruleCount: 0 };
      chain.ruleCount++;
      chains.set(name, chain);
    } else {
      const body = /^\s*\{(.*)\}\s*$/.exec(rest)?.[1] ?? "";
      const set = sets.get(name) ?? { dynamic: false, elements: [] };
      set.elements.push(...splitElements(body));
      sets.set(name, set);
    }
  }
  return {
    sets: new Map(
      [...sets].map(([n, s]) => [
        n,
        s.dynamic || ELEMENTS_NOT_COMPARED.has(n) ? { dynamic: s.dynamic } : { dynamic: false, elements: sortedUnique(s.elements) },
      ]),
    ),
    chains: new Map(chains),
  };
}

/** The gate as `nft -j list table FAMILY TABLE` shows it; undefined when the output has no such table. */
export function shapeOfListing(json: string, tableName: string): GateShape | undefined {
  if (json.trim() === "") return undefined;
  const doc = JSON.parse(json) as { nftables?: unknown };
  if (!Array.isArray(doc.nftables)) throw new Error("nft -j output has no nftables array");
  let table = false;
  const sets = new Map<string, SetShape>();
  const chains = new Map<string, { ruleCount: number; rules: string[]; hook: string }>();
  const rules: { chain: string; text: string }[] = [];
  for (const item of doc.nftables as Record<string, unknown>[]) {
    if (typeof item !== "object" || item === null) continue;
    if (isOurs(item["table"], tableName, "name")) table = true;
    const set = item["set"] as Record<string, unknown> | undefined;
    if (isOurs(set, tableName, "table") && typeof set?.["name"] === "string") {
      const flags = Array.isArray(set["flags"]) ? (set["flags"] as unknown[]) : [];
      const dynamic = flags.includes("timeout");
      const elements = Array.isArray(set["elem"]) ? (set["elem"] as unknown[]).map(elementText) : [];
      sets.set(set["name"], dynamic || ELEMENTS_NOT_COMPARED.has(set["name"]) ? { dynamic } : { dynamic, elements: sortedUnique(elements) });
    }
    const chain = item["chain"] as Record<string, unknown> | undefined;
    if (isOurs(chain, tableName, "table") && typeof chain?.["name"] === "string") {
      const hook = chain["hook"] === undefined ? "" : [chain["type"], chain["hook"], chain["prio"], chain["policy"]].map(String).join("/");
      chains.set(chain["name"], { ruleCount: 0, rules: [], hook });
    }
    const rule = item["rule"] as Record<string, unknown> | undefined;
    if (isOurs(rule, tableName, "table") && typeof rule?.["chain"] === "string") {
      rules.push({ chain: rule["chain"], text: JSON.stringify({ expr: withoutCounts(rule["expr"]), comment: rule["comment"] ?? null }) });
    }
  }
  if (!table) return undefined;
  for (const r of rules) {
    const c = chains.get(r.chain);
    if (!c) continue; // a rule is always listed after its chain; a surprise is not worth a crash
    c.rules.push(r.text);
    c.ruleCount++;
  }
  return { sets, chains };
}

/**
 * What is wrong with `actual` compared with `expected`, the first problem found, most serious first; undefined
 * when the gate is intact. Only what `expected` knows is compared (an outline has no rule text).
 */
export function findGateProblem(expected: GateShape, actual: GateShape | undefined): GateProblem | undefined {
  if (!actual) return { kind: "table-missing", message: "table missing" };
  for (const name of expected.chains.keys()) {
    if (!actual.chains.has(name)) return { kind: "chain-missing", message: `chain ${name} missing` };
  }
  for (const name of expected.sets.keys()) {
    if (!actual.sets.has(name)) return { kind: "set-missing", message: `set ${name} missing` };
  }
  for (const [name, want] of expected.chains) {
    const got = actual.chains.get(name) as ChainShape;
    if (want.hook !== undefined && got.hook !== undefined && want.hook !== got.hook) {
      return { kind: "rules-differ", message: `chain ${name} hook, priority or policy changed` };
    }
    if (got.ruleCount !== want.ruleCount) {
      return { kind: "rules-differ", message: `rules differ in chain ${name}: ${got.ruleCount} rules, expected ${want.ruleCount}` };
    }
    if (want.rules && got.rules) {
      const at = want.rules.findIndex((r, i) => got.rules?.[i] !== r);
      if (at >= 0) return { kind: "rules-differ", message: `rules differ in chain ${name}: rule ${at + 1} changed` };
    }
  }
  for (const [name, want] of expected.sets) {
    const got = actual.sets.get(name) as SetShape;
    if (want.dynamic !== got.dynamic) return { kind: "rules-differ", message: `set ${name} flags changed` };
    if (want.elements && got.elements && want.elements.join(",") !== got.elements.join(",")) {
      return { kind: "elements-differ", message: `set ${name} elements differ: ${show(got.elements)}, expected ${show(want.elements)}` };
    }
  }
  for (const name of actual.chains.keys()) {
    if (!expected.chains.has(name)) return { kind: "unexpected-object", message: `unexpected chain ${name} in the table` };
  }
  for (const name of actual.sets.keys()) {
    if (!expected.sets.has(name)) return { kind: "unexpected-object", message: `unexpected set ${name} in the table` };
  }
  return undefined;
}

function isOurs(obj: unknown, tableName: string, key: "name" | "table"): boolean {
  if (typeof obj !== "object" || obj === null) return false;
  const o = obj as Record<string, unknown>;
  return o["family"] === "inet" && o[key] === tableName;
}

/** Element text comparable with the script's: 22, 10000-10010, 198.18.0.1 . 22, 10.0.0.0/8. */
function elementText(e: unknown): string {
  if (typeof e === "number" || typeof e === "string") return String(e);
  if (typeof e !== "object" || e === null) return JSON.stringify(e);
  const o = e as Record<string, unknown>;
  if ("elem" in o) return elementText((o["elem"] as Record<string, unknown> | null)?.["val"]);
  if (Array.isArray(o["range"])) return (o["range"] as unknown[]).map(elementText).join("-");
  if (Array.isArray(o["concat"])) return (o["concat"] as unknown[]).map(elementText).join(" . ");
  const prefix = o["prefix"] as { addr?: unknown; len?: unknown } | undefined;
  if (prefix) return `${elementText(prefix.addr)}/${String(prefix.len)}`;
  return JSON.stringify(e);
}

function splitElements(body: string): string[] {
  return body
    .split(",")
    .map((e) => e.trim().replace(/\s+/g, " "))
    .filter((e) => e !== "");
}

/** Counter values change with traffic; only the presence of a counter belongs to the rule. */
function withoutCounts(expr: unknown): unknown {
  if (Array.isArray(expr)) return expr.map(withoutCounts);
  if (typeof expr !== "object" || expr === null) return expr;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(expr)) out[k] = k === "counter" ? null : withoutCounts(v);
  return out;
}

function sortedUnique(values: readonly string[]): string[] {
  return [...new Set(values)].sort();
}

function show(elements: readonly string[]): string {
  const text = `{ ${elements.join(", ")} }`;
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}
