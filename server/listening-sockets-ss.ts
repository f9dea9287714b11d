/**
 * The host's listening sockets through the kernel's socket diagnostics (`ss -H -l -n -t -u`, netlink
 * sock_diag), the way the daemon polls them. /proc/net/tcp makes the kernel walk its whole TCP hash table on
 * every read, established connections included (about 10 ms of kernel time per read for an idle host with a
 * 262144-bucket table, and megabytes of text on a busy one); sock_diag asked for listeners walks only the
 * listening sockets. Same result type and the same rules as local-services.ts; /proc/net is the fallback when
 * `ss` is missing.
 */
import { execFile } from "node:child_process";
import type { KnockProto } from "../src/ports.js";
import { canonicalAddress } from "./packets/address.js";
import { readListeningSockets, type ListeningSocket, type ParsedProcNet } from "./local-services.js";

const SS_ARGS = ["-H", "-l", "-n", "-t", "-u"] as const;

/**
 * The listening sockets in `ss -H -l -n -t -u` output. Each line: netid, state, two queue sizes, the local
 * endpoint and the peer. The local endpoint is ADDRESS:PORT, where ADDRESS may be bracketed ([::1]), carry an
 * interface (%eth0, inside or after the brackets), or be `*` (any address, either family).
 */
export function parseSs(text: string): ParsedProcNet {
  const sockets: ListeningSocket[] = [];
  let malformed = 0;
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "") continue;
    const fields = line.split(/\s+/);
    const [netid, state, , , local] = fields;
    const proto: KnockProto | undefined = netid === "tcp" ? "tcp" : netid === "udp" ? "udp" : undefined;
    const endpoint = local === undefined ? undefined : splitLocal(local);
    if (proto === undefined || endpoint === undefined || (state !== "LISTEN" && state !== "UNCONN")) {
      malformed++;
      continue;
    }
    if (endpoint.port === 0) continue;
    sockets.push({ proto, ...endpoint });
  }
  return { sockets, malformed };
}

function splitLocal(local: string): Omit<ListeningSocket, "proto"> | undefined {
  // 0.0.0.0:22, [::]:22, [fe80::18]%eth0:80, 127.0.0.53%lo:53, *:123
  const m = /^(\[[0-9a-fA-F:.]+\]|[0-9.]+|\*)(?:%([\w.@-]+))?:(\d{1,5})$/.exec(local);
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port > 65535) return undefined;
  const device = m[2] ?? "";
  const host = (m[1] as string).replace(/^\[|\]$/g, "");
  if (host === "*") return { family: 6, address: "::", port, loopback: device === "lo" };
  if (!canonicalAddress(host)) return undefined;
  return { family: host.includes(":") ? 6 : 4, address: host, port, loopback: device === "lo" || isLoopbackText(host) };
}

function isLoopbackText(address: string): boolean {
  const v4 = /^(?:::ffff:)?(\d+)\.\d+\.\d+\.\d+$/i.exec(address);
  if (v4) return v4[1] === "127";
  return canonicalAddress(address)?.address === "::1";
}

export type SsReaderOptions = {
  readonly ssPath?: string;
  readonly timeoutMs?: number;
  /** Used when ss is not installed (and told once through onFallback). */
  readonly fallback?: () => Promise<ParsedProcNet>;
  readonly onFallback?: (why: string) => void;
};

/** A reader for the daemon's poll: ss while it works, /proc/net from the first time it is missing. */
export function ssListeningSocketsReader(opts: SsReaderOptions = {}): () => Promise<ParsedProcNet> {
  const fallback = opts.fallback ?? (() => readListeningSockets());
  let useFallback = false;
  return async () => {
    if (useFallback) return fallback();
    try {
      return parseSs(await runSs(opts.ssPath ?? "ss", opts.timeoutMs ?? 5000));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
      useFallback = true;
      opts.onFallback?.(`${opts.ssPath ?? "ss"} not found (install iproute2); reading /proc/net instead, which costs more CPU`);
      return fallback();
    }
  };
}

function runSs(ssPath: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(ssPath, SS_ARGS, { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (!err) return resolve(String(stdout));
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return reject(Object.assign(new Error(`${ssPath} not found`), { code: "ENOENT" }));
      reject(
        new Error(`ss ${SS_ARGS.join(" ")} failed: ${String(stderr).trim().slice(0, 300) || (err.killed ? `no answer within ${timeoutMs} ms` : err.message)}`),
      );
    });
  });
}
