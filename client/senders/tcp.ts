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
  return {
    transport: "tcp",
    async knock(port: number): Promise<void> {
      const socket = new Socket();
      let failure: NodeJS.ErrnoException | undefined;
      socket.on("error", (err: NodeJS.ErrnoException) => {
        failure ??= err;
      });
      socket.connect({ host: target.address, port });
      // net.connect() calls connect(2) on the next tick (the address is already an IP, so no lookup); one loop
      // turn later the SYN is in the kernel's hands and any immediate local failure has been reported.
      await nextLoopTurn();
      socket.destroy();
      if (failure?.code !== undefined && LOCAL_FAILURES.has(failure.code)) {
        throw new TknockError("TKNOCK_NETWORK", `cannot send a knock to ${target.address} port ${port}: ${failure.code}`, ExitCode.network);
      }
    },
    close(): void {},
  };
}
