/**
 * Running nft: one-shot (`nft -f -`, `nft -j list`) for rare changes, and one long-lived `nft -i` for grants, so
 * an open costs a line on a pipe (well under a millisecond), not a process start (about 15 ms).
 *
 * `nft -i` prints nothing on success and an error block on stderr on failure, so every command line is followed
 * by a sentinel line that is a syntax error by design: when nft echoes the sentinel in its error, everything
 * before belongs to the command. nft handles lines in order, so commands can be pipelined (FIFO of pending).
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { ExitCode, TknockError } from "../../../src/errors.js";
import { nftArgv } from "./ruleset.js";

/** pino-compatible subset. */
export type FirewallLog = {
  info(fields: Record<string, unknown>, message: string): void;
  warn(fields: Record<string, unknown>, message: string): void;
};

export const silentLog: FirewallLog = { info: () => {}, warn: () => {} };

/**
 * `nft -i` loads and saves a history file in $HOME: a daemon must write nothing in root's home. It also keeps
 * every line in memory (libedit), which is why NftSession replaces the process after maxLinesPerProcess.
 */
const CHILD_ENV = { ...process.env, HOME: "/nonexistent" };
const MAX_ERROR_CHARS = 600;

export function firewallError(message: string, cause?: unknown): TknockError {
  return new TknockError("TKNOCK_FIREWALL", message, ExitCode.system, cause === undefined ? undefined : { cause });
}

function notFound(nftCommand: readonly string[]): TknockError {
  return firewallError(`nft not found (${nftCommand.join(" ")}): install it with apt-get install nftables`);
}

/** The error lines of nft output as one bounded line (caret markers dropped). */
export function summarizeNftOutput(text: string): string {
  const lines = text
    .split("\n")
    .map((l) => l.trimEnd())
    .filter((l) => l.trim() !== "" && !/^\s*\^+\s*$/.test(l));
  const joined = lines.join(" | ");
  return joined.length > MAX_ERROR_CHARS ? `${joined.slice(0, MAX_ERROR_CHARS - 3)}...` : joined;
}

export type OnceResult = { stdout: string; stderr: string };

/** Runs nft once; rejects with TKNOCK_FIREWALL on failure. `allowFailure` returns the result of a failed run. */
export function runNftOnce(
  nftCommand: readonly string[],
  args: readonly string[],
  opts: { input?: string; timeoutMs: number; allowFailure?: (stderr: string) => boolean },
): Promise<OnceResult> {
  const { file, args: argv } = nftArgv(nftCommand, args);
  return new Promise((resolve, reject) => {
    const child = execFile(file, argv, { timeout: opts.timeoutMs, maxBuffer: 64 * 1024 * 1024, env: CHILD_ENV }, (err, stdout, stderr) => {
      const out = { stdout: String(stdout), stderr: String(stderr) };
      if (!err) return resolve(out);
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return reject(notFound(nftCommand));
      if (opts.allowFailure?.(out.stderr)) return resolve(out);
      const why = err.killed ? `no answer within ${opts.timeoutMs} ms` : summarizeNftOutput(out.stderr) || `exit ${String(err.code)}`;
      reject(firewallError(`nft ${args.join(" ")} failed: ${why}`, err));
    });
    child.stdin?.on("error", () => {}); // EPIPE if nft dies early; the exit callback reports it
    child.stdin?.end(opts.input ?? "");
  });
}

type Pending = {
  readonly token: string;
  readonly resolve: (warnings: string) => void;
  readonly reject: (err: Error) => void;
  readonly timer: NodeJS.Timeout;
};

/** The process ended while a command was pending: the command may or may not have been applied. */
class NftProcessDied extends Error {}

/** One `nft -i` child with its FIFO of pending commands. */
class NftInteractive {
  private readonly child: ChildProcess;
  private readonly pending: Pending[] = [];
  private readonly exited: Promise<void>;
  private stderr = "";
  private seq = 0;
  private retiring = false;
  dead = false;
  linesWritten = 0;

