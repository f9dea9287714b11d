/**
 * A Daemon run in-process on a FakeListener and a given firewall, its log lines collected as text: the set-up the
 * daemon, SPA and metrics suites share. The caller keeps `stops` and runs them after each test.
 */
import { Writable } from "node:stream";
import { expect } from "vitest";
import { Daemon, type DaemonDeps } from "../../server/daemon.js";
import { createLogger } from "../../server/logger.js";
import type { Clock, Firewall } from "../../src/ports.js";
import { FakeListener } from "./fake-listener.js";
import { waitFor } from "./wait.js";

export type FakeDaemonOptions = {
  readonly configPath: string;
  readonly clock: Clock;
  readonly firewall: Firewall;
  /** Receives each log line the daemon writes (JSON text). */
  readonly logText: string[];
  /** Where the stop of this daemon goes (stop, wait, and check it stopped without an error unless mayFail). */
  readonly stops: (() => Promise<void>)[];
  /** Runs after Daemon.create and before run (a test that changes files the daemon reads at start). */
  readonly beforeRun?: () => Promise<void>;
  /** The daemon may end with an error (a test of a fatal start); it is then returned, not thrown at the stop. */
  readonly mayFail?: boolean;
  readonly deps?: Pick<DaemonDeps, "readListeningSockets" | "servicePollMs" | "dockerPresent" | "observer">;
};

/** Starts Daemon.run with a fake listener and waits until it listens; rethrows a failed start. */
export async function startFakeDaemon(o: FakeDaemonOptions): Promise<{ daemon: Daemon; listener: FakeListener; stopped: Promise<unknown> }> {
  const listener = new FakeListener();
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      o.logText.push(chunk.toString());
      cb();
    },
  });
  const daemon = Daemon.create({
    configPath: o.configPath,
    log: createLogger("debug", sink),
    clock: o.clock,
    createListener: () => listener,
    createFirewall: () => o.firewall,
    readListeningSockets: async () => ({ sockets: [], malformed: 0 }),
    ...o.deps,
  });
  await o.beforeRun?.();
  const stop = new AbortController();
  let failed: unknown;
  const running = daemon.run(stop.signal).catch((err: unknown) => {
    failed = err;
  });
  o.stops.push(async () => {
    stop.abort();
    await running;
    if (o.mayFail !== true) expect(failed).toBeUndefined();
  });
  await waitFor("the daemon to run", () => listener.running || failed !== undefined);
  // eslint-disable-next-line @typescript-eslint/only-throw-error -- rethrows what run() rejected with, as it was
  if (failed !== undefined) throw failed;
  return { daemon, listener, stopped: running.then(() => failed) };
}
