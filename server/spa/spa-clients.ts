import { clientProfile, type ClientsFile } from "../config/schema.js";
import { allowsSpa } from "../../src/protocol/spa/mode.js";
import type { SpaClient } from "./acceptor.js";

/** The clients whose mode allows SPA (`enroll --mode spa|both`), as the acceptor takes them. */
export function spaClientsOf(file: ClientsFile): SpaClient[] {
  return Object.entries(file.clients)
    .filter(([, r]) => allowsSpa(r.mode))
    .map(([name, r]) => ({ name, profile: clientProfile(name, r), open: r.open, allowNat: r.allowNat === true }));
}

/**
 * Why SPA clients cannot be served with this listener, or undefined. The log listener sees no payload at all. (The
 * nflog prefilter watches each SPA client's SPA ports as first ports: server/prefilter.ts.)
 */
export function spaListenerProblem(config: { listener: string; prefilter: boolean }, spaClients: number): string | undefined {
  if (spaClients === 0) return undefined;
  if (config.listener === "log") return `${spaClients} client(s) knock with SPA, which the log listener cannot see (no payload): use listener pcap`;
  return undefined;
}