  constructor(
    nftCommand: readonly string[],
    private readonly timeoutMs: number,
    private readonly log: FirewallLog,
    onGone: (proc: NftInteractive) => void,
  ) {
    const { file, args } = nftArgv(nftCommand, ["-i"]);
    this.child = spawn(file, args, { stdio: ["pipe", "ignore", "pipe"], env: CHILD_ENV });
    this.child.stderr?.setEncoding("utf8");
    this.child.stderr?.on("data", (chunk: string) => this.onStderr(chunk));
    this.child.stdin?.on("error", () => {}); // EPIPE when nft died; the close handler rejects what is pending
    this.child.once("error", (err: NodeJS.ErrnoException) => {
      this.fail(err.code === "ENOENT" ? notFound(nftCommand) : firewallError(`cannot start nft: ${err.message}`, err));
      onGone(this);
    });
    this.exited = new Promise((resolve) => {
      this.child.once("close", (code, signal) => {
        if (!this.dead && (!this.retiring || this.pending.length > 0)) {
          this.log.warn({ code, signal, stderr: summarizeNftOutput(this.stderr) }, "nft -i exited");
        }
        this.fail(new NftProcessDied(`nft -i exited (${signal ?? `code ${String(code)}`}): ${summarizeNftOutput(this.stderr)}`));
        onGone(this);
        resolve();
      });
    });
    // An idle nft must not keep Node alive (a CLI that forgets close() still exits); a pending command's timer
    // keeps it alive while an answer is due.
    this.child.unref();
    (this.child.stdin as unknown as { unref?(): void } | null)?.unref?.();
    (this.child.stderr as unknown as { unref?(): void } | null)?.unref?.();
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  run(line: string): Promise<string> {
    if (this.dead || this.retiring) return Promise.reject(new NftProcessDied("nft -i is not running"));
    const token = `tknock-sync-${++this.seq}`;
    return new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        // A stuck nft: kill it, so the next call starts a fresh one.
        this.fail(firewallError(`nft did not answer within ${this.timeoutMs} ms`));
        this.child.kill("SIGKILL");
      }, this.timeoutMs);
      this.pending.push({ token, resolve, reject, timer });
      this.linesWritten += 2;
      this.child.stdin?.write(`${line}\n${token}\n`);
    });
  }

  /** Takes no new commands; nft answers what is pending, reads end of input and exits. */
  retire(graceMs: number): Promise<void> {
    this.retiring = true;
    this.child.stdin?.end();
    if (this.dead) return Promise.resolve();
    const timer = setTimeout(() => this.child.kill("SIGKILL"), graceMs);
    return this.exited.finally(() => clearTimeout(timer));
  }

  private onStderr(chunk: string): void {
    this.stderr += chunk;
    for (let head = this.pending[0]; head; head = this.pending[0]) {
      const at = this.stderr.startsWith(`${head.token}\n`) ? 0 : this.stderr.indexOf(`\n${head.token}\n`) + 1;
      if (at === 0 && !this.stderr.startsWith(`${head.token}\n`)) break; // not answered yet
      const before = this.stderr.slice(0, at);
      this.stderr = this.stderr.slice(this.stderr.indexOf("\n", at) + 1);
      this.pending.shift();
      clearTimeout(head.timer);
      // Drop caret markers, then the last line: nft's error header about the sentinel itself.
      const lines = before.split("\n").filter((l) => l.trim() !== "" && !/^\s*\^+\s*$/.test(l));
      lines.pop();
      const output = lines.join("\n");
      if (/^Error:/m.test(output)) head.reject(firewallError(`nft: ${summarizeNftOutput(output)}`));
      else head.resolve(output);
    }
    // Between answers only the sentinel's caret line is left; bound memory whatever nft prints.
    if (this.pending.length === 0 && this.stderr.length > 64 * 1024) this.stderr = this.stderr.slice(-4096);
  }

  private fail(err: Error): void {
    this.dead = true;
    for (const p of this.pending.splice(0)) {
      clearTimeout(p.timer);
      p.reject(err);
    }
  }
}

export type NftSessionOptions = {
  readonly nftCommand: readonly string[];
  readonly timeoutMs: number;
  readonly log: FirewallLog;
  /** Lines after which the process is replaced (bounds nft's in-memory history). */
  readonly maxLinesPerProcess?: number;
};

/** A long-lived `nft -i`, started on first use and restarted on the next call after it dies. */
export class NftSession {
  private current: NftInteractive | undefined;
  private readonly maxLines: number;

  constructor(private readonly opts: NftSessionOptions) {
    this.maxLines = opts.maxLinesPerProcess ?? 10_000;
  }

  /** The pid of the running nft, if any (diagnostics). */
  get pid(): number | undefined {
    return this.current?.pid;
  }

  /**
   * Runs one command line (one transaction). Resolves with any non-error output (warnings). The lines we send
   * are idempotent, so a line whose process died under it is sent once more to a fresh process.
   */
  async run(line: string): Promise<string> {
    if (line.includes("\n")) throw firewallError("internal: an nft command line may not contain a newline");
    for (let attempt = 0; ; attempt++) {
      const proc = this.process();
      try {
        return await proc.run(line);
      } catch (err) {
        if (err instanceof NftProcessDied && attempt === 0) continue;
        if (err instanceof NftProcessDied) throw firewallError(err.message, err);
        throw err;
      }
    }
  }

  /** Ends nft after it answered what is pending (bounded by the command timeout). */
  async close(): Promise<void> {
    const proc = this.current;
    this.current = undefined;
    await proc?.retire(this.opts.timeoutMs);
  }

  private process(): NftInteractive {
    if (this.current && !this.current.dead && this.current.linesWritten >= this.maxLines) {
      void this.current.retire(this.opts.timeoutMs);
      this.current = undefined;
    }
    if (!this.current || this.current.dead) {
      const proc = new NftInteractive(this.opts.nftCommand, this.opts.timeoutMs, this.opts.log, (gone) => {
        if (this.current === gone) this.current = undefined;
      });
      this.current = proc;
      this.opts.log.info({ pid: proc.pid, command: this.opts.nftCommand.join(" ") }, "nft -i started");
    }
    return this.current;
  }
}
