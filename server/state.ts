/**
 * The last accepted step per client, persisted in <stateDir>/state.json:
 *   {"version":1,"lastAcceptedStep":{"alice":56666666},"spentSteps":{"bob":[28333336]}}
 * One number per client is the whole replay defence (each step once, monotonic per client), so every change is
 * written atomically and durably (temp file, fsync, rename) BEFORE the daemon opens the firewall. spentSteps (only
 * written when not empty; older files without it load) holds future steps spent by skew refusals.
 *
 * A step the store could not write is still spent: the store keeps it in memory (so the next successful write
 * carries it) and moves state.json aside, which needs no free space, so a restart fails closed instead of reading
 * the older file that would accept the step again (docs/design.md "State").
 */
import { existsSync, readFileSync, renameSync, unlinkSync } from "node:fs";
import { ExitCode, TknockError } from "../src/errors.js";
import { errnoCode, readFileError } from "../src/fs-errors.js";
import { writeFileAtomic } from "./config/load.js";
import { isValidClientName } from "../src/protocol/profile-uri.js";
import { stepAt } from "../src/protocol/window.js";

export type StepStoreOptions = {
  readonly nowMs: number;
  /** The enrolled clients, for the fail-closed start. */
  readonly clients: readonly { readonly name: string; readonly periodSeconds: number }[];
  readonly skewWindows: number;
  /** The matcher's diagnostic span: future steps up to it may have been spent by skew refusals. */
  readonly diagnosticWindows: number;
  /** Receives the warning when the store starts fail-closed (one line, no secret). */
  readonly log?: (message: string) => void;
};

type StateFile = {
  version: 1;
  lastAcceptedStep: Record<string, number>;
  spentSteps?: Record<string, number[]>;
  /** SPA nonces seen (32 hex digits) and when each stops mattering (Unix ms): server/spa/nonce-cache.ts. */
  spaNonces?: Record<string, number>;
};
type StateContent = { steps: Map<string, number>; spent: Map<string, number[]>; nonces: Map<string, number> };

/** Where a state file that could not be rewritten is moved, so the next start fails closed (kept for the admin). */
export const UNSAVED_SUFFIX = ".unsaved";

export class StepStore {
  private constructor(
    readonly path: string,
    private readonly steps: Map<string, number>,
    private readonly spentSteps: Map<string, number[]>,
    private nonces: Map<string, number>,
    /** True when the file was missing or invalid at start and every client was set to its current step + skew. */
    readonly failedClosed: boolean,
  ) {}

  /**
   * Loads the store. A missing, unreadable or invalid file fails closed: every client's last accepted step
   * becomes its current step + max(skewWindows, diagnosticWindows), which covers every step that may already
   * have been accepted (up to T + skew) or spent by a skew refusal (up to T + diagnostic); a warning is logged,
   * and the file is written so the next start is normal. Throws TKNOCK_STATE_WRITE when that write fails: the
   * daemon cannot run without durable state.
   */
  static open(path: string, opts: StepStoreOptions): StepStore {
    let content: StateContent | undefined;
    let why = "";
    try {
      content = parseStateFile(readFileSync(path, "utf8"));
      if (content === undefined) why = "is not a valid state file";
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      why = code === "ENOENT" ? "is missing" : `cannot be read (${code ?? "error"})`;
      if (code === "ENOENT" && existsSync(`${path}${UNSAVED_SUFFIX}`)) why += ` (moved to ${path}${UNSAVED_SUFFIX} after a failed write)`;
    }
    if (content !== undefined) return new StepStore(path, content.steps, content.spent, content.nonces, false);

    const ahead = Math.max(opts.skewWindows, opts.diagnosticWindows);
    const closed = new Map<string, number>();
    for (const c of opts.clients) closed.set(c.name, stepAt(opts.nowMs, c.periodSeconds) + ahead);
    const store = new StepStore(path, closed, new Map(), new Map(), true);
    store.write();
    opts.log?.(
      `state file ${path} ${why}: failing closed, every client's last accepted step is set to its current step + ${ahead}, ` +
        `so knocks are refused as replays for up to ${ahead + 1} windows; the file has been rewritten`,
    );
    return store;
  }

