import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { describeJsonProblem, findJsonProblem } from "../../server/config/json-scan.js";

const SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";

function parses(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

/** True when some run of 6 characters of the secret appears in the message. */
function quotesSecret(message: string, secret: string): boolean {
  for (let i = 0; i + 6 <= secret.length; i++) if (message.includes(secret.slice(i, i + 6))) return true;
  return false;
}

describe("findJsonProblem", () => {
  it("when the text is any JSON that JSON.stringify writes then there is no problem", () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        expect(findJsonProblem(JSON.stringify(v, null, 2))).toBeUndefined();
      }),
    );
  });

  it("when any text is scanned then it reports a syntax problem exactly when JSON.parse throws", () => {
    const pieces = fc.constantFrom("{", "}", "[", "]", ",", ":", '"a"', '"b"', '"\\u00', "1", "-", ".5", "e3", "true", "nul", " ", "\n", '"x\\q"', "0", "01");
    const texts = fc.oneof(
      fc.string(),
      fc.array(pieces, { maxLength: 12 }).map((p) => p.join("")),
      fc.json().map((j) => j.slice(0, -1)),
    );
    fc.assert(
      fc.property(texts, (text) => {
        const p = findJsonProblem(text);
        expect(p?.kind === "syntax").toBe(!parses(text));
      }),
      { numRuns: 3000 },
    );
  });

  it("when a syntax error sits next to a secret then the problem gives its line and column and the message quotes none of the secret", () => {
    const text = `{\n  "version": 1,\n  "clients": {\n    "alice": { "secret": "${SECRET}" "knocks": 4 }\n  }\n}\n`;
    const p = findJsonProblem(text);
    expect(p).toMatchObject({ kind: "syntax", line: 4 });
    const column = text.split("\n")[3]?.indexOf('"knocks"');
    expect(p?.kind === "syntax" && p.column).toBe((column ?? 0) + 1);
    // JSON.parse's own message is what used to be shown: it quotes the text around the error.
    expect(() => JSON.parse(text)).toThrow();
    expect(quotesSecret(describeJsonProblem(p!), SECRET)).toBe(false);
  });

  it("when a secret string is cut or malformed anywhere then the message never quotes six characters of it", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 80 }), fc.constantFrom("", "x", "\u0001", '"', "\\", ",", "}"), (cut, junk) => {
        const whole = `{"clients":{"alice":{"secret":"${SECRET}","knocks":4}}}`;
        const text = whole.slice(0, cut) + junk + whole.slice(cut + 1);
        const p = findJsonProblem(text);
        if (p !== undefined) expect(quotesSecret(describeJsonProblem(p), SECRET)).toBe(false);
      }),
    );
  });

  it("when an object has a key twice then it names the key, its object and both lines", () => {
    const text = '{\n  "version": 1,\n  "clients": {\n    "alice": {},\n    "bob": {},\n    "alice": {}\n  }\n}';
    expect(parses(text)).toBe(true); // JSON.parse would silently keep the second alice
    const p = findJsonProblem(text);
    expect(p).toEqual({ kind: "duplicate", path: "clients", key: "alice", firstLine: 4, line: 6, column: 5 });
    expect(describeJsonProblem(p!)).toContain('"alice" twice in "clients" (lines 4 and 6');
  });

  it("when two keys differ only by a JSON escape then they are the same key, as JSON.parse reads them", () => {
    expect(findJsonProblem('{"clients":{"alice":1,"\\u0061lice":2}}')).toMatchObject({ kind: "duplicate", key: "alice" });
  });

  it("when the repeated key is not name-like then the message does not show it", () => {
    const p = findJsonProblem(`{"${SECRET}=":1,"${SECRET}=":2}`);
    expect(p).toMatchObject({ kind: "duplicate", key: undefined });
    expect(quotesSecret(describeJsonProblem(p!), SECRET)).toBe(false);
  });

  it("when equal keys sit in different objects then that is not a duplicate", () => {
    expect(findJsonProblem('{"a":{"secret":"A"},"b":{"secret":"B"},"c":[{"k":1},{"k":2}]}')).toBeUndefined();
  });

  it("when nesting is absurdly deep then it is a problem, not a stack overflow", () => {
    expect(findJsonProblem("[".repeat(100_000))).toMatchObject({ kind: "syntax" });
  });
});
