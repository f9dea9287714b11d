import type { Command } from "commander";
import { InvalidArgumentError } from "commander";
import type { CliIo } from "../src/cli-io.js";
import { parseIntOption } from "../src/cli-io.js";
import type { ClientDeps } from "./knock.js";
import { TRANSPORTS, type Transport } from "./senders/sender.js";
import { ProfileStore, storeDirFrom } from "./store.js";

/** What every client command gets: the injected io and deps, and the store chosen by --store / TKNOCK_HOME. */
export type ClientContext = {
  readonly io: CliIo;
  readonly deps: ClientDeps;
  openStore(cmd: Command): ProfileStore;
};

export function createContext(io: CliIo, deps: ClientDeps): ClientContext {
  return {
    io,
    deps,
    openStore(cmd: Command): ProfileStore {
      const { store } = cmd.optsWithGlobals<{ store?: string }>();
      return ProfileStore.open({ dir: storeDirFrom(store, io.env), warn: (line) => io.err(line) });
    },
  };
}

export function parseTransport(value: string): Transport {
  if (!(TRANSPORTS as readonly string[]).includes(value)) throw new InvalidArgumentError(`--transport must be one of ${TRANSPORTS.join(", ")}.`);
  return value as Transport;
}

/** Seconds with up to millisecond precision, from min to max. */
export function parseSecondsOption(name: string, min: number, max: number) {
  return (value: string): number => {
    if (!/^\d+(\.\d{1,3})?$/.test(value.trim()) || Number(value) < min || Number(value) > max) {
      throw new InvalidArgumentError(`${name} must be a number of seconds from ${min} to ${max}.`);
    }
    return Number(value);
  };
}

export const parsePort = parseIntOption("PORT", 1, 65535);
