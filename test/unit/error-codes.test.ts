/**
 * docs/errors.md is the one table of error codes: this suite reads every source file the package ships and
 * fails when a code is thrown that the table lacks, when the table lists a code nothing throws any more, or when
 * a throw's exit code differs from the table's or is written as a bare number.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import ts from "typescript";
import { describe, expect, it } from "vitest";
import { createClientCli } from "../../client/cli.js";
import { createServerCli } from "../../server/cli.js";
import { runCli } from "../../src/cli-io.js";
import { ExitCode } from "../../src/errors.js";
import { memoryIo } from "../support/memory-io.js";

const ROOT = join(import.meta.dirname, "../..");
const SHIPPED = ["src", "client", "server"];
const CODE_RE = /^TKNOCK_[A-Z0-9_]+$/;

type Throw = { readonly where: string; readonly codes: readonly string[]; readonly exit: string | undefined };

function sourceFiles(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith(".ts") && !e.name.endsWith(".d.ts"))
    .map((e) => relative(ROOT, join(e.parentPath, e.name)));
}

/** The code literals an expression can evaluate to: a literal, or either side of a conditional. */
function codeLiterals(node: ts.Expression | undefined): string[] {
  if (node === undefined) return [];
  if (ts.isStringLiteralLike(node)) return CODE_RE.test(node.text) ? [node.text] : [];
  if (ts.isConditionalExpression(node)) return [...codeLiterals(node.whenTrue), ...codeLiterals(node.whenFalse)];
  if (ts.isParenthesizedExpression(node)) return codeLiterals(node.expression);
  return [];
}

function extendsTknockError(node: ts.Node): boolean {
  for (let n: ts.Node | undefined = node; n !== undefined; n = n.parent) {
    if (ts.isClassDeclaration(n)) return n.heritageClauses?.some((h) => h.types.some((t) => t.expression.getText() === "TknockError")) ?? false;
  }
  return false;
}

/** Every code string in the shipped sources (env lookups such as env["TKNOCK_HOME"] are not codes) and every throw site. */
function scanSources(): { codes: Map<string, string>; throws: Throw[] } {
  const codes = new Map<string, string>();
  const throws: Throw[] = [];
  for (const file of SHIPPED.flatMap(sourceFiles)) {
    const sf = ts.createSourceFile(file, readFileSync(join(ROOT, file), "utf8"), ts.ScriptTarget.Latest, true);
    const where = (n: ts.Node): string => `${file}:${sf.getLineAndCharacterOfPosition(n.getStart(sf)).line + 1}`;
    const visit = (n: ts.Node): void => {
      if (ts.isStringLiteralLike(n) && CODE_RE.test(n.text) && !(ts.isElementAccessExpression(n.parent) && n.parent.argumentExpression === n)) {
        if (!codes.has(n.text)) codes.set(n.text, where(n));
      }
      const isNew = ts.isNewExpression(n) && n.expression.getText(sf) === "TknockError";
      const isSuper = ts.isCallExpression(n) && n.expression.kind === ts.SyntaxKind.SuperKeyword && extendsTknockError(n);
      if (isNew || isSuper) {
        const args = n.arguments ?? ts.factory.createNodeArray();
        throws.push({ where: where(n), codes: codeLiterals(args[0]), exit: args[2]?.getText(sf) });
      }
      ts.forEachChild(n, visit);
    };
    visit(sf);
  }
  return { codes, throws };
}

/** The rows of docs/errors.md: codes with their exit code, and the exit codes with their names. */
function readTable(): { codes: Map<string, number>; exits: Map<number, string> } {
  const text = readFileSync(join(ROOT, "docs/errors.md"), "utf8");
  const codes = new Map<string, number>();
  const exits = new Map<number, string>();
  for (const line of text.split("\n")) {
    const code = /^\|\s*`(TKNOCK_[A-Z0-9_]+)`\s*\|\s*(\d+)\b/.exec(line);
    if (code) {
      expect(codes.has(code[1] as string), `${code[1]} is listed twice in docs/errors.md`).toBe(false);
      codes.set(code[1] as string, Number(code[2]));
    }
    const exit = /^\|\s*(\d+)\s*\|\s*`(\w+)`\s*\|/.exec(line);
    if (exit) exits.set(Number(exit[1]), exit[2] as string);
  }
  return { codes, exits };
}

const scanned = scanSources();
const table = readTable();

describe("the error code table (docs/errors.md)", () => {
  it("when a code appears in the sources then the table lists it", () => {
    const missing = [...scanned.codes].filter(([code]) => !table.codes.has(code)).map(([code, where]) => `${code} (${where})`);
    expect(missing).toEqual([]);
  });

  it("when the table lists a code then the sources still have it", () => {
    expect([...table.codes.keys()].filter((code) => !scanned.codes.has(code))).toEqual([]);
  });

  it("when an error is thrown then its exit code is named (ExitCode.x), never a bare number", () => {
    const bare = scanned.throws.filter((t) => t.exit !== undefined && /^\d+$/.test(t.exit)).map((t) => `${t.where}: ${t.exit}`);
    expect(bare).toEqual([]);
  });

  it("when an error is thrown with a literal code then its exit code is the table's", () => {
    const wrong: string[] = [];
    for (const t of scanned.throws) {
      // A computed exit code (a table of them in preflight.ts) is checked by that module's own tests.
      const name = t.exit === undefined ? "usage" : /^ExitCode\.(\w+)$/.exec(t.exit)?.[1];
      if (name === undefined) continue;
      const exit = ExitCode[name as keyof typeof ExitCode];
      for (const code of t.codes) {
        if (table.codes.get(code) !== exit) wrong.push(`${t.where}: ${code} exits ${exit} (${name}), the table says ${String(table.codes.get(code))}`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it("when the table lists the exit codes then it lists each ExitCode once, under its name", () => {
    expect(Object.fromEntries(table.exits)).toEqual(Object.fromEntries(Object.entries(ExitCode).map(([name, n]) => [n, name])));
  });

  it("when either CLI prints --help then it lists the system exit code", async () => {
    for (const create of [createClientCli, createServerCli]) {
      const { io, out } = memoryIo();
      expect(await runCli(create(io), ["--help"], io)).toBe(ExitCode.ok);
      expect(out.join("\n")).toMatch(new RegExp(`\\b${ExitCode.system}\\s+(OS|system)`));
    }
  });
});
