import { describe, expect, it } from "vitest";
import { runCommand } from "../../client/run-command.js";
import { ExitCode } from "../../src/errors.js";

describe("running the command after --", () => {
  it("when the command exits 5 then 5 is returned", async () => {
    expect(await runCommand(["sh", "-c", "exit 5"])).toBe(5);
  });

  it("when the command is killed by SIGTERM then 128+15 is returned, as shells report it", async () => {
    expect(await runCommand(["sh", "-c", "kill -TERM $$"])).toBe(143);
  });

  it("when the command does not exist then it fails with TKNOCK_COMMAND_NOT_RUN and exit code 127", async () => {
    await expect(runCommand(["/nonexistent/tknock-test-command"])).rejects.toMatchObject({
      code: "TKNOCK_COMMAND_NOT_RUN",
      exitCode: ExitCode.commandNotRun,
    });
  });
});