  /** Writes an empty store (for `tknock-server init`): no client has knocked yet. */
  static createEmpty(path: string): void {
    new StepStore(path, new Map(), new Map(), new Map(), false).write();
  }

  /**
   * Reads the steps without the fail-closed rewrite (for `status`). A missing file gives no steps; an invalid one
   * throws TKNOCK_STATE_INVALID.
   */
  static readOnly(path: string): Readonly<Record<string, number>> {
    let text: string;
    try {
      text = readFileSync(path, "utf8");
    } catch (cause) {
      if (errnoCode(cause) === "ENOENT") return {};
      throw readFileError(cause, `state file ${path}`);
    }
    const content = parseStateFile(text);
    if (content === undefined) {
      throw new TknockError("TKNOCK_STATE_INVALID", `state file ${path} is not a valid state file: the daemon will fail closed at its next start`);
    }
    return Object.fromEntries(content.steps);
  }

  get(name: string): number | undefined {
    return this.steps.get(name);
  }

  /** Future steps of a client spent by skew refusals (ascending). */
  spent(name: string): readonly number[] {
    return this.spentSteps.get(name) ?? [];
  }

  /**
   * Records an accepted step, durable when this returns. A step at or below the known one changes nothing
   * (steps only move forward). If the write fails the step stays spent in memory and the file is moved aside
   * (see persist): throws TKNOCK_STATE_WRITE, or TKNOCK_STATE_UNPROTECTED when even that failed.
   */
  record(name: string, step: number): void {
    checkStep(name, step);
    const before = this.steps.get(name);
    if (before !== undefined && step <= before) return;
    this.steps.set(name, step);
    this.persist();
  }

  /**
   * Replaces a client's spent future steps (the matcher's list after a skew refusal), durable when this returns;
   * failures as for record.
   */
  setSpent(name: string, steps: readonly number[]): void {
    for (const x of steps) checkStep(name, x);
    const next = [...new Set(steps)].sort((a, b) => a - b);
    const before = this.spentSteps.get(name) ?? [];
    if (next.length === before.length && next.every((x, i) => x === before[i])) return;
    if (next.length === 0) this.spentSteps.delete(name);
    else this.spentSteps.set(name, next);
    this.persist();
  }

  /** The SPA nonces stored (nonce hex -> expiry, Unix ms). */
  spaNonces(): ReadonlyMap<string, number> {
    return this.nonces;
  }

  /**
   * Replaces the SPA nonce cache, durable when this returns (before an SPA packet opens anything); failures as for
   * record, the nonces staying spent in memory.
   */
  setSpaNonces(nonces: ReadonlyMap<string, number>): void {
    for (const [n, t] of nonces) {
      if (!NONCE_RE.test(n) || !Number.isSafeInteger(t) || t < 0) throw new TknockError("TKNOCK_STATE_INVALID", "SPA nonce entry is not valid");
    }
    this.nonces = new Map(nonces);
    this.persist();
  }

  /** Drops a revoked client's steps (a new client of the same name starts fresh). */
  forget(name: string): void {
    const before = this.steps.get(name);
    const spentBefore = this.spentSteps.get(name);
    if (before === undefined && spentBefore === undefined) return;
    this.steps.delete(name);
    this.spentSteps.delete(name);
    try {
      this.write();
    } catch (err) {
      // Keeping the old steps is the safe side: a client of that name enrolled again starts refused a while.
      if (before !== undefined) this.steps.set(name, before);
      if (spentBefore !== undefined) this.spentSteps.set(name, spentBefore);
      throw err;
    }
  }

  /** A copy of every client's step; iterate it as [name, step]. */
  all(): Map<string, number> {
    return new Map(this.steps);
  }

