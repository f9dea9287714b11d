/**
 * The Debian package on this host, as an admin uses it: `npm run package:deb`'s .deb installed with
 * `apt-get install ./tknock_*.deb`, both programs run from /usr/bin, then removed (config kept) and purged
 * (config and state gone). The host is left as it was: the test refuses to start when tknock is installed or
 * /etc/tknock or /var/lib/tknock exist, and compares the dpkg database before and after.
 *
 * Depends: nodejs (>= 20) is met by the nodejs package (Debian's or NodeSource's). When this host's node does not
 * come from dpkg (nvm, a tarball), apt cannot satisfy it: the test then installs a stand-in `nodejs` package with
 * no files (equivs-style) for the duration of the test, and purges it after. Needs a build (`npm test` builds).
 */
import { execFile, execFileSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, expect, it } from "vitest";
import { describeAsRoot } from "../support/root.js";

const ROOT = join(import.meta.dirname, "../..");
const run = promisify(execFile);
const APT_ENV = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
/** Another apt or dpkg run on this host (unattended upgrades) holds the lock for a while: wait for it. */
const APT = ["-y", "-q", "-o", "DPkg::Lock::Timeout=120"];

/** Minimal images (Docker's debian) tell dpkg to skip /usr/share/man: then no man page lands, by the admin's choice. */
function manPagesExcluded(): boolean {
  const dir = "/etc/dpkg/dpkg.cfg.d";
  return existsSync(dir) && readdirSync(dir).some((f) => /^path-exclude=?\s*\/usr\/share\/man/m.test(readFileSync(join(dir, f), "utf8")));
}

function dpkgState(): string {
  return execFileSync("dpkg-query", ["-W", "-f", "${Package} ${Version} ${db:Status-Abbrev}\n"], { encoding: "utf8" });
}

function installed(pkg: string): boolean {
  try {
    return execFileSync("dpkg-query", ["-W", "-f", "${db:Status-Abbrev}", pkg], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).startsWith("ii");
  } catch {
    return false;
  }
}

