import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Command } from "commander";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createServerCli } from "../../server/cli.js";
import { configureProgram, runCli } from "../../src/cli-io.js";
import { TknockError } from "../../src/errors.js";
import { knownFsError, userErrorOf } from "../../src/fs-errors.js";
import { memoryIo } from "../support/memory-io.js";

function errnoError(code: string, syscall: string, path: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: ${syscall} '${path}'`), { code, syscall, path });
}

describe("file-system errors for users", () => {
  it("when a refused permission, a read-only or a full filesystem is mapped then each gets its code and one line naming the file", () => {
    const cases = [
      ["EACCES", "TKNOCK_PERMISSION", /cannot read clients file \/x \(permission denied\): /],
      ["EPERM", "TKNOCK_PERMISSION", /permission denied/],
      ["EROFS", "TKNOCK_READ_ONLY_FS", /read-only: remount it read-write/],
      ["ENOSPC", "TKNOCK_NO_SPACE", /no space left/],
    ] as const;
    for (const [errno, code, text] of cases) {
      const e = knownFsError(errnoError(errno, "open", "/x"), "read", "clients file /x");
      expect(e?.code).toBe(code);
      expect(e?.message).toMatch(text);
      expect(e?.message).not.toContain("\n");
    }
    expect(knownFsError(errnoError("ENOENT", "open", "/x"), "read", "/x")).toBeUndefined();
  });

  it("when a command throws a raw EACCES that nothing mapped then the CLI prints one line with the path and the fix, not internal error", async () => {
    const { io, err } = memoryIo();
    const program = configureProgram(new Command("t"), io);
    program.command("boom").action(() => {
      throw errnoError("EACCES", "open", "/var/lib/tknock/x");
    });
    const code = await runCli(program, ["boom"], io, { permissionFix: "do the thing" });
    expect(code).toBe(1);
    expect(err).toEqual(["error: cannot open /var/lib/tknock/x (permission denied): do the thing"]);
  });

  it("when an error is not a file error then userErrorOf leaves it alone", () => {
    const plain = new Error("x");
    const ours = new TknockError("TKNOCK_X", "y");
    expect(userErrorOf(plain)).toBe(plain);
    expect(userErrorOf(ours)).toBe(ours);
    expect(userErrorOf(Object.assign(new Error("e"), { code: "ECONNREFUSED" }))).toBeInstanceOf(Error);
  });
});

describe("init checks before it writes", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "tknock-init-preflight-"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("when the state directory cannot be made (a file is in the way) then init fails with one line and writes neither config nor clients file", async () => {
    writeFileSync(join(dir, "blocker"), "");
    const { io, err } = memoryIo();
    const config = join(dir, "etc/server.json");
    const code = await runCli(createServerCli(io), ["--config", config, "init", "--state-dir", join(dir, "blocker/state")], io);
    expect(code).toBe(1);
    expect(err).toHaveLength(1);
    expect(err[0]).toContain(join(dir, "blocker"));
    expect(existsSync(join(dir, "etc"))).toBe(false);
  });

  it("when the config path is a directory then init fails before writing anything", async () => {
    const { io, err } = memoryIo();
    const code = await runCli(
      createServerCli(io),
      ["--config", dir, "init", "--force", "--clients", join(dir, "clients.json"), "--state-dir", join(dir, "state")],
      io,
    );
    expect(code).toBe(1);
    expect(err).toHaveLength(1);
    expect(existsSync(join(dir, "state"))).toBe(false);
    expect(existsSync(join(dir, "clients.json"))).toBe(false);
  });
});
