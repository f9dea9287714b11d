/**
 * The HTTP side of the metrics endpoint: GET /metrics, nothing else. It answers from what the daemon already
 * counts and never blocks the knock path (a scrape reads counters; the daemon's work is synchronous per packet).
 */
import { createServer, type Server } from "node:http";
import { ExitCode, TknockError } from "../../src/errors.js";
import type { DaemonMetrics, DaemonSnapshot } from "./daemon-metrics.js";
import type { ListenAddress } from "./listen-address.js";

export type MetricsServer = { readonly address: string; close(): Promise<void> };

/** Listens on the address; a port in use or an address not on this host is a start-up error (exit 1). */
export async function startMetricsServer(listen: ListenAddress, metrics: DaemonMetrics, snapshot: () => DaemonSnapshot): Promise<MetricsServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? "").split("?")[0];
    if (req.method !== "GET" || path !== "/metrics") {
      res.writeHead(path === "/metrics" ? 405 : 404, { "content-type": "text/plain" }).end("tknock-server: GET /metrics\n");
      return;
    }
    metrics.scrape(snapshot()).then(
      (text) => res.writeHead(200, { "content-type": metrics.contentType }).end(text),
      (err: unknown) => res.writeHead(500, { "content-type": "text/plain" }).end(`metrics failed: ${err instanceof Error ? err.message : String(err)}\n`),
    );
  });
  // A scraper that stalls must not hold sockets open for ever.
  server.requestTimeout = 10_000;
  server.headersTimeout = 10_000;
  const shown = listen.host.includes(":") ? `[${listen.host}]:${listen.port}` : `${listen.host}:${listen.port}`;
  await new Promise<void>((resolve, reject) => {
    server.once("error", (err: NodeJS.ErrnoException) =>
      reject(
        new TknockError(
          "TKNOCK_METRICS_LISTEN",
          `cannot listen for metrics on ${shown} (${err.code ?? err.message}): free the port or change metrics.listen in the config`,
          ExitCode.usage,
          { cause: err },
        ),
      ),
    );
    server.listen(listen.port, listen.host, () => resolve());
  });
  const bound = server.address();
  const port = typeof bound === "object" && bound !== null ? bound.port : listen.port;
  return {
    address: listen.host.includes(":") ? `[${listen.host}]:${port}` : `${listen.host}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
