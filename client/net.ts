import { isIP, Socket } from "node:net";
import { ExitCode, TknockError } from "../src/errors.js";
import type { KnockTarget } from "./senders/sender.js";

/** Resolves a host name once with the system resolver (getaddrinfo: /etc/hosts, DNS); IP literals pass as is. */
export async function resolveTarget(host: string): Promise<KnockTarget> {
  const bare = host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
  const literal = isIP(bare);
  if (literal === 4 || literal === 6) return { address: bare, family: literal };
  try {
    // Only names need the resolver module; a profile's address is usually a literal.
    const { lookup } = await import("node:dns/promises");
    const { address, family } = await lookup(bare);
    return { address, family: family === 6 ? 6 : 4 };
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code ?? "error";
    throw new TknockError(
      "TKNOCK_RESOLVE",
      `cannot resolve ${host} (${code}): check the name, or store an address with \`tknock add URI --addr ADDRESS --force\``,
      ExitCode.network,
      { cause },
    );
  }
}

export type ConnectResult =
  | { readonly kind: "open"; readonly socket: Socket }
  | { readonly kind: "refused" }
  | { readonly kind: "timeout" }
  | { readonly kind: "error"; readonly code: string };

/**
 * One TCP connection attempt with its own timeout: a port a firewall drops never answers, so the caller polls with
 * short attempts rather than waiting out the kernel's SYN retries.
 */
export function connectOnce(target: KnockTarget, port: number, timeoutMs: number): Promise<ConnectResult> {
  return new Promise((resolve) => {
    const socket = new Socket();
    let settled = false;
    const settle = (r: ConnectResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (r.kind !== "open") socket.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => settle({ kind: "timeout" }), timeoutMs);
    socket.once("connect", () => {
      socket.removeAllListeners("error");
      settle({ kind: "open", socket });
    });
    socket.once("error", (err: NodeJS.ErrnoException) => {
      settle(err.code === "ECONNREFUSED" ? { kind: "refused" } : { kind: "error", code: err.code ?? "error" });
    });
    socket.connect({ host: target.address, port });
  });
}
