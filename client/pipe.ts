import type { Socket } from "node:net";
import { ExitCode, TknockError } from "../src/errors.js";

/**
 * Joins a connection to a pair of streams (ssh's ProxyCommand pipes) and resolves when the connection closes.
 * End of input half-closes the connection, so a reply in flight still arrives; the peer closing ends it all.
 */
export function pipeBothWays(socket: Socket, input: NodeJS.ReadableStream, output: NodeJS.WritableStream): Promise<void> {
  return new Promise((resolve, reject) => {
    let failure: NodeJS.ErrnoException | undefined;
    socket.on("error", (err: NodeJS.ErrnoException) => {
      failure ??= err;
    });
    // The reader went away (ssh exited): nothing left to deliver to.
    output.on("error", () => socket.destroy());
    input.pipe(socket);
    socket.pipe(output, { end: false });
    socket.once("close", () => {
      input.unpipe(socket);
      // Stop reading so an open stdin does not keep the process alive.
      const destroy = (input as { destroy?: () => void }).destroy;
      if (typeof destroy === "function") destroy.call(input);
      if (failure !== undefined && failure.code !== "ECONNRESET" && failure.code !== "EPIPE") {
        reject(new TknockError("TKNOCK_NETWORK", `connection lost: ${failure.code ?? failure.message}`, ExitCode.network, { cause: failure }));
      } else resolve();
    });
  });
}
