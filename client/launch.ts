/**
 * The `tknock` executable (bundled to dist/client/bin.js by scripts/bundle.mjs): it runs the CLI, bundled as one
 * script (dist/client/main.cjs, from client/bin.ts), with V8's code cache for it (main.cjs.v8cache, written by the
 * build). A knock runs in front of every ssh and Node 20 caches no compiled code of its own: compiling the CLI and
 * then each function it calls was a quarter of the run time of `tknock --help`. With the cache, V8 reads back the
 * bytecode instead. The cache is only an accelerator: V8 checks it against its own version, its flags and the
 * script's length and ignores it when they differ (another Node, a hand-edited script); the script then compiles
 * as usual. It is a build product like main.cjs, and written with it: edit client/ and rebuild, never main.cjs.
 *
 * The script gets `require` (Node's own modules) and `importLazy` (the parts in dist/client/lazy/, ES modules):
 * code compiled by vm.Script has no import() of its own without experimental flags, so the build rewrites the
 * script's imports of those parts into calls of importLazy.
 */
import type * as Fs from "node:fs";
import type * as Module from "node:module";
import type * as Url from "node:url";
import type * as Vm from "node:vm";

// process.getBuiltinModule (Node 20.16) hands out Node's modules without building their ESM facades.
const getBuiltinModule = (process as { getBuiltinModule?: (id: string) => unknown }).getBuiltinModule;
const builtin = getBuiltinModule ? (id: string): unknown => getBuiltinModule.call(process, id) : undefined;
const [fs, vm, mod, url] = builtin
  ? [builtin("node:fs") as typeof Fs, builtin("node:vm") as typeof Vm, builtin("node:module") as typeof Module, builtin("node:url") as typeof Url]
  : await Promise.all([import("node:fs"), import("node:vm"), import("node:module"), import("node:url")]);

const mainUrl = new URL("./main.cjs", import.meta.url);
const mainPath = url.fileURLToPath(mainUrl);
const cachePath = `${mainPath}.v8cache`;

let source: string;
try {
  source = fs.readFileSync(mainPath, "utf8");
} catch (err) {
  process.stderr.write(`error: ${mainPath} cannot be read (${(err as NodeJS.ErrnoException).code ?? String(err)}): reinstall tknock, or run npm run build\n`);
  process.exit(70);
}
let cachedData: Buffer | undefined;
try {
  cachedData = fs.readFileSync(cachePath);
} catch {
  cachedData = undefined; // no cache: compile as usual
}

// Strict, as the ES modules it was bundled from are.
const script = new vm.Script(`(function (require, importLazy) {"use strict";${source}\n})`, { filename: mainPath, ...(cachedData ? { cachedData } : {}) });
if (process.env["TKNOCK_DEBUG"] === "1") {
  process.stderr.write(
    `debug: code cache ${cachedData === undefined ? "missing" : script.cachedDataRejected === true ? "rejected (compiling)" : "used"}: ${cachePath}\n`,
  );
}
const run = script.runInThisContext() as (require: NodeJS.Require, importLazy: (specifier: string) => Promise<unknown>) => void;
// Only the build sets this: it runs a few commands, each adding what it compiled to the cache.
const writeCacheTo = process.env["TKNOCK_BUILD_CODE_CACHE"];
if (writeCacheTo !== undefined && writeCacheTo !== "") process.once("exit", () => fs.writeFileSync(writeCacheTo, script.createCachedData()));
run(mod.createRequire(mainPath), (specifier) => import(new URL(specifier, mainUrl).href));
