import { createSocket } from "node:dgram";
import { ExitCode, TknockError } from "../../src/errors.js";
import type { KnockTarget } from "./sender.js";

/**
 * Sends one SPA datagram. The socket is connected first, so the kernel has chosen the source address the packet
 * will carry; `build` gets it (the address the payload names by default) and returns the bytes to send.
 */
export function sendSpaDatagram(target: KnockTarget, port: number, build: (localAddress: string) => Buffer): Promise<{ localAddress: string }> {
  const socket = createSocket(target.family === 6 ? "udp6" : "udp4");
  const fail = (err: Error, what: string): TknockError =>
    new TknockError(
      "TKNOCK_NETWORK",
      `cannot ${what} the SPA packet to ${target.address} port ${port}: ${(err as NodeJS.ErrnoException).code ?? err.message}`,
      ExitCode.network,
      {
        cause: err,
      },
    );
  return new Promise<{ localAddress: string }>((resolve, reject) => {
    socket.once("error", (err) => reject(fail(err, "send")));
    socket.connect(port, target.address, () => {
      let localAddress: string;
      let bytes: Buffer;
      try {
        localAddress = socket.address().address;
        bytes = build(localAddress);
      } catch (err) {
        reject(err instanceof Error ? err : new Error(String(err)));
        return;
      }
      socket.send(bytes, (err) => (err ? reject(fail(err, "send")) : resolve({ localAddress })));
    });
  }).finally(() => socket.close());
}
