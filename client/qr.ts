import { ExitCode, TknockError } from "../src/errors.js";

/** Reads the text of the QR code in a PNG (a screenshot or photo of the enrolment QR). */
export async function decodeQrPng(png: Buffer): Promise<string> {
  const [{ PNG }, jsqr] = await Promise.all([import("pngjs"), import("jsqr")]);
  let image: { width: number; height: number; data: Buffer };
  try {
    image = PNG.sync.read(png);
  } catch (cause) {
    throw new TknockError("TKNOCK_QR_UNREADABLE", `not a readable PNG image: ${(cause as Error).message}`, ExitCode.usage, { cause });
  }
  const data = new Uint8ClampedArray(image.data.buffer, image.data.byteOffset, image.data.byteLength);
  const code = jsqr.default(data, image.width, image.height);
  if (code === null || code.data === "") {
    throw new TknockError("TKNOCK_QR_UNREADABLE", "no QR code found in the image: crop it to the code, or paste the URI instead", ExitCode.usage);
  }
  return code.data;
}

/** A QR code drawn with Unicode half blocks, for a phone to scan from the terminal. */
export async function renderQrTerminal(text: string): Promise<string> {
  const qrcode = await import("qrcode");
  return qrcode.toString(text, { type: "utf8", errorCorrectionLevel: "M" });
}

/** A PNG of a QR code (tests, and `export --qr` to a file some day). */
export async function renderQrPng(text: string): Promise<Buffer> {
  const qrcode = await import("qrcode");
  return qrcode.toBuffer(text, { type: "png", errorCorrectionLevel: "M", margin: 4, scale: 4 });
}
