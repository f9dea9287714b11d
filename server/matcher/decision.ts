/** What the matcher makes of one knock; the daemon acts on it (persist, then open; record refusals). */

export type RefuseReason = "replay" | "skew" | "lockout";

/**
 * What one knock did. onKnock returns exactly one; when a knock has several outcomes the most important wins:
 * open / refuse  >  bruteforce  >  reset  >  progress  >  ignored.
 * A brute-force report that an open/refuse outranks stays pending and replaces the source's next lesser
 * decision, so every crossing of the threshold is reported exactly once (the ban itself applies at once).
 */
export type Decision =
  /** Outside every knock range, a retransmission, a malformed time, or a knock that neither starts nor continues anything. */
  | { readonly kind: "ignored" }
  /** Started or continued at least one sequence. */
  | { readonly kind: "progress"; readonly src: string }
  /**
   * The source was part-way through sequences, this knock continued none, and it was one wrong knock too many for
   * every one of them: nothing is left in progress (a failed attempt). A wrong knock that some sequence survives
   * (toleratedWrongKnocks) is "ignored", or "progress" if it starts one; it counts as a failure all the same.
   */
  | { readonly kind: "reset"; readonly src: string }
  /** Accepted: the matcher has already set the client's last accepted step; persist it, then open. */
  | {
      readonly kind: "open";
      readonly client: string;
      readonly step: number;
      readonly src: string;
      readonly ports: number[];
      readonly open: readonly number[];
    }
  | {
      readonly kind: "refuse";
      readonly reason: RefuseReason;
      readonly client: string;
      readonly step: number;
      readonly src: string;
      readonly ports: number[];
      /** skew only: x - T in windows; positive = the client's clock is ahead. */
      readonly offsetWindows?: number;
    }
  /** More than maxFailuresPerMinute failed sequences from one source in a minute; reported once per minute. */
  | { readonly kind: "bruteforce"; readonly src: string; readonly failures: number; readonly banned: boolean };

export type DecisionKind = Decision["kind"];
