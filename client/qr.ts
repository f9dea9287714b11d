/**
 * Drawing enrolment QR codes. Loaded only by the commands that draw one (`export --qr`, `--qr-png`); reading them
 * is in qr-import.ts.
 */
import QRCode from "qrcode";
import { ExitCode, TknockError } from "../src/errors.js";

/**
 * A QR code for the terminal, in explicit black on white (as `tknock-server enroll` draws it): drawn in the
 * terminal's own colours, a dark terminal would show it inverted, and many phone scanners fail on that.
 */
export function renderQrTerminal(text: string): Promise<string> {
  return QRCode.toString(text, { type: "terminal", small: true, errorCorrectionLevel: "M" });
}

/** A PNG of a QR code, black on white with a quiet zone. */
export function renderQrPng(text: string): Promise<Buffer> {
  return QRCode.toBuffer(text, { type: "png", errorCorrectionLevel: "M", margin: 4, scale: 6, color: { dark: "#000000ff", light: "#ffffffff" } });
}

/** The text of the first QR code in a PNG or JPEG picture (what `add --qr` reads is chosen in qr-import.ts). */
export async function decodeQrPng(image: Buffer): Promise<string> {
  const { decodeImage, findQrCodes } = await import("./qr-import.js");
  const first = findQrCodes(decodeImage(image))[0];
  if (first === undefined)
    throw new TknockError("TKNOCK_QR_UNREADABLE", "no QR code found in the image: crop it to the code, or paste the URI instead", ExitCode.usage);
  return first;
}