  /**
   * Writes the store; on failure (state directory full, say) moves state.json aside so that no restart reads a
   * file that lacks a step already spent: the next start then fails closed (open). Renaming or removing a file
   * needs no free space. If that fails too, nothing protects the step across a restart: TKNOCK_STATE_UNPROTECTED,
   * on which the daemon stops.
   */
  private persist(): void {
    try {
      this.write();
    } catch (err) {
      const aside = `${this.path}${UNSAVED_SUFFIX}`;
      const failure = (err as TknockError).message;
      try {
        moveAside(this.path, aside);
      } catch (cause) {
        const code = (cause as NodeJS.ErrnoException).code ?? "error";
        throw new TknockError(
          "TKNOCK_STATE_UNPROTECTED",
          `${failure}; moving it aside failed too (${code}), so a restart could accept a used step again: stopping. Make the state directory writable (free space), then start again`,
          ExitCode.system,
          { cause },
        );
      }
      throw new TknockError("TKNOCK_STATE_WRITE", `${failure}; the state file was moved to ${aside}, so the next start fails closed`, ExitCode.system, {
        cause: err,
      });
    }
  }

  private write(): void {
    const byName = <T>(m: Map<string, T>): [string, T][] => [...m].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    const file: StateFile = { version: 1, lastAcceptedStep: Object.fromEntries(byName(this.steps)) };
    // Only steps still ahead of the last accepted one can matter.
    const spent = byName(this.spentSteps)
      .map(([name, xs]): [string, number[]] => [name, xs.filter((x) => x > (this.steps.get(name) ?? -1))])
      .filter(([, xs]) => xs.length > 0);
    if (spent.length > 0) file.spentSteps = Object.fromEntries(spent);
    if (this.nonces.size > 0) file.spaNonces = Object.fromEntries(this.nonces);
    try {
      writeFileAtomic(this.path, `${JSON.stringify(file)}\n`, 0o600);
    } catch (cause) {
      const code = (cause as NodeJS.ErrnoException).code;
      throw new TknockError(
        "TKNOCK_STATE_WRITE",
        `cannot write state file ${this.path} (${code ?? (cause instanceof Error ? cause.message : "error")}): check that the state directory exists and is writable`,
        ExitCode.system,
        { cause },
      );
    }
  }
}

function checkStep(name: string, step: number): void {
  if (!isValidClientName(name)) throw new TknockError("TKNOCK_STATE_INVALID", `client name ${JSON.stringify(name.slice(0, 70))} is not valid`);
  if (!Number.isSafeInteger(step) || step < 0) throw new TknockError("TKNOCK_STATE_INVALID", `step ${step} is not a non-negative integer`);
}

/** Renames the file aside, or removes it if that fails; a file already gone is fine. */
function moveAside(path: string, aside: string): void {
  try {
    renameSync(path, aside);
    return;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
  }
  try {
    unlinkSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
}

/** The content of a valid state file, or undefined when anything is off (the caller decides how to fail). */
function parseStateFile(text: string): StateContent | undefined {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) return undefined;
  const o = raw as Record<string, unknown>;
  if (o["version"] !== 1) return undefined;
  const steps = o["lastAcceptedStep"];
  if (typeof steps !== "object" || steps === null || Array.isArray(steps)) return undefined;
  const isStep = (x: unknown): x is number => typeof x === "number" && Number.isSafeInteger(x) && x >= 0;
  const out = new Map<string, number>();
  for (const [name, step] of Object.entries(steps as Record<string, unknown>)) {
    if (!isValidClientName(name) || !isStep(step)) return undefined;
    out.set(name, step);
  }
  const spent = new Map<string, number[]>();
  const rawSpent = o["spentSteps"];
  if (rawSpent !== undefined) {
    if (typeof rawSpent !== "object" || rawSpent === null || Array.isArray(rawSpent)) return undefined;
    for (const [name, xs] of Object.entries(rawSpent as Record<string, unknown>)) {
      if (!isValidClientName(name) || !Array.isArray(xs) || !xs.every(isStep)) return undefined;
      spent.set(
        name,
        [...xs].sort((a, b) => a - b),
      );
    }
  }
  const nonces = new Map<string, number>();
  const rawNonces = o["spaNonces"];
  if (rawNonces !== undefined) {
    if (typeof rawNonces !== "object" || rawNonces === null || Array.isArray(rawNonces)) return undefined;
    for (const [n, t] of Object.entries(rawNonces as Record<string, unknown>)) {
      if (!NONCE_RE.test(n) || !isStep(t)) return undefined;
      nonces.set(n, t);
    }
  }
  return { steps: out, spent, nonces };
}

const NONCE_RE = /^[0-9a-f]{32}$/;
