/** A Listener the test drives by hand: push() hands the daemon one observed knock, as a capture would. */
import type { Listener, ListenerStats, ObservedKnock } from "../../src/ports.js";

export class FakeListener implements Listener {
  readonly name = "fake";
  private onKnock: ((k: ObservedKnock) => void) | undefined;

  run(onKnock: (k: ObservedKnock) => void, signal: AbortSignal): Promise<void> {
    this.onKnock = onKnock;
    return new Promise((resolve) => {
      if (signal.aborted) resolve();
      signal.addEventListener("abort", () => resolve(), { once: true });
    });
  }

  get running(): boolean {
    return this.onKnock !== undefined;
  }

  push(k: ObservedKnock): void {
    if (this.onKnock === undefined) throw new Error("listener not running");
    this.onKnock(k);
  }

  stats(): ListenerStats {
    return { packets: 0, knocks: 0, malformed: 0, starts: 1, kernelDrops: 0 };
  }
}
