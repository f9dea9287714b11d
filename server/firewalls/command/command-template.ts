/**
 * The command backend's open and close commands: argument arrays from server.json with placeholders, expanded
 * into argv for execFile (never a shell). Every value put in comes from a validated grant (validate.ts): an IP
 * address in canonical form, a port, "tcp" or "udp", whole seconds, a client name; none can hold a space, a quote
 * or a shell metacharacter, and each lands inside one argument, never splitting or adding one.
 */
import type { KnockProto } from "../../../src/ports.js";
import type { ValidGrant } from "../validate.js";

export const PLACEHOLDERS = ["ip", "port", "proto", "timeout", "client"] as const;
export type Placeholder = (typeof PLACEHOLDERS)[number];

/** What a grant without a known client puts in {client}. */
export const UNKNOWN_CLIENT = "-";

const PLACEHOLDER = /\{([A-Za-z_]*)\}/g;

/** What is wrong with a command template, one line, or undefined when it can be used. */
export function commandTemplateProblem(argv: unknown): string | undefined {
  if (!Array.isArray(argv) || argv.length === 0) return "must be a non-empty list of strings: the program, then its arguments";
  for (const [i, arg] of (argv as unknown[]).entries()) {
    if (typeof arg !== "string" || arg === "") return `argument ${i} must be a non-empty string`;
    if (arg.includes("\0")) return `argument ${i} holds a NUL byte`;
    for (const m of arg.matchAll(PLACEHOLDER)) {
      if (!(PLACEHOLDERS as readonly string[]).includes(m[1] ?? "")) {
        return `argument ${i} has an unknown placeholder {${m[1] ?? ""}}: use ${PLACEHOLDERS.map((p) => `{${p}}`).join(" ")}`;
      }
    }
  }
  const program = argv[0] as string;
  if (!program.startsWith("/")) return `the program ${JSON.stringify(program.slice(0, 60))} must be an absolute path (no PATH lookup for a root daemon)`;
  if (/\{[A-Za-z_]*\}/.test(program)) return "the program may not contain a placeholder";
  return undefined;
}

/** Whether the command names the protocol, so it runs once per protocol. */
export function usesProto(argv: readonly string[]): boolean {
  return argv.some((a) => a.includes("{proto}"));
}

/** The argv for one grant (and protocol): each placeholder replaced inside its own argument. */
export function expandCommand(argv: readonly string[], grant: ValidGrant, proto: KnockProto): string[] {
  const values: Record<Placeholder, string> = {
    ip: grant.src,
    port: String(grant.port),
    proto,
    timeout: String(grant.openSeconds),
    client: grant.client ?? UNKNOWN_CLIENT,
  };
  return argv.map((arg) => arg.replace(PLACEHOLDER, (_, name: string) => values[name as Placeholder]));
}
