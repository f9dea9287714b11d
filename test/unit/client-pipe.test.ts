import { mkdtempSync, rmSync } from "node:fs";
import { connect, createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { pipeBothWays } from "../../client/pipe.js";

/** A Unix socket stands in for the TCP connection: same Socket API, no network. */
describe("proxy piping", () => {
  let dir: string;
  let server: Server;
  let path: string;

  async function serve(handler: (s: Socket) => void): Promise<void> {
    server = createServer(handler);
    await new Promise<void>((r) => server.listen(path, r));
  }
  function dial(): Promise<Socket> {
    return new Promise((resolve) => {
      const s = connect(path, () => resolve(s));
    });
  }
  function collect(stream: PassThrough): () => string {
    let text = "";
    stream.on("data", (c: Buffer) => (text += c.toString()));
    return () => text;
  }

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "tknock-pipe-"));
    path = join(dir, "s");
  });
  afterEach(async () => {
    await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
    rmSync(dir, { recursive: true, force: true });
  });

  it("when input ends then the connection is half-closed, the echo still arrives, and the pipe finishes", async () => {
    await serve((s) => s.pipe(s));
    const input = new PassThrough();
    const output = new PassThrough();
    const got = collect(output);
    const done = pipeBothWays(await dial(), input, output);
    const payload = "x".repeat(300_000);
    input.end(payload);
    await done;
    expect(got().length).toBe(payload.length);
  });

  it("when the peer closes first then the pipe finishes and stops reading input", async () => {
    await serve((s) => s.end("bye\n"));
    const input = new PassThrough();
    const output = new PassThrough();
    const got = collect(output);
    await pipeBothWays(await dial(), input, output);
    expect(got()).toBe("bye\n");
    expect(input.destroyed).toBe(true);
    expect(output.writableEnded).toBe(false); // the pipe never ends process.stdout
  });
});
