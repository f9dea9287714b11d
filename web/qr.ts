/** QR codes for enrolment: an image file (jsQR), or the camera (BarcodeDetector where the browser has one, else jsQR on frames). */
import jsqrModule from "jsqr";

type JsQr = typeof jsqrModule.default;
// jsQR is CommonJS: depending on the bundler the function is the module or its default export.
const jsqrExports: unknown = jsqrModule;
const jsQR = (typeof jsqrExports === "function" ? jsqrExports : (jsqrExports as { default: JsQr }).default) as JsQr;

/** Larger pictures are scaled down first: jsQR's time grows with the pixels, and a phone photo has 12 million. */
const MAX_SIDE = 1600;

function pixelsOf(source: CanvasImageSource, width: number, height: number): ImageData {
  const scale = Math.min(1, MAX_SIDE / Math.max(width, height));
  const canvas = document.createElement("canvas");
  canvas.width = Math.max(1, Math.round(width * scale));
  canvas.height = Math.max(1, Math.round(height * scale));
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  if (ctx === null) throw new Error("this browser cannot draw the picture (no 2D canvas)");
  ctx.drawImage(source, 0, 0, canvas.width, canvas.height);
  return ctx.getImageData(0, 0, canvas.width, canvas.height);
}

export function decodePixels(img: ImageData): string | undefined {
  return jsQR(img.data, img.width, img.height, { inversionAttempts: "attemptBoth" })?.data;
}

/** The text of the QR code in a picture file, or undefined when none is found. */
export async function decodeImageFile(file: Blob): Promise<string | undefined> {
  let bitmap: ImageBitmap;
  try {
    bitmap = await createImageBitmap(file);
  } catch {
    throw new Error("cannot read this file as a picture: choose a PNG or JPEG of the QR code");
  }
  try {
    return decodePixels(pixelsOf(bitmap, bitmap.width, bitmap.height));
  } finally {
    bitmap.close();
  }
}

type Detector = { detect(source: CanvasImageSource): Promise<{ rawValue: string }[]> };
type DetectorClass = { new (opts: { formats: string[] }): Detector; getSupportedFormats?: () => Promise<string[]> };

async function nativeDetector(): Promise<Detector | undefined> {
  const D = (globalThis as { BarcodeDetector?: DetectorClass }).BarcodeDetector;
  if (D === undefined) return undefined;
  const formats = (await D.getSupportedFormats?.()) ?? ["qr_code"];
  return formats.includes("qr_code") ? new D({ formats: ["qr_code"] }) : undefined;
}

/**
 * Shows the back camera in `video` and resolves with the first QR code's text; `accept` tells a code worth
 * stopping for (a Wi-Fi code in view is skipped). The camera stops on return, on error and on abort.
 */
export async function scanWithCamera(video: HTMLVideoElement, accept: (text: string) => boolean, signal: AbortSignal): Promise<string> {
  if (navigator.mediaDevices?.getUserMedia === undefined) throw new Error("no camera access here: the page must be served over https (or use a picture file)");
  const stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" }, audio: false });
  try {
    video.srcObject = stream;
    await video.play();
    const detector = await nativeDetector();
    while (!signal.aborted) {
      await new Promise((r) => setTimeout(r, 200));
      if (video.videoWidth === 0) continue;
      const texts =
        detector !== undefined ? (await detector.detect(video)).map((c) => c.rawValue) : [decodePixels(pixelsOf(video, video.videoWidth, video.videoHeight))];
      const found = texts.find((t): t is string => t !== undefined && accept(t));
      if (found !== undefined) return found;
    }
    throw new Error("camera scan stopped");
  } finally {
    for (const track of stream.getTracks()) track.stop();
    video.srcObject = null;
  }
}
