import { randomInt } from "node:crypto";
import { createSocket as createUdpSocket } from "node:dgram";
import { createRequire } from "node:module";
import { ExitCode, TknockError } from "../../src/errors.js";
import type { KnockTarget, Sender } from "./sender.js";
import { buildSynSegment } from "./tcp-syn.js";

const RAW_SEND_TIMEOUT_MS = 2000;

const PERMISSION_HINT =
  "the raw transport needs root (it crafts its own packets): run it with sudo, or use the default tcp transport (drop --transport raw; it needs no privilege)";

/**
 * The source address the kernel will pick for this target: a connected UDP socket runs the route lookup and
 * sends nothing. The TCP checksum covers it, so it must be known before the SYN is built.
 */
export function sourceAddressFor(target: KnockTarget, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = createUdpSocket(target.family === 6 ? "udp6" : "udp4");
    s.on("error", (err) => {
      s.close();
      reject(
        new TknockError("TKNOCK_NETWORK", `no route to ${target.address}: ${(err as NodeJS.ErrnoException).code ?? err.message}`, ExitCode.network, {
          cause: err,
        }),
      );
    });
    s.connect(port, target.address, () => {
      const { address } = s.address();
      s.close();
      resolve(address);
    });
  });
}

/**
 * Crafts each SYN itself on a raw IPPROTO_TCP socket (the kernel adds the IP header): random source port and
 * sequence number per knock, like a real connect, without any socket state on this host.
 */
export async function createRawSender(target: KnockTarget, firstPort: number): Promise<Sender> {
  let raw: typeof import("raw-socket");
  try {
    // A native CommonJS module: loaded only when the raw transport is chosen.
    raw = createRequire(import.meta.url)("raw-socket") as typeof import("raw-socket");
  } catch (cause) {
    throw new TknockError(
      "TKNOCK_RAW_UNAVAILABLE",
      "the raw transport is unavailable (raw-socket native module not built): use --transport tcp",
      ExitCode.usage,
      { cause },
    );
  }
  let socket: ReturnType<typeof raw.createSocket>;
  try {
    socket = raw.createSocket({
      addressFamily: target.family === 6 ? raw.AddressFamily.IPv6 : raw.AddressFamily.IPv4,
      protocol: raw.Protocol.TCP,
      bufferSize: 256,
    });
  } catch (cause) {
    const text = cause instanceof Error ? cause.message : String(cause);
    if (/not permitted|permission|EPERM|EACCES/i.test(text)) {
      throw new TknockError("TKNOCK_RAW_PERMISSION", PERMISSION_HINT, ExitCode.usage, { cause });
    }
    throw new TknockError("TKNOCK_RAW_UNAVAILABLE", `cannot open a raw socket (${text}): use --transport tcp`, ExitCode.usage, { cause });
  }
  // A raw TCP socket also receives a copy of every TCP packet for this host; tknock never reads them.
  socket.pauseRecv();
  socket.on("error", () => {});
  let source: string;
  try {
    source = await sourceAddressFor(target, firstPort);
  } catch (err) {
    socket.close();
    throw err;
  }
  return {
    transport: "raw",
    knock(port: number): Promise<void> {
      const segment = buildSynSegment(source, target.address, {
        srcPort: randomInt(32768, 61000), // Linux's default ephemeral range
        dstPort: port,
        seq: randomInt(0, 2 ** 32 - 1),
      });
      return new Promise((resolve, reject) => {
        // raw-socket stops its poll handle between queued sends, so nothing it holds keeps Node's loop alive: the
        // process could end with the knock unsent (exit 0). This timer does, and bounds the wait.
        const timer = setTimeout(
          () =>
            reject(
              new TknockError(
                "TKNOCK_NETWORK",
                `the raw socket did not send the knock to ${target.address} port ${port} within ${RAW_SEND_TIMEOUT_MS} ms`,
                ExitCode.network,
              ),
            ),
          RAW_SEND_TIMEOUT_MS,
        );
        socket.send(segment, 0, segment.length, target.address, (err) => {
          clearTimeout(timer);
          if (err)
            reject(
              new TknockError("TKNOCK_NETWORK", `cannot send a knock to ${target.address} port ${port}: ${err.message}`, ExitCode.network, { cause: err }),
            );
          else resolve();
        });
      });
    },
    close(): void {
      socket.close();
    },
  };
}
