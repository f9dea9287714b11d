/**
 * Reads enrolment URIs from pictures people have: PNG screenshots and JPEG photos, light or dark mode, with other
 * QR codes beside the one that matters (a Wi-Fi code on the same sheet). Loaded only by `tknock add --qr`.
 */
import { PNG } from "pngjs";
import jpeg from "jpeg-js";
import jsqrModule from "jsqr";
import { ExitCode, TknockError } from "../src/errors.js";
import { enrolmentUriOf } from "../src/protocol/web-link.js";

// jsQR's CommonJS export is the function itself (also as .default); TypeScript only sees the .default.
const jsQR = jsqrModule.default;

export type RgbaImage = { readonly width: number; readonly height: number; readonly data: Uint8ClampedArray };

/** More codes than this in one picture is not an enrolment sheet. */
const MAX_CODES = 8;
/** Pictures above this many pixels are scaled down first: the decoder's time grows with the pixel count. */
const MAX_PIXELS = 4_000_000;

function unreadable(message: string, cause?: unknown): TknockError {
  return new TknockError("TKNOCK_QR_UNREADABLE", message, ExitCode.usage, cause === undefined ? undefined : { cause });
}

/** Decodes a PNG or JPEG file (told apart by their first bytes) into RGBA pixels. */
export function decodeImage(bytes: Buffer): RgbaImage {
  const isPng = bytes.length > 8 && bytes.readUInt32BE(0) === 0x89504e47;
  const isJpeg = bytes.length > 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff;
  if (!isPng && !isJpeg) throw unreadable("not a PNG or JPEG image: save the picture as PNG or JPEG, or paste the URI instead");
  try {
    const raw = isPng ? PNG.sync.read(bytes) : jpeg.decode(bytes, { useTArray: true, formatAsRGBA: true, maxResolutionInMP: 100, maxMemoryUsageInMB: 1024 });
    return { width: raw.width, height: raw.height, data: new Uint8ClampedArray(raw.data.buffer, raw.data.byteOffset, raw.data.byteLength) };
  } catch (cause) {
    throw unreadable(
      `not a readable ${isPng ? "PNG" : "JPEG"} image (${(cause as Error).message.slice(0, 80)}): save it again, or paste the URI instead`,
      cause,
    );
  }
}

/** Averages factor x factor blocks: a phone photo keeps its codes, the decoder gets a fraction of the pixels. */
function downscale(img: RgbaImage, factor: number): RgbaImage {
  const width = Math.floor(img.width / factor);
  const height = Math.floor(img.height / factor);
  const data = new Uint8ClampedArray(width * height * 4);
  const n = factor * factor;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      for (let c = 0; c < 4; c++) {
        let sum = 0;
        for (let dy = 0; dy < factor; dy++) {
          for (let dx = 0; dx < factor; dx++) sum += img.data[((y * factor + dy) * img.width + x * factor + dx) * 4 + c] ?? 0;
        }
        data[(y * width + x) * 4 + c] = sum / n;
      }
    }
  }
  return { width, height, data };
}

type Found = { readonly text: string; readonly version: number; readonly corners: readonly { x: number; y: number }[] };

function crop(img: RgbaImage, x0: number, y0: number, width: number, height: number): RgbaImage {
  const data = new Uint8ClampedArray(width * height * 4);
  for (let y = 0; y < height; y++) data.set(img.data.subarray(((y0 + y) * img.width + x0) * 4, ((y0 + y) * img.width + x0 + width) * 4), y * width * 4);
  return { width, height, data };
}

/**
 * One code somewhere in the picture. jsQR looks for three finder patterns; with two codes of the same size side by
 * side it can pair patterns of different codes and find none, so halves and then quarters (overlapping, so a code
 * on a border stays whole in one of them) are tried when the whole picture gives nothing.
 */
function findOne(img: RgbaImage): Found | undefined {
  const regions: [number, number, number, number][] = [[0, 0, 1, 1]];
  for (const [fx, fy, fw, fh] of [
    [0, 0, 0.6, 1],
    [0.4, 0, 0.6, 1],
    [0, 0, 1, 0.6],
    [0, 0.4, 1, 0.6],
    [0, 0, 0.6, 0.6],
    [0.4, 0, 0.6, 0.6],
    [0, 0.4, 0.6, 0.6],
    [0.4, 0.4, 0.6, 0.6],
  ] as const)
    regions.push([fx, fy, fw, fh]);
  for (const [fx, fy, fw, fh] of regions) {
    const x0 = Math.floor(img.width * fx);
    const y0 = Math.floor(img.height * fy);
    const part = fw === 1 && fh === 1 ? img : crop(img, x0, y0, Math.floor(img.width * fw), Math.floor(img.height * fh));
    const code = jsQR(part.data, part.width, part.height, { inversionAttempts: "attemptBoth" });
    if (code === null) continue;
    const l = code.location;
    const corners = [l.topLeftCorner, l.topRightCorner, l.bottomLeftCorner, l.bottomRightCorner].map((p) => ({ x: p.x + x0, y: p.y + y0 }));
    return { text: code.data, version: code.version, corners };
  }
  return undefined;
}