describeAsRoot("Debian package: build, apt-get install, run from /usr/bin, remove, purge", () => {
  let dir: string;
  let deb: string;
  let before: string;
  let dummyNode = false;

  beforeAll(async () => {
    for (const path of ["/etc/tknock", "/var/lib/tknock", "/usr/bin/tknock", "/usr/bin/tknock-server"]) {
      if (existsSync(path)) throw new Error(`${path} exists: this test installs and purges tknock, so it runs only on a host without it`);
    }
    if (installed("tknock")) throw new Error("the tknock package is installed: this test runs only on a host without it");
    for (const pkg of ["nftables", "tcpdump"]) if (!installed(pkg)) throw new Error(`${pkg} is not installed as a package: apt-get install ${pkg}`);
    before = dpkgState();
    dir = mkdtempSync(join(tmpdir(), "tknock-deb-test-"));
    // apt reads a local .deb as its sandbox user _apt: the folder must be readable to it.
    chmodSync(dir, 0o755);
    await run(process.execPath, [join(ROOT, "scripts/package-deb.mjs"), "--out", dir], { cwd: ROOT, timeout: 120_000 });
    const built = readdirSync(dir).filter((f) => /^tknock_.+_.+\.deb$/.test(f));
    expect(built).toHaveLength(1);
    deb = join(dir, built[0]!);
    if (!installed("nodejs")) {
      dummyNode = true;
      const stage = join(dir, "nodejs-dummy");
      mkdirSync(join(stage, "DEBIAN"), { recursive: true });
      writeFileSync(
        join(stage, "DEBIAN/control"),
        `Package: nodejs\nVersion: ${process.versions.node}-0tknock.dummy\nArchitecture: all\nMaintainer: tknock test <tknock@localhost>\n` +
          `Description: stand-in for the Node.js at ${process.execPath} (not from dpkg)\n Installed by tknock's package test and purged after it.\n`,
      );
      await run("dpkg-deb", ["--root-owner-group", "--build", stage, join(dir, "nodejs-dummy.deb")]);
      await run("dpkg", ["-i", join(dir, "nodejs-dummy.deb")], { env: APT_ENV });
    }
  }, 180_000);

  afterAll(async () => {
    // Whatever failed above, leave no package behind.
    if (installed("tknock") || existsSync("/etc/tknock")) await run("dpkg", ["--purge", "tknock"], { env: APT_ENV }).catch(() => undefined);
    if (dummyNode) await run("dpkg", ["--purge", "nodejs"], { env: APT_ENV }).catch(() => undefined);
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 120_000);

  it("when the .deb is installed with apt-get then both programs run from /usr/bin, and remove keeps the config that purge deletes", async () => {
    const info = execFileSync("dpkg-deb", ["-f", deb, "Depends", "Architecture"], { encoding: "utf8" });
    expect(info).toContain("Depends: nodejs (>= 20), nftables, tcpdump");

    await run("apt-get", ["install", ...APT, deb], { env: APT_ENV, timeout: 180_000 });
    expect(installed("tknock")).toBe(true);
    expect(statSync("/etc/tknock").mode & 0o777).toBe(0o700);
    expect(statSync("/var/lib/tknock").mode & 0o777).toBe(0o700);
    const files = execFileSync("dpkg", ["-L", "tknock"], { encoding: "utf8" }).split("\n");
    const manPages = ["/usr/share/man/man1/tknock.1.gz", "/usr/share/man/man8/tknock-server.8.gz", "/usr/share/man/man5/tknock-server.json.5.gz"];
    expect(files).toEqual(
      expect.arrayContaining([
        "/usr/bin/tknock",
        "/usr/bin/tknock-server",
        "/lib/systemd/system/tknock-server.service",
        ...(manPagesExcluded() ? [] : manPages),
        "/usr/share/bash-completion/completions/tknock",
        "/usr/share/zsh/vendor-completions/_tknock-server",
        "/usr/lib/tknock/node_modules/raw-socket/build/Release/raw.node",
      ]),
    );
    const listed = execFileSync("dpkg-deb", ["-c", deb], { encoding: "utf8" });
    for (const page of manPages) expect(listed).toContain(`.${page}`);

    const version = JSON.parse(
      execFileSync("node", ["-p", "JSON.stringify(require(process.argv[1]).version)", join(ROOT, "package.json")], { encoding: "utf8" }),
    ) as string;
    expect((await run("/usr/bin/tknock", ["--version"])).stdout.trim()).toBe(version);
    const config = join(dir, "etc/server.json");
    const init = await run("/usr/bin/tknock-server", ["--config", config, "init", "--interface", "lo", "--state-dir", join(dir, "state")]);
    expect(init.stdout).toContain(`wrote ${config}`);
    expect((await run("/usr/bin/tknock-server", ["--config", config, "list", "--json"])).stdout.trim()).toBe("[]");
    if (!manPagesExcluded()) expect((await run("man", ["-w", "tknock-server.json"])).stdout.trim()).toBe("/usr/share/man/man5/tknock-server.json.5.gz");

    writeFileSync("/etc/tknock/kept-by-remove", "");
    await run("apt-get", ["remove", ...APT, "tknock"], { env: APT_ENV, timeout: 120_000 });
    expect(existsSync("/usr/bin/tknock")).toBe(false);
    expect(existsSync("/usr/lib/tknock")).toBe(false);
    expect(existsSync("/etc/tknock/kept-by-remove")).toBe(true);

    await run("apt-get", ["purge", ...APT, "tknock"], { env: APT_ENV, timeout: 120_000 });
    expect(existsSync("/etc/tknock")).toBe(false);
    expect(existsSync("/var/lib/tknock")).toBe(false);
    if (dummyNode) await run("dpkg", ["--purge", "nodejs"], { env: APT_ENV });
    dummyNode = false;
    expect(dpkgState()).toBe(before);
  }, 300_000);
});
