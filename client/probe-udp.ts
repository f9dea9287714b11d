import { createSocket } from "node:dgram";
import type { ProbeResult } from "./probe.js";
import type { KnockTarget } from "./senders/sender.js";

/** One UDP exchange: the payload to a connected socket, and the first reply or ICMP error within timeoutMs. */
export function udpExchange(target: KnockTarget, port: number, payload: Buffer, timeoutMs: number): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const socket = createSocket(target.family === 6 ? "udp6" : "udp4");
    let settled = false;
    const settle = (r: ProbeResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.close();
      resolve(r);
    };
    const timer = setTimeout(() => settle({ kind: "closed" }), timeoutMs);
    socket.on("message", () => settle({ kind: "open" }));
    socket.on("error", (err: NodeJS.ErrnoException) =>
      settle(err.code === "ECONNREFUSED" ? { kind: "reachable" } : { kind: "error", code: err.code ?? "error" }),
    );
    // Connected, so the kernel reports an ICMP port unreachable as ECONNREFUSED.
    socket.connect(port, target.address, () => {
      socket.send(payload, (err) => {
        if (err) settle({ kind: "error", code: (err as NodeJS.ErrnoException).code ?? "error" });
      });
    });
  });
}
