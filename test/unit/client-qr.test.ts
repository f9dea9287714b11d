import { randomBytes } from "node:crypto";
import { memoryIo } from "../support/memory-io.js";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { PNG } from "pngjs";
import QRCode from "qrcode";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createClientCli } from "../../client/cli.js";
import { decodeImage, enrolmentUriFromImage, findQrCodes } from "../../client/qr-import.js";
import { decodeQrPng, renderQrPng, renderQrTerminal } from "../../client/qr.js";
import { parseProfileUri } from "../../src/protocol/profile-uri.js";
import { runCli } from "../../src/cli-io.js";
import { TknockError } from "../../src/errors.js";
import { defaultProfileFields, formatProfileUri } from "../../src/protocol/profile-uri.js";

function newUri(host = "198.18.0.2"): string {
  return formatProfileUri({ client: "alice", host, open: [22], secret: randomBytes(32), ...defaultProfileFields([22]) });
}

describe("enrolment QR codes", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "tknock-qr-"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("when qrcode writes a PNG of a URI then the importer reads back the same URI", async () => {
    const uri = newUri();
    expect(await decodeQrPng(await renderQrPng(uri))).toBe(uri);
  });

  it("when the PNG is drawn as `tknock-server enroll --qr-png` draws it (margin 2, scale 6) then it reads back too", async () => {
    const uri = newUri("server.example");
    expect(await decodeQrPng(await QRCode.toBuffer(uri, { type: "png", margin: 2, scale: 6 }))).toBe(uri);
  });

  it("when a PNG holds no QR code then decoding fails with TKNOCK_QR_UNREADABLE", async () => {
    const blank = new PNG({ width: 64, height: 64 });
    blank.data.fill(255);
    await expect(decodeQrPng(PNG.sync.write(blank))).rejects.toMatchObject({ code: "TKNOCK_QR_UNREADABLE" });
  });

  it("when the file is not a PNG then decoding fails with TKNOCK_QR_UNREADABLE", async () => {
    const err = await decodeQrPng(Buffer.from("not a png")).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TknockError);
    expect((err as TknockError).code).toBe("TKNOCK_QR_UNREADABLE");
  });

  it("when `tknock add --qr FILE` and then `export` run then export prints the URI of the picture", async () => {
    const uri = newUri("qr.example");
    const file = join(dir, "enrol.png");
    writeFileSync(file, await renderQrPng(uri));
    const { io, out, err } = memoryIo({ env: { TKNOCK_HOME: join(dir, "home") } });
    expect(await runCli(createClientCli(io), ["add", "--qr", file], io)).toBe(0);
    out.length = 0;
    expect(await runCli(createClientCli(io), ["export", "qr.example"], io)).toBe(0);
    expect(out).toEqual([uri]);
    expect(err.join("\n")).toMatch(/secret/);
  });

  it("when a URI is drawn for the terminal then it is text made of block characters", async () => {
    const text = await renderQrTerminal(newUri());
    expect(text.split("\n").length).toBeGreaterThan(20);
    expect(text).toMatch(/[█▀▄]/);
  });
});

/** Pictures made by qrencode and ImageMagick (test/fixtures/qr/make-fixtures.sh), not by tknock's own encoder. */
describe("QR import of pictures made by other tools", () => {
  const fixtures = fileURLToPath(new URL("../fixtures/qr/", import.meta.url));
  const picture = (name: string): Buffer => readFileSync(join(fixtures, name));
  const alice = readFileSync(join(fixtures, "alice.uri"), "utf8").trim();
  const bob = readFileSync(join(fixtures, "bob.uri"), "utf8").trim();
  const codeOf = (fn: () => unknown): string | undefined => {
    try {
      fn();
    } catch (err) {
      return err instanceof TknockError ? err.code : String(err);
    }
    return undefined;
  };

  it("when qrencode drew the code as a PNG then the imported URI equals the one encoded", () => {
    expect(enrolmentUriFromImage(picture("alice.png"))).toBe(alice);
    expect(parseProfileUri(alice).client).toBe("alice");
  });

  it("when the code was re-encoded as a blurred, scaled JPEG photo then the imported URI equals the one encoded", () => {
    expect(enrolmentUriFromImage(picture("alice-photo.jpg"))).toBe(alice);
  });

  it("when a Wi-Fi code sits beside the enrolment code then both are found and the tknock one is taken", () => {
    const image = picture("wifi-and-alice.png");
    const codes = findQrCodes(decodeImage(image));
    expect(codes).toHaveLength(2);
    expect(codes.some((c) => c.startsWith("WIFI:"))).toBe(true);
    expect(enrolmentUriFromImage(image)).toBe(alice);
  });

  it("when the screenshot is in dark mode (light code on black) then the imported URI equals the one encoded", () => {
    expect(enrolmentUriFromImage(picture("alice-dark.png"))).toBe(alice);
  });

  it("when two tknock codes are in one picture then it lists their labels (no secret) and asks for --index, which picks one", () => {
    const image = picture("alice-and-bob.png");
    let message = "";
    try {
      enrolmentUriFromImage(image);
    } catch (err) {
      expect((err as TknockError).code).toBe("TKNOCK_QR_SEVERAL");
      message = (err as Error).message;
    }
    expect(message).toMatch(/1: tknock:(alice|bob)@gw\.example\.org; 2: tknock:(alice|bob)@gw\.example\.org.*--index N/);
    expect(message).not.toMatch(/secret|GEZDGNBV|MFRGGZDF/);
    const first = message.includes("1: tknock:alice") ? alice : bob;
    expect(enrolmentUriFromImage(image, 1)).toBe(first);
    expect(new Set([enrolmentUriFromImage(image, 1), enrolmentUriFromImage(image, 2)])).toEqual(new Set([alice, bob]));
    expect(codeOf(() => enrolmentUriFromImage(image, 3))).toBe("TKNOCK_USAGE");
  });

  it("when the picture holds only a Wi-Fi code then it says so without printing that code", () => {
    const wifiOnly = picture("wifi-and-alice.png");
    const img = decodeImage(wifiOnly);
    // Cut away the right half (the tknock code).
    const half = Math.floor(img.width / 2) - 10;
    const data = new Uint8ClampedArray(half * img.height * 4);
    for (let y = 0; y < img.height; y++) data.set(img.data.subarray(y * img.width * 4, (y * img.width + half) * 4), y * half * 4);
    const png = new PNG({ width: half, height: img.height });
    png.data = Buffer.from(data.buffer);
    let message = "";
    try {
      enrolmentUriFromImage(PNG.sync.write(png));
    } catch (err) {
      expect((err as TknockError).code).toBe("TKNOCK_QR_UNREADABLE");
      message = (err as Error).message;
    }
    expect(message).toMatch(/found 1 QR code, none of them a tknock enrolment/);
    expect(message).not.toMatch(/WIFI|office-guest|password/);
  });

  it("when `tknock add --qr` gets the JPEG photo then the profile is stored", async () => {
    const home = mkdtempSync(join(tmpdir(), "tknock-qr-add-"));
    try {
      const { io, out, err } = memoryIo({ env: { TKNOCK_HOME: home } });
      expect(await runCli(createClientCli(io), ["add", "--qr", join(fixtures, "alice-photo.jpg")], io), err.join("\n")).toBe(0);
      expect(out.join("\n")).toContain("added gw.example.org");
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  });
});
