import { randomBytes } from "node:crypto";
import { memoryIo } from "../support/memory-io.js";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PNG } from "pngjs";
import QRCode from "qrcode";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createClientCli } from "../../client/cli.js";
import { decodeQrPng, renderQrPng, renderQrTerminal } from "../../client/qr.js";
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
