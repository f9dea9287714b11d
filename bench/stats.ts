/** Small statistics and formatting helpers shared by the benchmark parts. */

export type Summary = { n: number; median: number; p90: number; max: number; min: number; mean: number };

/** Nearest-rank percentile (p in 0..100) of an ascending array. */
function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

export function summarize(values: readonly number[]): Summary {
  const sorted = [...values].filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  const n = sorted.length;
  if (n === 0) return { n: 0, median: Number.NaN, p90: Number.NaN, max: Number.NaN, min: Number.NaN, mean: Number.NaN };
  // The median of an even count is the mean of the two middle values.
  const median = n % 2 === 1 ? sorted[(n - 1) / 2]! : (sorted[n / 2 - 1]! + sorted[n / 2]!) / 2;
  return { n, median, p90: percentile(sorted, 90), max: sorted[n - 1]!, min: sorted[0]!, mean: sorted.reduce((a, b) => a + b, 0) / n };
}

export function median(values: readonly number[]): number {
  return summarize(values).median;
}

/** 1234567 -> "1.23 M", 12345 -> "12.3 k". */
export function si(v: number, digits = 3): string {
  if (!Number.isFinite(v)) return "n/a";
  const abs = Math.abs(v);
  if (abs >= 1e9) return `${(v / 1e9).toPrecision(digits)} G`;
  if (abs >= 1e6) return `${(v / 1e6).toPrecision(digits)} M`;
  if (abs >= 1e3) return `${(v / 1e3).toPrecision(digits)} k`;
  return v.toPrecision(digits);
}

export function ms(v: number | undefined): string {
  if (v === undefined || !Number.isFinite(v)) return "n/a";
  if (v >= 100) return `${v.toFixed(0)} ms`;
  if (v >= 10) return `${v.toFixed(1)} ms`;
  return `${v.toFixed(2)} ms`;
}

/** Decimal megabytes, the unit of the targets ("RSS < 150 MB"). */
export function mb(bytes: number | undefined): string {
  if (bytes === undefined || !Number.isFinite(bytes)) return "n/a";
  return `${(bytes / 1e6).toFixed(1)} MB`;
}

/** "a / b" as a ratio with two significant digits, or n/a. */
export function ratio(a: number | undefined, b: number | undefined): string {
  if (a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || b === 0) return "n/a";
  const r = a / b;
  return r >= 10 ? `${r.toFixed(0)}x` : `${r.toPrecision(2)}x`;
}

export function sleep(msToWait: number): Promise<void> {
  return new Promise((r) => setTimeout(r, msToWait));
}
