import { isIP } from "node:net";

/** Where the metrics endpoint listens: an IP literal (no name to resolve at start) and a port. */
export type ListenAddress = { readonly host: string; readonly port: number; readonly loopback: boolean };

/** "127.0.0.1:9477" or "[::1]:9477"; undefined when it is neither. */
export function parseListenAddress(text: string): ListenAddress | undefined {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|(\d{1,3}(?:\.\d{1,3}){3})):(\d{1,5})$/.exec(text);
  if (m === null) return undefined;
  const host = m[1] ?? m[2] ?? "";
  const port = Number(m[3]);
  if (isIP(host) === 0 || port < 1 || port > 65535) return undefined;
  return { host, port, loopback: host.startsWith("127.") || host === "::1" };
}
