/**
 * Bundles each CLI into one ESM file (dist/client/bin.js, dist/server/bin.js), run after `tsc` has type-checked
 * and emitted everything else. One file parses in a fraction of the time Node takes to resolve and load the few
 * hundred modules behind it, and a knock command runs in front of every ssh. Code a command loads with
 * `await import()` (QR, images, the raw socket, otplib's secret generator) goes to chunks beside the file and is
 * read only by that command. raw-socket stays external: it is a native module.
 */
import { build } from "esbuild";
import { rmSync } from "node:fs";

/**
 * conf imports ajv, ajv-formats and semver at its top for schemas and migrations, which the client's store does
 * not use: they are replaced by a stub that throws if ever called, so the knock path never loads them.
 */
const confUnusedParts = {
  name: "conf-unused-parts",
  setup(b) {
    b.onResolve({ filter: /^(ajv\/dist\/2020\.js|ajv-formats|semver)$/ }, (args) =>
      /[\\/]node_modules[\\/]conf[\\/]/.test(args.importer) ? { path: args.path, namespace: "conf-unused" } : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: "conf-unused" }, (args) => ({
      loader: "js",
      contents: `const unused = () => { throw new Error(${JSON.stringify(`${args.path} is not bundled: tknock uses conf without schema or migrations`)}); };
export const Ajv2020 = unused; export default unused;`,
    }));
  },
};

/**
 * Node modules that a dependency imports at its top for a feature tknock never uses, each replaced by a small
 * module: commander's executable subcommands (child_process; \`-- COMMAND\` loads it itself when run), and conf's
 * one deepEqual on open (assert, whose load costs more than the comparison).
 */
const unusedBuiltins = {
  name: "unused-builtins",
  setup(b) {
    b.onResolve({ filter: /^(node:)?(child_process|assert)$/ }, (args) => {
      const from = (pkg) => new RegExp(`[\\\\/]node_modules[\\\\/]${pkg}[\\\\/]`).test(args.importer);
      if (args.path === "node:child_process" && from("commander")) return { path: "child_process", namespace: "unused-builtin" };
      if (/assert$/.test(args.path) && (from("conf") || from("signal-exit") || from("graceful-fs"))) return { path: "assert", namespace: "unused-builtin" };
      return undefined;
    });
    b.onLoad({ filter: /^child_process$/, namespace: "unused-builtin" }, () => ({
      loader: "js",
      contents: `const unused = () => { throw new Error("executable subcommands are not bundled"); };
module.exports = { spawn: unused, execFileSync: unused };`,
    }));
    b.onLoad({ filter: /^assert$/, namespace: "unused-builtin" }, () => ({
      loader: "js",
      // conf compares the file's JSON with itself plus defaults (a null-prototype copy): JSON text compares that.
      // signal-exit and graceful-fs only check arguments and debug counters with assert.equal.
      contents: `const fail = (message) => { throw new Error(message || "assertion failed"); };
const assert = (value, message) => { if (!value) fail(message); };
assert.ok = assert;
assert.equal = (a, b, message) => { if (a != b) fail(message); };
assert.deepEqual = (a, b, message) => { if (JSON.stringify(a) !== JSON.stringify(b)) fail(message); };
module.exports = assert;`,
    }));
  },
};

/**
 * `import process from "node:process"` (conf, env-paths) makes Node build an ESM facade of the process object,
 * which reads every property, process.stdin/stdout/stderr included: that loads net, tty and streams at start
 * (several ms) for commands that never touch stdin. The global is the same object.
 */
const globalProcess = {
  name: "global-process",
  setup(b) {
    b.onResolve({ filter: /^(node:)?process$/ }, () => ({ path: "process", namespace: "global-process" }));
    b.onLoad({ filter: /.*/, namespace: "global-process" }, () => ({ loader: "js", contents: "module.exports = globalThis.process;" }));
  },
};

for (const cli of ["client", "server"]) {
  rmSync(`dist/${cli}/chunks`, { recursive: true, force: true });
  await build({
    entryPoints: [`${cli}/bin.ts`],
    outdir: `dist/${cli}`,
    chunkNames: "chunks/[name]-[hash]",
    bundle: true,
    splitting: true,
    format: "esm",
    platform: "node",
    target: "node20",
    minify: true,
    legalComments: "linked",
    logLevel: "warning",
    external: ["raw-socket"],
    plugins: cli === "client" ? [confUnusedParts, unusedBuiltins, globalProcess] : [globalProcess],
    // CommonJS dependencies call require() for Node's own modules; an ESM file has none of its own.
    banner: { js: "import { createRequire as __tknockRequire } from 'node:module'; const require = __tknockRequire(import.meta.url);" },
  });
  // tsc's map of the unbundled bin.js would describe the wrong file.
  rmSync(`dist/${cli}/bin.js.map`, { force: true });
}
