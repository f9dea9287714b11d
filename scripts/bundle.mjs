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
    plugins: cli === "client" ? [confUnusedParts] : [],
    // CommonJS dependencies call require() for Node's own modules; an ESM file has none of its own.
    banner: { js: "import { createRequire as __tknockRequire } from 'node:module'; const require = __tknockRequire(import.meta.url);" },
  });
  // tsc's map of the unbundled bin.js would describe the wrong file.
  rmSync(`dist/${cli}/bin.js.map`, { force: true });
}
