/**
 * A small strict validator: walks a parsed JSON value against the expected shape, collects every problem with
 * its path (so one run reports them all), and never quotes values of fields marked secret.
 */
export class Checker {
  readonly issues: string[] = [];

  problem(path: string, message: string): void {
    this.issues.push(`${path}: ${message}`);
  }

  object(value: unknown, path: string, allowedKeys: readonly string[]): Record<string, unknown> | undefined {
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      this.problem(path, `must be an object, got ${describe(value)}`);
      return undefined;
    }
    const record = value as Record<string, unknown>;
    for (const key of Object.keys(record)) {
      if (!allowedKeys.includes(key)) this.problem(`${path}.${key}`, `unknown key (allowed: ${allowedKeys.join(", ")})`);
    }
    return record;
  }

  int(value: unknown, path: string, min: number, max: number): number {
    if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
      this.problem(path, `${describe(value)} is not allowed: use an integer from ${min} to ${max}`);
      return min;
    }
    return value;
  }

  bool(value: unknown, path: string): boolean {
    if (typeof value !== "boolean") {
      this.problem(path, `${describe(value)} is not allowed: use true or false`);
      return false;
    }
    return value;
  }

  string(value: unknown, path: string, opts: { pattern?: RegExp; hint?: string; secret?: boolean } = {}): string {
    if (typeof value !== "string" || value.length === 0 || (opts.pattern && !opts.pattern.test(value))) {
      const shown = opts.secret ? "the value" : describe(value);
      this.problem(path, `${shown} is not allowed${opts.hint ? `: ${opts.hint}` : ": use a non-empty string"}`);
      return "";
    }
    return value;
  }

  oneOf<T extends string>(value: unknown, path: string, allowed: readonly T[]): T {
    if (typeof value !== "string" || !(allowed as readonly string[]).includes(value)) {
      this.problem(path, `${describe(value)} is not allowed: use one of ${allowed.join(", ")}`);
      return allowed[0] as T;
    }
    return value as T;
  }

  ports(value: unknown, path: string, opts: { allowEmpty: boolean }): number[] {
    if (!Array.isArray(value) || (!opts.allowEmpty && value.length === 0)) {
      this.problem(path, `${describe(value)} is not allowed: use a list of port numbers (1..65535)${opts.allowEmpty ? "" : ", at least one"}`);
      return [];
    }
    return value.map((p, i) => this.int(p, `${path}[${i}]`, 1, 65535));
  }

  stringList(value: unknown, path: string): string[] {
    if (!Array.isArray(value)) {
      this.problem(path, `${describe(value)} is not allowed: use a list of strings`);
      return [];
    }
    return value.map((s, i) => this.string(s, `${path}[${i}]`));
  }
}

export function describe(value: unknown): string {
  if (value === undefined) return "a missing value";
  if (typeof value === "string") return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value);
  if (Array.isArray(value)) return "a list";
  if (value === null) return "null";
  if (typeof value === "object") return "an object";
  // What is left of a JSON value is a number or a boolean.
  return typeof value === "number" || typeof value === "boolean" ? String(value) : typeof value;
}
