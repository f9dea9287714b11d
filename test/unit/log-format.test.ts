import { closeSync, fstatSync, mkdtempSync, openSync, readFileSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { afterEach, describe, expect, it } from "vitest";
import { defaultLogFormat, formatLogLine, LOG_FORMATS, processLogFormat, syslogPriority } from "../../server/log-format.js";
import { createLogger } from "../../server/logger.js";

const SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";

function capture(format: (typeof LOG_FORMATS)[number], level = "debug") {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(chunk.toString());
      cb();
    },
  });
  return { log: createLogger(level, sink, format), lines };
}

describe("log formats", () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it("when a warning is logged in journal format then its line starts with <4> and the JSON follows", () => {
    const { log, lines } = capture("journal");
    log.warn({ client: "alice" }, "knock refused");
    expect(lines[0]).toMatch(/^<4>\{"level":40,/);
    expect(JSON.parse(lines[0]!.slice(3))).toMatchObject({ msg: "knock refused", client: "alice" });
  });

  it("when each level is logged in journal format then each carries its syslog priority", () => {
    const { log, lines } = capture("journal");
    log.debug("d");
    log.info("i");
    log.warn("w");
    log.error("e");
    log.fatal("f");
    expect(lines.map((l) => l.slice(0, 3))).toEqual(["<7>", "<6>", "<4>", "<3>", "<2>"]);
    expect(syslogPriority(12345)).toBe(5);
  });

  it("when stdout is the stream JOURNAL_STREAM names then the format is journal, else json", () => {
    expect(defaultLogFormat("8:1234", { dev: 8, ino: 1234 })).toBe("journal");
    expect(defaultLogFormat("8:1234", { dev: 8, ino: 999 })).toBe("json");
    expect(defaultLogFormat(undefined, { dev: 8, ino: 1234 })).toBe("json");
    expect(defaultLogFormat("garbage", { dev: 8, ino: 1234 })).toBe("json");
  });

  it("when JOURNAL_STREAM names the file that is the log's stdout then a warning written there starts with <4>", () => {
    const dir = mkdtempSync(join(tmpdir(), "tknock-log-"));
    dirs.push(dir);
    const path = join(dir, "out");
    const fd = openSync(path, "w");
    try {
      const st = fstatSync(fd);
      const format = processLogFormat({ JOURNAL_STREAM: `${st.dev}:${st.ino}` }, fd);
      expect(format).toBe("journal");
      const sink = new Writable({
        write(chunk: Buffer, _enc, cb) {
          writeSync(fd, chunk);
          cb();
        },
      });
      createLogger("info", sink, format).warn("capture slow");
    } finally {
      closeSync(fd);
    }
    expect(readFileSync(path, "utf8")).toMatch(/^<4>\{"level":40,.*"msg":"capture slow"/);
  });

  it("when a line is logged in pretty format then it reads time, level, message, then key=value", () => {
    const { log, lines } = capture("pretty");
    log.warn({ reason: "replay", client: "alice", ports: [1, 2], note: "two words" }, "knock refused");
    expect(lines[0]).toMatch(/^\d\d:\d\d:\d\d\.\d{3} WARN {2}knock refused reason=replay client=alice ports=\[1,2\] note="two words"\n$/);
  });

  it("when pretty gets a line that is not JSON then it passes it on unchanged", () => {
    expect(formatLogLine("pretty", "not json\n")).toBe("not json\n");
  });

  for (const format of LOG_FORMATS) {
    it(`when a secret is passed to the logger by mistake in ${format} format then it never appears`, () => {
      const { log, lines } = capture(format);
      log.info({ secret: SECRET }, "one");
      log.info({ client: { name: "alice", secret: SECRET } }, "two");
      log.warn({ uri: `otpauth://tknock/alice?secret=${SECRET}` }, "three");
      log.error({ clients: { alice: { secret: SECRET } } }, "four");
      const text = lines.join("");
      expect(lines).toHaveLength(4);
      expect(text).not.toContain(SECRET);
      expect(text).toContain("[redacted]");
    });
  }
});
