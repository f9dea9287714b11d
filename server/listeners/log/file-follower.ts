/**
 * Follows a file like `tail -F`: starts at its end (or at its start when it appears later), reads what is
 * appended, and survives rotation by rename (the old file is read to its end, then the new one from its start),
 * by truncation (read again from the start) and a file that does not exist yet. A directory watch wakes it as
 * soon as something changes; a slow poll covers file systems where watches miss events.
 */
import { closeSync, fstatSync, openSync, readSync, statSync, watch, type FSWatcher } from "node:fs";
import { basename, dirname } from "node:path";
import { StringDecoder } from "node:string_decoder";

export type FollowEvents = {
  /** Text appended to the followed file (any chunking; the caller splits lines). */
  readonly onData: (text: string) => void;
  /** The file was replaced or truncated: a partial line read before can never be completed. */
  readonly onReset: (why: "rotated" | "truncated" | "appeared") => void;
};

const CHUNK = 64 * 1024;

export class FileFollower {
  private fd: number | undefined;
  private ino = -1;
  private pos = 0;
  private decoder = new StringDecoder("utf8");
  private readonly buf = Buffer.allocUnsafe(CHUNK);
  private watcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private started = false;

  constructor(
    readonly path: string,
    private readonly events: FollowEvents,
    private readonly pollMs = 250,
  ) {}

  start(): void {
    if (this.started) return;
    this.started = true;
    this.openAt("end");
    try {
      this.watcher = watch(dirname(this.path), (_event, name) => {
        if (name === null || name === basename(this.path)) this.poll();
      });
      this.watcher.on("error", () => this.watcher?.close());
    } catch {
      // No watch (folder missing, inotify limits): the poll still runs.
    }
    this.timer = setInterval(() => this.poll(), this.pollMs);
    this.timer.unref();
  }

  stop(): void {
    this.started = false;
    this.watcher?.close();
    if (this.timer) clearInterval(this.timer);
    this.closeFd();
  }

  /** Reads whatever is new; handles replacement and truncation. Safe to call at any time. */
  poll(): void {
    if (!this.started) return;
    let ino: number | undefined;
    try {
      ino = statSync(this.path).ino;
    } catch {
      ino = undefined;
    }
    if (this.fd !== undefined && ino !== this.ino) {
      // Renamed away (or deleted): what was written to it before the rename is still ours to read.
      this.drain();
      this.closeFd();
      this.events.onReset("rotated");
    }
    if (this.fd === undefined) {
      if (ino === undefined) return;
      this.openAt("start");
      if (this.fd === undefined) return;
      this.events.onReset("appeared");
    }
    const size = fstatSync(this.fd).size;
    if (size < this.pos) {
      this.pos = 0;
      this.decoder = new StringDecoder("utf8");
      this.events.onReset("truncated");
    }
    this.drain();
  }

  private openAt(where: "start" | "end"): void {
    try {
      const fd = openSync(this.path, "r");
      const st = fstatSync(fd);
      this.fd = fd;
      this.ino = st.ino;
      this.pos = where === "end" ? st.size : 0;
      this.decoder = new StringDecoder("utf8");
    } catch {
      this.fd = undefined;
    }
  }

  private drain(): void {
    if (this.fd === undefined) return;
    for (;;) {
      let n: number;
      try {
        n = readSync(this.fd, this.buf, 0, CHUNK, this.pos);
      } catch {
        return;
      }
      if (n <= 0) return;
      this.pos += n;
      this.events.onData(this.decoder.write(this.buf.subarray(0, n)));
    }
  }

  private closeFd(): void {
    if (this.fd !== undefined) {
      try {
        closeSync(this.fd);
      } catch {
        /* already closed */
      }
    }
    this.fd = undefined;
    this.ino = -1;
  }
}
