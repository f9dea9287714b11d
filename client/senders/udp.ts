import { createSocket, type Socket } from "node:dgram";
import { ExitCode, TknockError } from "../../src/errors.js";
import type { KnockTarget, Sender } from "./sender.js";

/** One byte is enough: the server matches on the destination port, never on the payload. */
const PAYLOAD = Buffer.from([0]);

export function createUdpSender(target: KnockTarget): Sender {
  let socket: Socket | undefined;
  const sendOne = (s: Socket, port: number): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      s.send(PAYLOAD, port, target.address, (err) => {
        if (err) {
          const code = (err as NodeJS.ErrnoException).code ?? "error";
          reject(new TknockError("TKNOCK_NETWORK", `cannot send a knock to ${target.address} port ${port}: ${code}`, ExitCode.network, { cause: err }));
        } else resolve();
      });
    });
  return {
    transport: "udp",
    async knock(port: number): Promise<void> {
      socket ??= createSocket(target.family === 6 ? "udp6" : "udp4");
      await sendOne(socket, port);
    },
    async knockAll(ports: readonly number[]): Promise<void> {
      socket ??= createSocket(target.family === 6 ? "udp6" : "udp4");
      const s = socket;
      // One socket sends in the order of the calls (its send queue is FIFO), all queued in this turn.
      await Promise.all(ports.map((port) => sendOne(s, port)));
    },
    close(): void {
      socket?.close();
      socket = undefined;
    },
  };
}
