/**
 * The last accepted step per client, persisted in <stateDir>/state.json:
 *   {"version":1,"lastAcceptedStep":{"alice":56666666}}
 * One number per client is the whole replay defence (each step once, monotonic per client), so every change is
 * written atomically and durably (temp file, fsync, rename) BEFORE the daemon opens the firewall.
 */
import { readFileSync } from "node:fs";
import { TknockError } from "../src/errors.js";
import { writeFileAtomic } from "../src/config/load.js";
import { isValidClientName } from "../src/protocol/profile-uri.js";
import { stepAt } from "../src/protocol/window.js";

export type StepStoreOptions = {
  readonly nowMs: number;
  /** The enrolled clients, for the fail-closed start. */
  readonly clients: readonly { readonly name: string; readonly periodSeconds: number }[];
  readonly skewWindows: number;
  /** Receives the warning when the store starts fail-closed (one line, no secret). */
  readonly log?: (message: string) => void;
};

type StateFile = { version: 1; lastAcceptedStep: Record<string, number> };

export class StepStore {
  private constructor(
    readonly path: string,
    private readonly steps: Map<string, number>,
    /** True when the file was missing or invalid at start and every client was set to its current step + skew. */
    readonly failedClosed: boolean,
  ) {}

  /**
   * Loads the store. A missing, unreadable or invalid file fails closed: every client's last accepted step
   * becomes its current step + skewWindows (so no sequence that might already have been used is accepted), a
   * warning is logged, and the file is written so the next start is normal. Throws TKNOCK_STATE_WRITE when
   * that write fails: the daemon cannot run without durable state.
   */
  static open(path: string, opts: StepStoreOptions): StepStore {
    let steps: Map<string, number> | undefined;
    let why = "";
    try {
      steps = parseStateFile(readFileSync(path, "utf8"));
      if (steps === undefined) why = "is not a valid state file";
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      why = code === "ENOENT" ? "is missing" : `cannot be read (${code ?? "error"})`;
    }
    if (steps !== undefined) return new StepStore(path, steps, false);

    const closed = new Map<string, number>();
    for (const c of opts.clients) closed.set(c.name, stepAt(opts.nowMs, c.periodSeconds) + opts.skewWindows);
    const store = new StepStore(path, closed, true);
    store.write();
    opts.log?.(
      `state file ${path} ${why}: failing closed, every client's last accepted step is set to its current step + ${opts.skewWindows}, ` +
        `so knocks are refused as replays for up to ${opts.skewWindows + 1} windows; the file has been rewritten`,
    );
    return store;
  }

  /** Writes an empty store (for `tknock-server init`): no client has knocked yet. */
  static createEmpty(path: string): void {
    new StepStore(path, new Map(), false).write();
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
      const code = (cause as NodeJS.ErrnoException).code;
      if (code === "ENOENT") return {};
      throw new TknockError("TKNOCK_STATE_UNREADABLE", `state file ${path} cannot be read (${code ?? "error"}): check its permissions`, 1, { cause });
    }
    const steps = parseStateFile(text);
    if (steps === undefined) {
      throw new TknockError("TKNOCK_STATE_INVALID", `state file ${path} is not a valid state file: the daemon will fail closed at its next start`);
    }
    return Object.fromEntries(steps);
  }

  get(name: string): number | undefined {
    return this.steps.get(name);
  }

  /**
   * Records an accepted step, durable when this returns. A step at or below the known one changes nothing
   * (steps only move forward). Throws TKNOCK_STATE_WRITE if the write fails; the store then keeps the old value.
   */
  record(name: string, step: number): void {
    if (!isValidClientName(name)) throw new TknockError("TKNOCK_STATE_INVALID", `client name ${JSON.stringify(name.slice(0, 70))} is not valid`);
    if (!Number.isSafeInteger(step) || step < 0) throw new TknockError("TKNOCK_STATE_INVALID", `step ${step} is not a non-negative integer`);
    const before = this.steps.get(name);
    if (before !== undefined && step <= before) return;
    this.steps.set(name, step);
    try {
      this.write();
    } catch (err) {
      if (before === undefined) this.steps.delete(name);
      else this.steps.set(name, before);
      throw err;
    }
  }

  /** Drops a revoked client's step (a new client of the same name starts fresh). */
  forget(name: string): void {
    const before = this.steps.get(name);
    if (before === undefined) return;
    this.steps.delete(name);
    try {
      this.write();
    } catch (err) {
      this.steps.set(name, before);
      throw err;
    }
  }

  /** A copy of every client's step; iterate it as [name, step]. */
  all(): Map<string, number> {
    return new Map(this.steps);
  }

  private write(): void {
    const file: StateFile = { version: 1, lastAcceptedStep: Object.fromEntries([...this.steps].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) };
    try {
      writeFileAtomic(this.path, `${JSON.stringify(file)}\n`, 0o600);
    } catch (cause) {
      const code = (cause as NodeJS.ErrnoException).code;
      throw new TknockError(
        "TKNOCK_STATE_WRITE",
        `cannot write state file ${this.path} (${code ?? (cause instanceof Error ? cause.message : "error")}): check that the state directory exists and is writable`,
        1,
        { cause },
      );
    }
  }
}

/** The steps of a valid state file, or undefined when anything is off (the caller decides how to fail). */
function parseStateFile(text: string): Map<string, number> | undefined {
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
  const out = new Map<string, number>();
  for (const [name, step] of Object.entries(steps as Record<string, unknown>)) {
    if (!isValidClientName(name) || typeof step !== "number" || !Number.isSafeInteger(step) || step < 0) return undefined;
    out.set(name, step);
  }
  return out;
}
