/**
 * `npm run package:deb`: builds tknock_VERSION_ARCH.deb with dpkg-deb from a staging tree, after `npm run build`.
 *   /usr/lib/tknock            package.json, dist/{src,client,server}, the production node_modules
 *   /usr/bin/tknock, /usr/bin/tknock-server   symlinks to the two programs
 *   /lib/systemd/system/tknock-server.service  docs/systemd/tknock-server.service (not enabled: it needs a config)
 *   /usr/share/man/man{1,5,8}  the man pages (dist/man), gzipped
 *   /usr/share/bash-completion/completions, /usr/share/zsh/vendor-completions   dist/completions
 *   /usr/share/doc/tknock      README, docs, the Grafana dashboard, copyright
 * Maintainer scripts: postinst creates /etc/tknock and /var/lib/tknock (0700) when missing; prerm stops the
 * service on remove (the gate stays: fail closed); postrm deletes /etc/tknock and /var/lib/tknock on purge only.
 * The architecture is the build machine's (`dpkg --print-architecture`): raw-socket is a native module.
 *
 * Usage: node scripts/package-deb.mjs [--out DIR]   (default: the repository root)
 */
import { execFileSync } from "node:child_process";
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative, resolve } from "node:path";
import { gzipSync } from "node:zlib";

const root = resolve(new URL("..", import.meta.url).pathname);
const outIndex = process.argv.indexOf("--out");
const outDir = resolve(outIndex > 0 ? process.argv[outIndex + 1] : root);

const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
const version = pkg.version;
const arch = execFileSync("dpkg", ["--print-architecture"], { encoding: "utf8" }).trim();
const maintainer = process.env["TKNOCK_DEB_MAINTAINER"] ?? "tknock maintainers <tknock@localhost>";

for (const need of ["dist/client/bin.js", "dist/server/bin.js", "dist/man/tknock.1", "dist/completions/bash/tknock"]) {
  if (!existsSync(join(root, need))) throw new Error(`${need} is missing: run npm run build first (npm run package:deb does)`);
}

