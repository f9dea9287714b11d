/**
 * Bundles the CLIs, run after `tsc` has type-checked and emitted everything else. One file parses in a fraction
 * of the time Node takes to resolve and load the few hundred modules behind it, and a knock command runs in front
 * of every ssh. raw-socket stays external: it is a native module.
 *
 * The server: dist/server/bin.js, one ESM file, with what its commands load with `await import()` in chunks.
 * The client does not split: every ESM file Node loads costs about a millisecond (resolve, an asynchronous read,
 * compile, link), and splitting makes a shared chunk for each set of importers, five files before `tknock --help`
 * printed anything. Instead:
 *   - dist/client/main.cjs: client/bin.ts and everything the knock, sequence and help paths run, one classic
 *     script (what they load with `await import()`, such as the tcp sender, is evaluated only when imported);
 *   - dist/client/lazy/*.js: the large parts few commands use (clientLazy), ES modules;
 *   - dist/client/bin.js: client/launch.ts, which runs main.cjs with V8's code cache, main.cjs.v8cache, written
 *     here by running a few commands (writeCodeCache).
 */
import { build } from "esbuild";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { builtinModules, createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

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

/**
 * Node's own modules, for the client, through require() rather than import: importing one makes Node build its
 * ESM facade, which reads every export, lazy getters included: `node:fs` then loads the whole stream stack for
 * fs.ReadStream and `node:crypto` the Web Crypto module. Those Node has loaded before any user code runs (fs,
 * path, events, ...) are required at once; any other is an object whose getters require it on first use, so a
 * module a command never touches is never loaded (`--help` does not load crypto, a knock neither dns nor dgram).
 * `node:process` is handled by globalProcess, which must come first.
 */
const lazyBuiltins = {
  name: "lazy-builtins",
  setup(b) {
    const builtins = new Set(builtinModules);
    const nodeRequire = createRequire(import.meta.url);
    const started = spawnSync(process.execPath, ["-e", "process.stdout.write(JSON.stringify(process.moduleLoadList))"], { encoding: "utf8" });
    const atStart = new Set(
      JSON.parse(started.stdout)
        .filter((m) => m.startsWith("NativeModule "))
        .map((m) => m.slice("NativeModule ".length)),
    );
    b.onResolve({ filter: /^(node:)?[a-z_/]+$/ }, (args) => {
      const name = args.path.replace(/^node:/, "");
      if (!builtins.has(name)) return undefined;
      // The require() inside the stand-in is Node's own.
      return args.namespace === "lazy-builtin" ? { path: args.path, external: true } : { path: name, namespace: "lazy-builtin" };
    });
    b.onLoad({ filter: /.*/, namespace: "lazy-builtin" }, (args) => {
      const id = JSON.stringify(`node:${args.path}`);
      const real = nodeRequire(args.path);
      // A module that is itself a function (events, stream, assert) is called or extended: no stand-in for that.
      if (atStart.has(args.path) || typeof real === "function") return { loader: "js", contents: `module.exports = require(${id});` };
      // The export names of this Node; one added later reads through the module itself (`default`).
      const names = Object.keys(real).filter((n) => n !== "default");
      const getters = names.map((n) => `${JSON.stringify(n)}: { get: () => load()[${JSON.stringify(n)}], enumerable: true }`).join(",\n");
      return {
        loader: "js",
        contents: `let mod;
const load = () => (mod ??= require(${id}));
module.exports = Object.defineProperties({}, {
${getters}
});`,
      };
    });
  },
};

/**
 * The client's separate files, loaded with `await import()` by the commands that use them: QR import (pngjs,
 * jpeg-js, jsQR) and QR drawing, the raw sender (a native module), conf (written by add, remove and set; the knock
 * path reads and records steps without it) and otplib (the secret generator).
 */
const clientLazy = [
  { out: "qr-import", file: "client/qr-import.ts" },
  { out: "qr", file: "client/qr.ts" },
  { out: "raw", file: "client/senders/raw.ts" },
  { out: "conf", pkg: "conf", contents: `export { default } from "conf";` },
  { out: "otplib", pkg: "otplib", contents: `export * from "otplib";` },
];

/**
 * Modules both the main file and a lazy file use that must be one instance: a class checked with instanceof.
 * src/errors.ts: runCli tells a TknockError (one line, its exit code) from a bug (internal error), so a QR import
 * error thrown by a lazy file must be an instance of the main file's class. The main file registers the module on
 * globalThis before anything else runs; the lazy files read it from there.
 */
const sharedWithLazy = ["src/errors.ts"];
const sharedKey = (file) => `Symbol.for(${JSON.stringify(`tknock.bundle:${file}`)})`;

/** Turns `await import()` of a lazy part into an import of its file; prefix is the way from the importer's output. */
function lazyParts(prefix) {
  return {
    name: "lazy-parts",
    setup(b) {
      const byKey = new Map(clientLazy.map((l) => [l.file !== undefined ? resolve(l.file) : l.pkg, l]));
      b.onResolve({ filter: /.*/ }, (args) => {
        if (args.kind !== "dynamic-import") return undefined;
        const key = /^[./]/.test(args.path) ? resolve(args.resolveDir, args.path).replace(/\.js$/, ".ts") : args.path;
        const lazy = byKey.get(key);
        return lazy === undefined ? undefined : { path: `${prefix}${lazy.out}.js`, external: true };
      });
    },
  };
}

/** In a lazy file: the shared modules come from the main file's registry. */
const sharedFromMain = {
  name: "shared-from-main",
  setup(b) {
    const shared = new Map(sharedWithLazy.map((f) => [resolve(f), f]));
    b.onResolve({ filter: /^\./ }, (args) => {
      const file = shared.get(resolve(args.resolveDir, args.path).replace(/\.js$/, ".ts"));
      return file === undefined ? undefined : { path: file, namespace: "shared-from-main" };
    });
    b.onLoad({ filter: /.*/, namespace: "shared-from-main" }, (args) => ({
      loader: "js",
      contents: `module.exports = globalThis[${sharedKey(args.path)}] ?? (() => { throw new Error("${args.path} is not registered: this file is loaded by tknock's bin.js"); })();`,
    }));
  },
};

/** The main file's entry (registers the shared modules, then runs client/bin.ts) and the entries of lazy packages. */
const clientEntry = {
  name: "client-entry",
  setup(b) {
    b.onResolve({ filter: /^tknock-(entry|register|lazy):/ }, (args) => ({ path: args.path, namespace: "client-entry" }));
    b.onLoad({ filter: /.*/, namespace: "client-entry" }, (args) => {
      const resolveDir = resolve(".");
      if (args.path === "tknock-entry:main") return { loader: "js", resolveDir, contents: `import "tknock-register:shared";\nimport "./client/bin.ts";` };
      if (args.path === "tknock-register:shared") {
        const lines = sharedWithLazy.map((f, i) => `import * as m${i} from ${JSON.stringify(resolve(f))};\nglobalThis[${sharedKey(f)}] = m${i};`);
        return { loader: "js", resolveDir, contents: lines.join("\n") };
      }
      const lazy = clientLazy.find((l) => `tknock-lazy:${l.out}` === args.path);
      return { loader: "js", resolveDir, contents: lazy.contents };
    });
  },
};

const common = {
  bundle: true,
  format: "esm",
  platform: "node",
  target: "node20",
  minify: true,
  legalComments: "linked",
  logLevel: "warning",
  external: ["raw-socket"],
};

// CommonJS dependencies and the stand-ins of Node's modules call require(); an ESM file has none of its own.
// process.getBuiltinModule (Node 20.16) returns Node's modules without loading node:module for createRequire.
const lazyRequire =
  "const require = globalThis.process.getBuiltinModule ? (id) => globalThis.process.getBuiltinModule(id) : (await import('node:module')).createRequire(import.meta.url);";

rmSync("dist/client/chunks", { recursive: true, force: true });
rmSync("dist/client/lazy", { recursive: true, force: true });
rmSync("dist/client/main.cjs.v8cache", { force: true });

// The executable: client/launch.ts, which runs main.cjs.
await build({ ...common, entryPoints: { bin: "client/launch.ts" }, outdir: "dist/client", legalComments: "none", banner: { js: "#!/usr/bin/env node" } });

// The CLI as a classic script for vm.Script (launch.ts gives it require and importLazy).
const main = await build({
  ...common,
  format: "cjs",
  write: false,
  entryPoints: [{ in: "tknock-entry:main", out: "main" }],
  outdir: "dist/client",
  outExtension: { ".js": ".cjs" },
  plugins: [clientEntry, lazyParts("./lazy/"), confUnusedParts, unusedBuiltins, globalProcess, lazyBuiltins],
});
for (const out of main.outputFiles) {
  let text = out.text;
  if (out.path.endsWith("main.cjs")) {
    text = text.replaceAll('import("./lazy/', 'importLazy("./lazy/');
    // Any other import() would fail at run time inside vm.Script: it must be bundled in, or be a lazy part.
    if (/\bimport\(/.test(text)) throw new Error("main.cjs: an import() of something not in clientLazy is left: add it there");
  }
  writeFileSync(out.path, text);
}

await build({
  ...common,
  entryPoints: clientLazy.map((l) => ({ in: l.file ?? `tknock-lazy:${l.out}`, out: l.out })),
  outdir: "dist/client/lazy",
  plugins: [clientEntry, lazyParts("./"), sharedFromMain, confUnusedParts, unusedBuiltins, globalProcess, lazyBuiltins],
  banner: { js: lazyRequire },
});

await writeCodeCache();

/**
 * V8's code cache of main.cjs (see client/launch.ts): the commands that run in front of ssh are run once each,
 * with a throwaway store and no packet sent, every run adding the functions it compiled. The knock stops at
 * "this window's steps are used" (both steps recorded as used, the next two as refused), after the lock, the
 * store and the step choice; what only sending runs (a few small functions) compiles when first used.
 */
async function writeCodeCache() {
  const { defaultProfileFields, formatProfileUri } = await import("../dist/src/protocol/profile-uri.js");
  const { randomBytes } = await import("node:crypto");
  const home = mkdtempSync(join(tmpdir(), "tknock-code-cache-"));
  try {
    const uri = formatProfileUri({
      client: "build",
      host: "warm-up.invalid",
      addr: "127.0.0.1",
      open: [22],
      secret: randomBytes(32),
      ...defaultProfileFields([22]),
    });
    const step = Math.floor(Date.now() / 30_000);
    const store = { version: 1, profiles: { warm: { uri, addr: "127.0.0.1", lastStepUsed: step + 1, avoidSteps: [step + 2, step + 3] } } };
    writeFileSync(join(home, "profiles.json"), JSON.stringify(store), { mode: 0o600 });
    const runs = [
      [["--help"], 0],
      [["--store", home, "list"], 0],
      [["--store", home, "sequence", "warm"], 0],
      [["--store", home, "warm", "--delay", "0", "--probe-timeout", "0", "--no-wait-window"], 3],
    ];
    for (const [args, status] of runs) {
      const r = spawnSync(process.execPath, ["dist/client/bin.js", ...args], {
        env: { ...process.env, TKNOCK_BUILD_CODE_CACHE: "dist/client/main.cjs.v8cache" },
        encoding: "utf8",
      });
      if (r.status !== status) throw new Error(`code cache warm-up \`tknock ${args.join(" ")}\` exited ${r.status}, not ${status}: ${r.stderr}`);
    }
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
}

rmSync("dist/server/chunks", { recursive: true, force: true });
await build({
  ...common,
  entryPoints: ["server/bin.ts"],
  outdir: "dist/server",
  chunkNames: "chunks/[name]-[hash]",
  splitting: true,
  plugins: [globalProcess],
  banner: { js: "import { createRequire as __tknockRequire } from 'node:module'; const require = __tknockRequire(import.meta.url);" },
});
// tsc's maps of the unbundled bin.js would describe the wrong file.
rmSync("dist/client/bin.js.map", { force: true });
rmSync("dist/server/bin.js.map", { force: true });

await import("./bundle-web.mjs");
