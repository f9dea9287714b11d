/**
 * The web client's enrolment link (src/protocol/web-link.ts) and the Fetch bad ports (src/protocol/bad-ports.ts),
 * through the commands that use them: `tknock-server enroll --web-url`, `tknock add LINK` and `tknock add --qr`.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createClientCli } from "../../client/cli.js";
import { decodeQrPng, renderQrPng } from "../../client/qr.js";
import { runCli } from "../../src/cli-io.js";
import { deriveSequence } from "../../src/protocol/derive.js";
import { badPortsIn, isBadPort } from "../../src/protocol/bad-ports.js";
import { defaultProfileFields, formatProfileUri, parseProfileUri } from "../../src/protocol/profile-uri.js";
import { checkWebUrl, enrolmentUriOf, formatWebLink, isWebLink } from "../../src/protocol/web-link.js";
import { memoryIo } from "../support/memory-io.js";
import { errorCodeOf, runServerCli } from "../support/server-cli.js";

const URI = formatProfileUri({ client: "phone", host: "srv.example", addr: "198.18.0.2", open: [22], secret: randomBytes(32), ...defaultProfileFields([22]) });

describe("web client links", () => {
  it("when a link is made from a page address then its fragment is the URI and reads back", () => {
    const link = formatWebLink("https://example.org/tknock/", URI);
    expect(link).toBe(`https://example.org/tknock/#${URI}`);
    expect(isWebLink(link)).toBe(true);
    expect(enrolmentUriOf(link)).toBe(URI);
    expect(enrolmentUriOf(` ${URI} `)).toBe(URI);
  });

  it("when a browser percent-encoded the fragment then the URI is still found", () => {
    expect(enrolmentUriOf(`https://example.org/#${encodeURIComponent(URI)}`)).toBe(URI);
  });

  it("when a link has no otpauth fragment then it is returned unchanged and parsing it names the scheme", () => {
    const link = "https://example.org/#about";
    expect(enrolmentUriOf(link)).toBe(link);
    expect(isWebLink(link)).toBe(false);
    expect(() => parseProfileUri(enrolmentUriOf(link))).toThrow(expect.objectContaining({ code: "TKNOCK_INVALID_URI", parameter: "scheme" }));
  });

  it.each(["http://example.org/", "ftp://example.org/", "https://example.org/#x", "not a url"])("when --web-url is %s then it is refused", (url) => {
    expect(() => checkWebUrl(url)).toThrow(expect.objectContaining({ code: "TKNOCK_USAGE" }));
  });

  it("when the page is on this device's http://localhost then the address is accepted", () => {
    expect(checkWebUrl("http://localhost:8080/")).toBe("http://localhost:8080/");
  });
});

describe("Fetch bad ports", () => {
  it("when the default knock range is checked then 10080 is its only bad port", () => {
    expect(badPortsIn(10000, 59999)).toEqual([10080]);
    expect(isBadPort(22)).toBe(true);
    expect(isBadPort(2222)).toBe(false);
  });
});

describe("enrolling for the web client", () => {
  let dir: string;
  let configPath: string;
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), "tknock-web-link-"));
    configPath = join(dir, "etc/server.json");
    const r = await runServerCli(configPath, ["init", "--interface", "lo", "--protect", "22", "--state-dir", join(dir, "state")], 0);
    expect(r.code).toBe(0);
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("when enroll runs then the bad ports of the knock range are excluded, so no window's sequence holds one", async () => {
    const r = await runServerCli(configPath, ["enroll", "phone", "--host", "srv.example"], 0);
    const profile = parseProfileUri(r.out.find((l) => l.startsWith("otpauth://")) ?? "");
    expect(profile.exclude).toContain(10080);
    for (let step = 0; step < 2000; step++) expect(deriveSequence(profile, step).some(isBadPort)).toBe(false);
  });

  it("when enroll --web-url --qr-png runs then it prints the link and the PNG holds it, and `tknock add --qr` and `add LINK` store the URI", async () => {
    const png = join(dir, "phone.png");
    const r = await runServerCli(configPath, ["enroll", "phone", "--host", "srv.example", "--web-url", "https://example.org/k/", "--qr-png", png], 0);
    expect(r.code).toBe(0);
    const uri = r.out.find((l) => l.startsWith("otpauth://")) ?? "";
    expect(r.out).toContain(`https://example.org/k/#${uri}`);
    expect(await decodeQrPng(readFileSync(png))).toBe(`https://example.org/k/#${uri}`);

    for (const args of [
      ["add", "--qr", png],
      ["add", `https://example.org/k/#${uri}`, "--name", "b"],
    ]) {
      const { io, out } = memoryIo({ env: { TKNOCK_HOME: join(dir, "home") } });
      expect(await runCli(createClientCli(io), args, io)).toBe(0);
      expect(out.join("\n")).toMatch(/^added (srv\.example|b): tcp knocks/);
    }
    const { io, out } = memoryIo({ env: { TKNOCK_HOME: join(dir, "home") } });
    expect(await runCli(createClientCli(io), ["export", "b"], io)).toBe(0);
    expect(out).toEqual([uri]);
  });

  it("when a QR code holds a link to a page with no URI then add --qr says none is a tknock enrolment", async () => {
    const png = join(dir, "other.png");
    writeFileSync(png, await renderQrPng("https://example.org/#hello"));
    const { io, err } = memoryIo({ env: { TKNOCK_HOME: join(dir, "home") } });
    expect(await runCli(createClientCli(io), ["add", "--qr", png], io)).toBe(1);
    expect(err.join("\n")).toMatch(/none of them a tknock enrolment/);
  });

  it("when --web-url is plain http then enroll fails before enrolling anyone", async () => {
    const r = await runServerCli(configPath, ["enroll", "phone", "--web-url", "http://example.org/"], 0);
    expect(errorCodeOf(r)).toBe("TKNOCK_USAGE");
    expect(readFileSync(join(dir, "etc/clients.json"), "utf8")).not.toContain("phone");
  });
});
