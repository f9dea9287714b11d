/**
 * docs/systemd/tknock-server.service against the code and the README: an absolute ExecStart with the default
 * config, the capabilities the start-up check demands, and a README that names every capability the unit keeps.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { DEFAULT_CONFIG_PATH, DEFAULT_STATE_DIR } from "../../server/config/schema.js";

const ROOT = join(import.meta.dirname, "../..");
const unit = readFileSync(join(ROOT, "docs/systemd/tknock-server.service"), "utf8");
const readme = readFileSync(join(ROOT, "README.md"), "utf8");

function directive(name: string): string {
  const m = new RegExp(`^${name}=(.*)$`, "m").exec(unit);
  if (!m?.[1]) throw new Error(`the unit has no ${name}=`);
  return m[1];
}

describe("systemd unit", () => {
  it("when systemd starts it then ExecStart is an absolute path to tknock-server running the default config", () => {
    const [program, ...args] = directive("ExecStart").split(/\s+/);
    expect(program).toMatch(/^\/[^ ]*\/tknock-server$/);
    expect(args).toEqual(["--config", DEFAULT_CONFIG_PATH, "run"]);
  });

  it("when the daemon checks its rights then the unit's bounding set holds what it demands, and the state dir is writable", () => {
    const caps = directive("CapabilityBoundingSet").split(/\s+/);
    expect(caps).toEqual(expect.arrayContaining(["CAP_NET_ADMIN", "CAP_NET_RAW"]));
    expect(directive("ReadWritePaths").split(/\s+/)).toContain(DEFAULT_STATE_DIR);
  });

  it("when the README describes the unit then it names every capability the unit keeps", () => {
    const section = readme.slice(readme.indexOf("## Run under systemd"), readme.indexOf("## Troubleshooting"));
    for (const cap of directive("CapabilityBoundingSet").split(/\s+/)) expect(section).toContain(cap);
    expect(section).toContain(directive("ExecStart").split(/\s+/)[0]);
  });
});
