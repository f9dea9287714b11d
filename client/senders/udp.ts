import { createSocket, type Socket } from "node:dgram";
import { ExitCode, TknockError } from "../../src/errors.js";
import type { KnockTarget, Sender } from "./sender.js";

/** One byte is enough: the server matches on the destination port, never on the payload. */
const PAYLOAD = Buffer.from([0]);

export function createUdpSender(target: KnockTarget): Sender {
  let socket: Socket | undefined;
  return {
    transport: "udp",
    async knock(port: number): Promise<void> {
      socket ??= createSocket(target.family === 6 ? "udp6" : "udp4");
      const s = socket;
      await new Promise<void>((resolve, reject) => {
        s.send(PAYLOAD, port, target.address, (err) => {
          if (err) {
            const code = (err as NodeJS.ErrnoException).code ?? "error";
            reject(new TknockError("TKNOCK_NETWORK", `cannot send a knock to ${target.address} port ${port}: ${code}`, ExitCode.network, { cause: err }));
          } else resolve();
        });
      });
    },
    close(): void {
      socket?.close();
      socket = undefined;
    },
  };
}