/**
 * Every QR code's text, in the order found: find one, paint its area in the colour of its quiet zone (so the
 * next pass cannot see it), look again. jsQR tries the inverted picture too, so dark-mode codes are read.
 */
export function findQrCodes(input: RgbaImage): string[] {
  const pixels = input.width * input.height;
  const img = pixels > MAX_PIXELS ? downscale(input, Math.ceil(Math.sqrt(pixels / MAX_PIXELS))) : { ...input, data: new Uint8ClampedArray(input.data) };
  const found: string[] = [];
  for (let i = 0; i < MAX_CODES; i++) {
    const code = findOne(img);
    if (code === undefined) break;
    found.push(code.text);
    const [tl, tr] = code.corners as [{ x: number; y: number }, { x: number; y: number }];
    const module = Math.hypot(tr.x - tl.x, tr.y - tl.y) / (code.version * 4 + 17);
    const margin = Math.ceil(module * 2) + 1;
    const xs = code.corners.map((p) => p.x);
    const ys = code.corners.map((p) => p.y);
    const x0 = Math.max(0, Math.floor(Math.min(...xs)) - margin);
    const y0 = Math.max(0, Math.floor(Math.min(...ys)) - margin);
    const x1 = Math.min(img.width - 1, Math.ceil(Math.max(...xs)) + margin);
    const y1 = Math.min(img.height - 1, Math.ceil(Math.max(...ys)) + margin);
    // The quiet zone's colour, just outside the top-left corner (white, or dark for an inverted code).
    const qx = Math.min(img.width - 1, Math.max(0, Math.round(tl.x - module)));
    const qy = Math.min(img.height - 1, Math.max(0, Math.round(tl.y - module)));
    const q = (qy * img.width + qx) * 4;
    const fill = [img.data[q] ?? 255, img.data[q + 1] ?? 255, img.data[q + 2] ?? 255, 255];
    for (let y = y0; y <= y1; y++) {
      for (let x = x0; x <= x1; x++) img.data.set(fill, (y * img.width + x) * 4);
    }
  }
  return found;
}

/** A tknock enrolment URI: otpauth://totp/ with the tknock label or issuer (parsed in full by `add`). */
export function isTknockUri(text: string): boolean {
  const t = enrolmentUriOf(text);
  if (!/^otpauth:\/\/totp\//i.test(t)) return false;
  const label = decodeURIComponent(t.slice("otpauth://totp/".length).split("?")[0] ?? "");
  return label.startsWith("tknock:") || /[?&]issuer=tknock(&|$)/.test(t);
}

/** The label (tknock:CLIENT@HOST) of a URI: what may be shown to tell codes apart; never the secret. */
function labelOf(text: string): string {
  const uri = enrolmentUriOf(text);
  try {
    return decodeURIComponent(uri.slice("otpauth://totp/".length).split("?")[0] ?? "");
  } catch {
    return "(unreadable label)";
  }
}

/**
 * The enrolment URI in a picture. Other codes are ignored (their text is never printed: a Wi-Fi code holds a
 * password); several tknock codes need --index N, 1-based in the order listed.
 */
export function enrolmentUriFromImage(bytes: Buffer, index?: number): string {
  const codes = findQrCodes(decodeImage(bytes));
  if (codes.length === 0) throw unreadable("no QR code found in the image: crop it to the code, take a sharper picture, or paste the URI instead");
  const candidates = codes.filter(isTknockUri);
  if (candidates.length === 0) {
    throw unreadable(
      `found ${codes.length} QR code${codes.length > 1 ? "s" : ""}, none of them a tknock enrolment (otpauth://totp/tknock:...): scan the code \`tknock-server enroll\` printed`,
    );
  }
  if (index !== undefined) {
    const picked = candidates[index - 1];
    if (picked === undefined) throw new TknockError("TKNOCK_USAGE", `--index ${index}: the image holds ${candidates.length} tknock QR code(s)`, ExitCode.usage);
    return enrolmentUriOf(picked);
  }
  if (candidates.length > 1) {
    const list = candidates.map((c, i) => `${i + 1}: ${labelOf(c)}`).join("; ");
    throw new TknockError("TKNOCK_QR_SEVERAL", `the image holds ${candidates.length} tknock QR codes (${list}): choose one with --index N`, ExitCode.usage);
  }
  return enrolmentUriOf(candidates[0] as string);
}
