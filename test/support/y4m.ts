import { PNG } from "pngjs";

/**
 * A PNG as a one-frame YUV4MPEG2 video (grey: the QR code's luma, neutral chroma), the format chromium's fake
 * camera plays (`--use-file-for-fake-video-capture`), padded to even sides for 4:2:0.
 */
export function pngToY4m(png: Buffer, pad = 40): Buffer {
  const img = PNG.sync.read(png);
  const width = (img.width + 2 * pad + 1) & ~1;
  const height = (img.height + 2 * pad + 1) & ~1;
  const y = Buffer.alloc(width * height, 255);
  for (let row = 0; row < img.height; row++) {
    for (let col = 0; col < img.width; col++) {
      const i = (row * img.width + col) * 4;
      const luma = Math.round(0.299 * (img.data[i] ?? 0) + 0.587 * (img.data[i + 1] ?? 0) + 0.114 * (img.data[i + 2] ?? 0));
      y[(row + pad) * width + col + pad] = luma;
    }
  }
  const chroma = Buffer.alloc((width / 2) * (height / 2) * 2, 128);
  return Buffer.concat([Buffer.from(`YUV4MPEG2 W${width} H${height} F10:1 Ip A1:1 C420jpeg\nFRAME\n`), y, chroma]);
}