const stage = mkdtempSync(join(tmpdir(), "tknock-deb-"));
chmodSync(stage, 0o755);
try {
  const at = (p) => join(stage, p);
  const lib = at("usr/lib/tknock");
  mkdirSync(lib, { recursive: true });

  // The app: what `npm pack` ships of dist, and package.json (type: module for the ESM files).
  for (const d of ["dist/src", "dist/client", "dist/server"]) cpSync(join(root, d), join(lib, d), { recursive: true });
  writeFileSync(
    join(lib, "package.json"),
    `${JSON.stringify({ name: pkg.name, version, type: pkg.type, license: pkg.license, dependencies: pkg.dependencies }, null, 2)}\n`,
  );

  // Production node_modules: every package `npm ls --omit=dev` lists, copied with what it holds (nested copies too).
  const listed = execFileSync("npm", ["ls", "--omit=dev", "--all", "--parseable"], { cwd: root, encoding: "utf8", maxBuffer: 16 * 1024 * 1024 })
    .split("\n")
    .filter((p) => p !== "" && p !== root);
  const topLevel = new Set(
    listed
      .map((p) => relative(root, p))
      .map((p) => /^node_modules\/(@[^/]+\/[^/]+|[^/]+)/.exec(p)?.[0])
      .filter(Boolean),
  );
  for (const p of topLevel) cpSync(join(root, p), join(lib, p), { recursive: true, dereference: true });

  mkdirSync(at("usr/bin"), { recursive: true });
  symlinkSync("../lib/tknock/dist/client/bin.js", at("usr/bin/tknock"));
  symlinkSync("../lib/tknock/dist/server/bin.js", at("usr/bin/tknock-server"));

  const unit = readFileSync(join(root, "docs/systemd/tknock-server.service"), "utf8").replace(
    /^Documentation=.*$/m,
    "Documentation=man:tknock-server(8) man:tknock-server.json(5) file:///usr/share/doc/tknock/README.md",
  );
  mkdirSync(at("lib/systemd/system"), { recursive: true });
  writeFileSync(at("lib/systemd/system/tknock-server.service"), unit);

  for (const page of readdirSync(join(root, "dist/man"))) {
    const section = page.slice(-1);
    mkdirSync(at(`usr/share/man/man${section}`), { recursive: true });
    // Debian policy: man pages gzipped with -9 -n (no name or time stamp inside, so builds are reproducible).
    writeFileSync(at(`usr/share/man/man${section}/${page}.gz`), gzipSync(readFileSync(join(root, "dist/man", page)), { level: 9 }));
  }

  mkdirSync(at("usr/share/bash-completion/completions"), { recursive: true });
  mkdirSync(at("usr/share/zsh/vendor-completions"), { recursive: true });
  for (const f of readdirSync(join(root, "dist/completions/bash")))
    cpSync(join(root, "dist/completions/bash", f), at(`usr/share/bash-completion/completions/${f}`));
  for (const f of readdirSync(join(root, "dist/completions/zsh"))) cpSync(join(root, "dist/completions/zsh", f), at(`usr/share/zsh/vendor-completions/${f}`));

  const doc = at("usr/share/doc/tknock");
  mkdirSync(doc, { recursive: true });
  cpSync(join(root, "README.md"), join(doc, "README.md"));
  for (const f of readdirSync(join(root, "docs")).filter((f) => /\.(md|json)$/.test(f))) cpSync(join(root, "docs", f), join(doc, f));
  writeFileSync(
    join(doc, "copyright"),
    `Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: tknock
Files: *
License: ${pkg.license}
Comment: the licenses of the bundled node modules are in /usr/lib/tknock/node_modules/*/LICENSE*.
`,
  );

  // Modes as dpkg expects them: directories 755, files 644, programs 755.
  const normalize = (p) => {
    for (const e of readdirSync(p, { withFileTypes: true })) {
      const full = join(p, e.name);
      if (e.isSymbolicLink()) continue;
      if (e.isDirectory()) {
        chmodSync(full, 0o755);
        normalize(full);
      } else chmodSync(full, statSync(full).mode & 0o111 ? 0o755 : 0o644);
    }
  };
  normalize(stage);
  chmodSync(join(lib, "dist/client/bin.js"), 0o755);
  chmodSync(join(lib, "dist/server/bin.js"), 0o755);

  const installedKiB = Number(execFileSync("du", ["-sk", "--exclude=DEBIAN", stage], { encoding: "utf8" }).split("\t")[0]);
  mkdirSync(at("DEBIAN"), { recursive: true });
  writeFileSync(
    at("DEBIAN/control"),
    `Package: tknock
Version: ${version}
Architecture: ${arch}
Maintainer: ${maintainer}
Installed-Size: ${installedKiB}
Depends: nodejs (>= 20), nftables, tcpdump
Section: net
Priority: optional
Description: time-based rotating port knocks (client and server)
 ${pkg.description}.
 tknock-server keeps ports closed in nftables until a client knocks the
 current window's sequence, derived by HMAC from a per-client secret; a
 sequence is accepted once. tknock is the client. The service is installed
 but not enabled: run tknock-server init and enroll a client first.
`,
  );
  const script = (name, body) => {
    writeFileSync(at(`DEBIAN/${name}`), `#!/bin/sh\nset -e\n${body}`);
    chmodSync(at(`DEBIAN/${name}`), 0o755);
  };
  script(
    "postinst",
    `if [ "$1" = configure ]; then
  # The config holds the clients' secrets: only root may enter it. An existing directory is left as the admin has it.
  [ -d /etc/tknock ] || install -d -m 0700 /etc/tknock
  [ -d /var/lib/tknock ] || install -d -m 0700 /var/lib/tknock
  if [ -d /run/systemd/system ]; then systemctl daemon-reload >/dev/null 2>&1 || true; fi
fi
exit 0
`,
  );
  script(
    "prerm",
    `# The daemon stops; its nftables gate stays (fail closed). \`tknock-server firewall remove\` before removing
# the package opens the protected ports again.
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
  systemctl stop tknock-server.service >/dev/null 2>&1 || true
fi
exit 0
`,
  );
  script(
    "postrm",
    `case "$1" in
  purge)
    # Config (with the clients' secrets) and state go only when the admin purges, as Debian's own packages do.
    rm -rf /etc/tknock /var/lib/tknock
    ;;
esac
if [ -d /run/systemd/system ]; then systemctl daemon-reload >/dev/null 2>&1 || true; fi
exit 0
`,
  );

  mkdirSync(outDir, { recursive: true });
  const deb = join(outDir, `tknock_${version}_${arch}.deb`);
  execFileSync("dpkg-deb", ["--root-owner-group", "-Zgzip", "--build", stage, deb], { stdio: ["ignore", "ignore", "inherit"] });
  process.stdout.write(`${relative(process.cwd(), deb) || deb}\n`);
} finally {
  rmSync(stage, { recursive: true, force: true });
}
