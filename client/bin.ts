/** The client CLI: bundled into dist/client/main.cjs, which dist/client/bin.js (client/launch.ts) runs. */
import { writeSync } from "node:fs";
import { runCli, type CliIo } from "../src/cli-io.js";
import { errnoCode } from "../src/fs-errors.js";
import { systemClock } from "../src/ports.js";
import { createClientCli } from "./cli.js";
import { CLIENT_PERMISSION_FIX } from "./store-errors.js";

const viaStream = new Set<1 | 2>();

/**
 * A line to stdout or stderr with write(2), not through process.stdout/stderr: building those loads the stream
 * modules of their kind (tty and net on a terminal), milliseconds of every start for one line. Both are
 * synchronous on Linux anyway. A non-blocking descriptor that is full (EAGAIN) hands the rest, and every later
 * line, to the stream, which keeps the order; a reader that went away (EPIPE, `| head`) gets nothing more.
 */
function writeLine(fd: 1 | 2, text: string): void {
  let rest = Buffer.from(text.endsWith("\n") ? text : `${text}\n`);
  while (rest.length > 0 && !viaStream.has(fd)) {
    try {
      rest = rest.subarray(writeSync(fd, rest));
    } catch (err) {
      const code = errnoCode(err);
      if (code === "EPIPE") return;
      if (code !== "EAGAIN") throw err;
      viaStream.add(fd);
    }
  }
  if (rest.length > 0) (fd === 1 ? process.stdout : process.stderr).write(rest);
}

let streamsUsed = false;

/** processIo(), with the standard streams built only for the commands that use them (add -, proxy). */
const io: CliIo = {
  out: (t) => writeLine(1, t),
  err: (t) => writeLine(2, t),
  env: process.env,
  clock: systemClock,
  get stdin() {
    streamsUsed = true;
    return process.stdin;
  },
  get stdout() {
    streamsUsed = true;
    return process.stdout;
  },
};
// Not a top-level await: this file is bundled as a classic script (see launch.ts).
void runCli(createClientCli(io), process.argv.slice(2), io, { permissionFix: CLIENT_PERMISSION_FIX }).then((code) => {
  // Ending the process when the command is done skips Node's teardown of the whole heap (about 5 ms of every
  // knock). Nothing is left to deliver: lines went out with write(2). A command that used the standard streams
  // (proxy, add -) lets them drain and ends the usual way (pipes are asynchronous on macOS).
  if (streamsUsed || viaStream.size > 0) process.exitCode = code;
  else process.exit(code);
});
