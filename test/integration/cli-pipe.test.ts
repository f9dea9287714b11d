/**
 * Both CLIs piped into a reader that stops early (`tknock-server --help | head -1`): the program ends quietly with
 * its own exit code instead of an unhandled EPIPE stack trace.
 */
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { REPO_ROOT } from "../../lab/tknock-lab.js";

describe("CLIs writing into a closed pipe", () => {
  for (const bin of ["dist/server/bin.js", "dist/client/bin.js"]) {
    it(`when ${bin} --help is piped into head -1 then it exits 0 without an EPIPE error`, () => {
      const r = spawnSync("bash", ["-o", "pipefail", "-c", `node ${join(REPO_ROOT, bin)} --help | head -c 1 >/dev/null`], {
        encoding: "utf8",
        timeout: 20_000,
      });
      expect(r.stderr).not.toMatch(/EPIPE|Unhandled/);
      expect(r.status).toBe(0);
    });
  }
});
