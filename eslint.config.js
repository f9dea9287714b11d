// @ts-check
// ESLint flat config. Why each rule set is on and each rule below is changed: docs/design.md, "Tooling".
import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["dist/", "node_modules/", "bench-results/", "coverage/"] },
  {
    // Every TypeScript file wherever it lives or moves: tsconfig.test.json says which files exist, and a file it
    // does not include is an error here, so a new folder cannot slip past the type-aware rules.
    files: ["**/*.ts", "**/*.mts"],
    extends: [js.configs.recommended, ...tseslint.configs.recommendedTypeChecked],
    languageOptions: {
      parserOptions: { project: "./tsconfig.test.json", tsconfigRootDir: import.meta.dirname },
    },
    linterOptions: { reportUnusedDisableDirectives: "error" },
    rules: {
      // Why the linter is here: a daemon must never drop a promise, nor hand one to a caller that ignores it.
      "@typescript-eslint/no-floating-promises": "error",
      "@typescript-eslint/no-misused-promises": "error",
      // `async` on a method that implements a Promise-returning port makes a throw a rejection; it needs no await.
      "@typescript-eslint/require-await": "off",
      // `const { secret: _s, ...rest } = x` is how a key is left out of a copy.
      "@typescript-eslint/no-unused-vars": ["error", { ignoreRestSiblings: true, argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      // Passing on what a catch received is not inventing a non-Error reason.
      "@typescript-eslint/prefer-promise-reject-errors": ["error", { allowThrowingUnknown: true }],
      // json-scan's Stop is a private control-flow signal, caught in the same function, never seen by a caller.
      "@typescript-eslint/only-throw-error": ["error", { allow: [{ from: "file", name: "Stop" }] }],
    },
  },
  {
    // The web client is type-checked with the DOM's types (web/tsconfig.json; the service worker with the
    // worker's, which clash with the DOM's), not with tsconfig.test.json's Node types.
    files: ["web/**/*.ts"],
    languageOptions: { parserOptions: { project: ["./web/tsconfig.json", "./web/tsconfig.sw.json"], tsconfigRootDir: import.meta.dirname } },
  },
  {
    // vitest's asymmetric matchers (expect.stringContaining, ...) are typed `any`, and tests read the JSON the
    // CLIs print; a template string in a test is compared by an assertion, so a wrong one fails the test.
    files: ["test/**/*.ts"],
    rules: {
      "@typescript-eslint/no-unsafe-assignment": "off",
      "@typescript-eslint/no-unsafe-member-access": "off",
      "@typescript-eslint/no-unsafe-return": "off",
      "@typescript-eslint/no-unsafe-argument": "off",
      "@typescript-eslint/no-unsafe-call": "off",
      "@typescript-eslint/restrict-template-expressions": "off",
    },
  },
  {
    files: ["**/*.js", "**/*.mjs"],
    extends: [js.configs.recommended],
    languageOptions: {
      globals: { console: "readonly", process: "readonly", URL: "readonly" },
    },
  },
);
