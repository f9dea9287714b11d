import { describe, expect, it } from "vitest";
import { LogLimiter } from "../../server/log-limit.js";

describe("log limiter", () => {
  it("when more lines than the cap arrive in a second then the extra are dropped and the next passing line counts them", () => {
    const l = new LogLimiter(3);
    const results = Array.from({ length: 10 }, (_, i) => l.admit(1000 + i));
    expect(results.filter((r) => r !== undefined)).toHaveLength(3);
    expect(l.admit(2000)).toEqual({ suppressedBefore: 7 });
    expect(l.admit(2001)).toEqual({ suppressedBefore: 0 });
  });
});
