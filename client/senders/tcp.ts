import { Socket } from "node:net";
import { setImmediate as nextLoopTurn } from "node:timers/promises";
import { ExitCode, TknockError } from "../../src/errors.js";
import type { KnockTarget, Sender } from "./sender.js";

/** Errors that mean the SYN never left this host (anything else, e.g. a fast RST, means it did). */
const LOCAL_FAILURES = new Set(["ENETUNREACH", "EHOSTUNREACH", "EADDRNOTAVAIL", "EACCES", "EPERM", "EAFNOSUPPORT"]);

/**
 * A knock is a connect() aborted right after the kernel sent the SYN: no privilege needed, exactly one packet.
 * Closing a socket in SYN-SENT sends nothing (RFC 9293 §3.10.4: CLOSE in SYN-SENT just deletes the TCB), and
 * closing before the 1 s initial RTO means no retransmission.
 */
export function createTcpSender(target: KnockTarget): Sender {
  const knockAll = async (ports: readonly number[]): Promise<void> => {
    const failures: (NodeJS.ErrnoException | undefined)[] = ports.map(() => undefined);
    // connect() is called for every socket in this turn; net runs each connect(2) on the next tick, in the order
    // the sockets were connected (the address is already an IP, so no lookup), so the SYNs leave in order.
    const sockets = ports.map((port, i) => {
      const socket = new Socket();
      socket.on("error", (err: NodeJS.ErrnoException) => {
        failures[i] ??= err;
      });
      socket.connect({ host: target.address, port });
      return socket;
    });
    // One loop turn later every SYN is in the kernel's hands and any immediate local failure has been reported.
    await nextLoopTurn();
    for (const socket of sockets) socket.destroy();
    for (const [i, failure] of failures.entries()) {
      if (failure?.code !== undefined && LOCAL_FAILURES.has(failure.code)) {
        throw new TknockError("TKNOCK_NETWORK", `cannot send a knock to ${target.address} port ${ports[i] ?? "?"}: ${failure.code}`, ExitCode.network);
      }
    }
  };
  return {
    transport: "tcp",
    knock: (port: number) => knockAll([port]),
    knockAll,
    close(): void {},
  };
}
