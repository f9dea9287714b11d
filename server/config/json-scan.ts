/**
 * A JSON checker run before JSON.parse on files that hold secrets. JSON.parse's messages quote the text around a
 * syntax error (which can be part of a secret) and it keeps the last of two equal keys without a word (a second
 * "alice" silently replaces the first). This scanner walks the text once (RFC 8259 grammar) and reports the first
 * problem by position only: line, column, what was expected, or which key appears twice. It never returns any
 * part of the text except keys that look like names.
 */

export type JsonProblem =
  | { readonly kind: "syntax"; readonly line: number; readonly column: number; readonly expected: string }
  | {
      readonly kind: "duplicate";
      /** The object holding the key, as a dotted path of name-like keys ("" for the top level). */
      readonly path: string;
      /** The key, or undefined when it does not look like a name (it is then not shown). */
      readonly key: string | undefined;
      readonly firstLine: number;
      readonly line: number;
      readonly column: number;
    };

/** Deeper nesting is refused: no tknock file needs it, and the scanner recurses. */
const MAX_DEPTH = 256;
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._@:-]{0,62}$/;

class Stop {
  constructor(readonly problem: JsonProblem) {}
}

/** The first problem in text, or undefined when it is one valid JSON value with no repeated key in any object. */
export function findJsonProblem(text: string): JsonProblem | undefined {
  let i = 0;

  const position = (at: number): { line: number; column: number } => {
    let line = 1;
    let lineStart = 0;
    for (let k = 0; k < at && k < text.length; k++) {
      if (text.charCodeAt(k) === 10) {
        line++;
        lineStart = k + 1;
      }
    }
    return { line, column: at - lineStart + 1 };
  };
  const fail = (expected: string, at = i): never => {
    throw new Stop({ kind: "syntax", ...position(at), expected: at >= text.length ? `${expected}, found the end of the file` : expected });
  };
  const skipSpace = (): void => {
    for (;;) {
      const c = text.charCodeAt(i);
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) i++;
      else return;
    }
  };
  const literal = (word: string): void => {
    if (text.startsWith(word, i)) i += word.length;
    else fail("a value (object, list, string, number, true, false or null)");
  };

  /** Returns the raw token (quotes included) of the string starting at i. */
  const string = (): string => {
    const start = i;
    i++; // opening quote
    for (;;) {
      if (i >= text.length) fail('a closing "');
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        i++;
        return text.slice(start, i);
      }
      if (c < 0x20) fail('a closing " before the end of the line (or an escaped control character)');
      if (c === 0x5c) {
        const e = text[i + 1];
        if (e === "u") {
          if (!/^[0-9A-Fa-f]{4}$/.test(text.slice(i + 2, i + 6))) fail("four hex digits after \\u", i + 2);
          i += 6;
        } else if (e !== undefined && '"\\/bfnrt'.includes(e)) {
          i += 2;
        } else {
          fail('a valid escape (\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)', i + 1);
        }
        continue;
      }
      i++;
    }
  };

  const digits = (): void => {
    const start = i;
    while (text.charCodeAt(i) >= 0x30 && text.charCodeAt(i) <= 0x39) i++;
    if (i === start) fail("a digit");
  };
  const number = (): void => {
    if (text[i] === "-") i++;
    if (text[i] === "0") i++;
    else digits();
    if (text[i] === ".") {
      i++;
      digits();
    }
    if (text[i] === "e" || text[i] === "E") {
      i++;
      if (text[i] === "+" || text[i] === "-") i++;
      digits();
    }
  };

  const value = (path: string, depth: number): void => {
    if (depth > MAX_DEPTH) fail(`at most ${MAX_DEPTH} levels of nesting`);
    skipSpace();
    const c = text[i];
    if (c === "{") object(path, depth);
    else if (c === "[") list(path, depth);
    else if (c === '"') string();
    else if (c === "-" || (c !== undefined && c >= "0" && c <= "9")) number();
    else if (c === "t") literal("true");
    else if (c === "f") literal("false");
    else if (c === "n") literal("null");
    else fail("a value (object, list, string, number, true, false or null)");
  };

  const list = (path: string, depth: number): void => {
    i++;
    skipSpace();
    if (text[i] === "]") {
      i++;
      return;
    }
    for (;;) {
      value(path, depth + 1);
      skipSpace();
      if (text[i] === ",") {
        i++;
        continue;
      }
      if (text[i] === "]") {
        i++;
        return;
      }
      fail('"," or "]"');
    }
  };

  const object = (path: string, depth: number): void => {
    i++;
    const seen = new Map<string, number>();
    skipSpace();
    if (text[i] === "}") {
      i++;
      return;
    }
    for (;;) {
      skipSpace();
      if (text[i] !== '"') fail('a key in double quotes (no trailing comma before "}")');
      const keyAt = i;
      // The raw token is valid JSON here, so JSON.parse decodes its escapes exactly as it will for the file.
      const key = JSON.parse(string()) as string;
      const first = seen.get(key);
      const shownKey = NAME_RE.test(key) ? key : undefined;
      if (first !== undefined) {
        throw new Stop({ kind: "duplicate", path, key: shownKey, firstLine: position(first).line, ...position(keyAt) });
      }
      seen.set(key, keyAt);
      skipSpace();
      if (text[i] !== ":") fail('":" after the key');
      i++;
      value(shownKey === undefined ? `${path}${path ? "." : ""}?` : `${path}${path ? "." : ""}${shownKey}`, depth + 1);
      skipSpace();
      if (text[i] === ",") {
        i++;
        continue;
      }
      if (text[i] === "}") {
        i++;
        return;
      }
      fail('"," or "}"');
    }
  };

  try {
    value("", 0);
    skipSpace();
    if (i < text.length) fail("nothing after the value");
    return undefined;
  } catch (e) {
    if (e instanceof Stop) return e.problem;
    throw e;
  }
}

/** One sentence for an error message; it quotes nothing from the text but name-like keys. */
export function describeJsonProblem(p: JsonProblem): string {
  if (p.kind === "syntax") return `is not valid JSON: line ${p.line}, column ${p.column}: expected ${p.expected}`;
  const where = p.path === "" ? "at the top level" : `in "${p.path}"`;
  const key = p.key === undefined ? "a key" : `key "${p.key}"`;
  return `has ${key} twice ${where} (lines ${p.firstLine} and ${p.line}; JSON keeps only the last): remove one of them`;
}
