/**
 * Every command of both CLIs run as `nobody` against a root-owned config, clients file, state directory and client
 * store: each fails with exactly one line on stderr that names the fix (never "internal error", never a chown
 * when the fix is to be root), and nothing root owns is changed. The built binaries are copied to a folder
 * nobody can read (the checkout may sit in a private home), and the commands run inside a lab namespace so that
 * the nft calls of `status`, `firewall remove` and `run` never reach the host's firewall.
 */
import { execFile } from "node:child_process";
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { Lab, type ExecResult } from "../../lab/lab.js";
import { REPO_ROOT } from "../../lab/tknock-lab.js";
import { describeAsRoot } from "../support/root.js";

const NOBODY = 65534;
const AS_NOBODY = ["setpriv", `--reuid=${NOBODY}`, `--regid=${NOBODY}`, "--clear-groups", "env", "HOME=/nonexistent"];
const RUN_AS_ROOT = /run as root or with sudo/;

function sh(argv: readonly string[], timeoutMs = 120_000): Promise<ExecResult> {
  return new Promise((resolve) => {
    const [cmd, ...args] = argv;
    execFile(cmd as string, args, { timeout: timeoutMs, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === "number" ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

/** Every path under dir with its mode, owner and content: what root owns must be the same afterwards. */
function snapshot(dir: string): string[] {
  const out: string[] = [];
  const walk = (p: string): void => {
    const st = statSync(p);
    out.push(`${p} ${st.mode.toString(8)} ${st.uid} ${st.isFile() ? readFileSync(p, "base64") : ""}`);
    if (st.isDirectory()) for (const e of readdirSync(p).sort()) walk(join(p, e));
  };
  walk(dir);
  return out;
}

describeAsRoot("every command run as nobody", () => {
  let lab: Lab;
  let app: string;
  let work: string;
  let uri: string;
  const paths = { config: "", state: "", store: "" };

  const serverAsRoot = (args: readonly string[]): Promise<ExecResult> => sh(["node", join(app, "dist/server/bin.js"), "--config", paths.config, ...args]);
  const asNobody = (bin: "server" | "client", args: readonly string[]): Promise<ExecResult> =>
    lab.exec("server", [...AS_NOBODY, "node", join(app, `dist/${bin}/bin.js`), ...args], { timeoutMs: 15_000 });

  beforeAll(async () => {
    if (!existsSync(join(REPO_ROOT, "dist/server/bin.js"))) {
      const b = await sh(["npx", "tsc", "-p", join(REPO_ROOT, "tsconfig.json")]);
      if (b.code !== 0) throw new Error(`build failed: ${b.stdout}${b.stderr}`);
    }
    app = mkdtempSync(join(tmpdir(), "tknock-perm-app-"));
    chmodSync(app, 0o755);
    const copy = await sh(["cp", "-a", join(REPO_ROOT, "dist"), join(REPO_ROOT, "node_modules"), join(REPO_ROOT, "package.json"), app]);
    if (copy.code !== 0) throw new Error(`copy failed: ${copy.stderr}`);
    // The copy keeps the checkout's modes; nobody needs to read and traverse it.
    await sh(["chmod", "-R", "a+rX", app]);

    work = mkdtempSync(join(tmpdir(), "tknock-perm-"));
    chmodSync(work, 0o755);
    paths.config = join(work, "etc/server.json");
    paths.state = join(work, "state");
    paths.store = join(work, "store");
    const init = await serverAsRoot(["init", "--interface", "any", "--state-dir", paths.state]);
    if (init.code !== 0) throw new Error(`init failed: ${init.stderr}`);
    const enroll = await serverAsRoot(["enroll", "alice", "--host", "198.18.0.1"]);
    uri = enroll.stdout.split("\n").find((l) => l.startsWith("otpauth://")) ?? "";
    if (uri === "") throw new Error(`enroll failed: ${enroll.stderr}`);
    const add = await sh(["node", join(app, "dist/client/bin.js"), "--store", paths.store, "add", uri, "--name", "srv"]);
    if (add.code !== 0) throw new Error(`add failed: ${add.stderr}`);
    lab = await Lab.create(["server"]);
  }, 120_000);

  afterAll(async () => {
    await lab?.destroy();
    if (work) rmSync(work, { recursive: true, force: true });
    if (app) rmSync(app, { recursive: true, force: true });
  });

  /** Runs as nobody; asserts a non-zero exit, exactly one stderr line matching `fix`, and root's files untouched. */
  async function refused(bin: "server" | "client", args: readonly string[], fix: RegExp): Promise<string> {
    const before = snapshot(work);
    const r = await asNobody(bin, args);
    const lines = r.stderr.split("\n").filter((l) => l.trim() !== "");
    expect({ args, code: r.code === 0 ? 0 : "non-zero", lines: lines.length }).toEqual({ args, code: "non-zero", lines: 1 });
    expect(r.code).not.toBe(70);
    expect(lines[0]).not.toMatch(/internal error/);
    expect(lines[0]).not.toMatch(/chown/);
    expect(lines[0]).toMatch(/^error: /);
    expect(lines[0]).toMatch(fix);
    expect(snapshot(work)).toEqual(before);
    return lines[0] ?? "";
  }

  const serverCommands: readonly (readonly string[])[] = [
    ["enroll", "bob", "--host", "h"],
    ["revoke", "alice"],
    ["list"],
    ["sequence", "alice"],
    ["status"],
    ["replays"],
    ["firewall", "remove"],
    ["init", "--force", "--interface", "any"],
  ];
  for (const args of serverCommands) {
    it(`when nobody runs \`tknock-server ${args.join(" ")}\` then it fails with one line: run as root or with sudo`, async () => {
      await refused(
        "server",
        ["--config", "CONFIG", ...args].map((a) => (a === "CONFIG" ? paths.config : a)),
        RUN_AS_ROOT,
      );
    });
  }

  it("when nobody runs `tknock-server run` then it exits at once with one line and no internal error, and the gate is not installed", async () => {
    await refused("server", ["--config", paths.config, "run"], RUN_AS_ROOT);
    const rules = await lab.exec("server", ["nft", "list", "ruleset"]);
    expect(rules.stdout).not.toContain("tknock");
  });

  it("when nobody runs `tknock-server init` with a fresh config under a root folder then it fails before writing anything", async () => {
    await refused("server", ["--config", join(work, "new/etc/server.json"), "init", "--state-dir", join(work, "new/state")], RUN_AS_ROOT);
    expect(existsSync(join(work, "new"))).toBe(false);
  });

  it("when nobody may write the config folder but not the state folder then init writes nothing and can run again once fixed", async () => {
    const own = mkdtempSync(join(tmpdir(), "tknock-perm-own-"));
    try {
      chownSync(own, NOBODY, NOBODY);
      const config = join(own, "etc/server.json");
      const line = await refused("server", ["--config", config, "init", "--state-dir", join(work, "state2")], RUN_AS_ROOT);
      expect(line).toContain(join(work, "state2"));
      expect(readdirSync(own)).toEqual([]); // nothing half-written: no config, no clients file
      // The fix (a state folder nobody may write) is enough: no --force needed.
      const state = join(own, "state");
      const again = await asNobody("server", ["--config", config, "init", "--state-dir", state]);
      expect(again.stderr).toBe("");
      expect(again.code).toBe(0);
      expect(readdirSync(join(own, "etc")).sort()).toEqual(["clients.json", "server.json"]);
    } finally {
      rmSync(own, { recursive: true, force: true });
    }
  });

  const clientCommands: readonly (readonly string[])[] = [
    ["add", "URI", "--name", "other"],
    ["list"],
    ["remove", "srv"],
    ["export", "srv"],
    ["sequence", "srv"],
    ["knock", "srv"],
    ["srv"],
  ];
  for (const args of clientCommands) {
    it(`when nobody runs \`tknock ${args.join(" ")}\` on root's store then it fails with one line saying whose store it is`, async () => {
      await refused("client", ["--store", paths.store, ...args.map((a) => (a === "URI" ? uri : a))], /cannot use store .*it belongs to root/);
    });
  }

  it("when nobody's store folder cannot be created then `tknock add` says so in one line", async () => {
    await refused("client", ["--store", join(work, "nobody-store"), "add", uri], /cannot use store .*--store DIR/);
  });

  it("when nobody runs a command that needs no file then it works: `tknock sequence --uri` and `tknock-server --help`", async () => {
    const seq = await asNobody("client", ["sequence", "--uri", uri, "--json"]);
    expect(seq.stderr).toBe("");
    expect(seq.code).toBe(0);
    expect(JSON.parse(seq.stdout)).toMatchObject({ proto: "tcp" });
    const help = await asNobody("server", ["--help"]);
    expect(help.code).toBe(0);
  });
});
