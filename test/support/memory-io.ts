import { PassThrough } from "node:stream";
import type { CliIo } from "../../src/cli-io.js";
import type { Clock } from "../../src/ports.js";

/** A CliIo that records what a command prints, line by line, with an injected clock and environment. */
export function memoryIo(opts: { clock?: Clock; nowMs?: number; env?: Record<string, string> } = {}): { io: CliIo; out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  const nowMs = opts.nowMs ?? 0;
  const io: CliIo = {
    out: (t) => out.push(...t.replace(/\n$/, "").split("\n")),
    err: (t) => err.push(...t.replace(/\n$/, "").split("\n")),
    env: opts.env ?? {},
    clock: opts.clock ?? { nowMs: () => nowMs },
    stdin: new PassThrough(),
    stdout: new PassThrough(),
  };
  return { io, out, err };
}
