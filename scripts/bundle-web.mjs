/**
 * Builds the web client (web/) into dist/web: index.html holding all its JS and CSS (one file that runs from
 * file://, localhost or any static host), a Content-Security-Policy that lets in only those two inline blocks
 * (by hash) and https: requests (the knocks), plus the manifest, the icon and the service worker. Run by
 * scripts/bundle.mjs. TKNOCK_WEB_DEV=1 builds a development page, which runs the protocol vectors on load.
 */
import { build, transform } from "esbuild";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";

const dev = process.env.TKNOCK_WEB_DEV === "1";

// esbuild strips types without checking them; the page's sources are checked here, with the DOM's types.
for (const project of ["web/tsconfig.json", "web/tsconfig.sw.json"]) {
  const tsc = spawnSync(process.execPath, ["node_modules/typescript/bin/tsc", "-p", project], { stdio: "inherit" });
  if (tsc.status !== 0) throw new Error(`web: type errors in ${project}`);
}

/** otplib makes new secrets (the server's job): profile-uri.ts imports it lazily, the page never needs it. */
const noSecretGenerator = {
  name: "no-secret-generator",
  setup(b) {
    b.onResolve({ filter: /^otplib$/ }, () => ({ path: "otplib", namespace: "web-stub" }));
    b.onLoad({ filter: /.*/, namespace: "web-stub" }, () => ({
      contents: `export const generateSecret = () => { throw new Error("the web client does not make secrets"); };`,
      loader: "js",
    }));
  },
};

const common = {
  bundle: true,
  platform: "browser",
  target: ["es2022", "safari16", "chrome109", "firefox115"],
  minify: !dev,
  write: false,
  legalComments: "none",
  logLevel: "warning",
};

const page = await build({ ...common, entryPoints: ["web/main.ts"], format: "iife", define: { __TKNOCK_DEV__: String(dev) }, plugins: [noSecretGenerator] });
const js = page.outputFiles[0].text.trim();
// The script is inline: "</script" anywhere in it would end it early.
if (/<\/script/i.test(js)) throw new Error("web: the bundled script holds </script: it cannot be inlined");
const css = (await transform(readFileSync("web/style.css", "utf8"), { loader: "css", minify: !dev })).code.trim();

const sha256 = (text) => `'sha256-${createHash("sha256").update(text, "utf8").digest("base64")}'`;
const csp = [
  "default-src 'none'",
  `script-src ${sha256(js)}`,
  `style-src ${sha256(css)}`,
  // Knocks (wss://ADDR:PORT/, web/knock.ts says why not fetch) and the open-port probe (https://ADDR:PORT/) go
  // to any server; nothing else leaves the page.
  "connect-src https: wss:",
  "img-src 'self' data: blob:",
  "media-src blob: mediastream:",
  "manifest-src 'self'",
  "worker-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
].join("; ");

// The hashes cover the exact text between the tags: the whole block is replaced, whatever Prettier made of the
// template's whitespace around the placeholders.
const html = readFileSync("web/index.html", "utf8")
  .replace("__CSP__", () => csp)
  .replace(/<style>\s*__CSS__\s*<\/style>/, () => `<style>${css}</style>`)
  .replace(/<script>\s*__JS__;?\s*<\/script>/, () => `<script>${js}</script>`);
if (/__(CSP|CSS|JS)__/.test(html)) throw new Error("web: a placeholder of web/index.html was not filled");

rmSync("dist/web", { recursive: true, force: true });
mkdirSync("dist/web", { recursive: true });
writeFileSync("dist/web/index.html", html);
copyFileSync("web/manifest.webmanifest", "dist/web/manifest.webmanifest");
copyFileSync("web/icon.svg", "dist/web/icon.svg");
// The cache name follows the page: a new build replaces the old copy on the phone.
const version = createHash("sha256").update(html).digest("hex").slice(0, 12);
const sw = await build({ ...common, entryPoints: ["web/sw.ts"], format: "iife", define: { __TKNOCK_VERSION__: JSON.stringify(version) } });
writeFileSync("dist/web/sw.js", sw.outputFiles[0].text);
