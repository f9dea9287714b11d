/**
 * The pure half of the gate check: the expected gate read from buildInstallScript, the kernel's gate read from
 * `nft -j list table`, and their comparison. The fixture is real nft 1.0.6 output for the gate below with one
 * IPv4 and one IPv6 grant and one exempted local service (test/fixtures/nft/gate-listing.json, written by
 * test/fixtures/nft/make.sh).
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { findGateProblem, outlineOfInstallScript, shapeOfListing, type GateShape } from "../../server/firewalls/nftables/gate-shape.js";
import { isGateEvent } from "../../server/firewalls/nftables/nft-monitor.js";
import { buildInstallScript } from "../../server/firewalls/nftables/ruleset.js";
import type { GateSpec } from "../../src/ports.js";

const GATE: GateSpec = { protectedPorts: [2222, 22], knockRange: { min: 10000, max: 59999 }, exemptServices: [{ proto: "udp", port: 51820 }] };
const LISTING = readFileSync(new URL("../fixtures/nft/gate-listing.json", import.meta.url), "utf8");

type Doc = { nftables: Record<string, Record<string, unknown>>[] };

/** The fixture with one edit applied to its parsed JSON. */
function edited(edit: (items: Doc["nftables"]) => Doc["nftables"]): string {
  const doc = JSON.parse(LISTING) as Doc;
  return JSON.stringify({ nftables: edit(doc.nftables) });
}

function actual(json: string = LISTING): GateShape | undefined {
  return shapeOfListing(json, "tknock");
}

const outline = (): GateShape => outlineOfInstallScript(buildInstallScript("tknock", GATE));
const snapshot = (): GateShape => actual() as GateShape;

describe("gate shape", () => {
  it("when the script is read then its sets, chain, rule count and the protected ports are the expectation", () => {
    const o = outline();
    expect([...o.sets.keys()].sort()).toEqual(["grants4", "grants6", "heartbeat", "protected", "services"]);
    expect(o.sets.get("protected")).toEqual({ dynamic: false, elements: ["22", "2222"] });
    expect(o.sets.get("grants4")).toEqual({ dynamic: true });
    expect(o.chains.get("input")?.ruleCount).toBe(8);
    const noRange = outlineOfInstallScript(buildInstallScript("tknock", { ...GATE, knockRange: undefined }));
    expect(noRange.chains.get("input")?.ruleCount).toBe(6); // no range: neither its drop nor its socket rule
  });

  it("when the kernel holds the installed gate with grants then it matches both the outline and itself", () => {
    expect(findGateProblem(outline(), actual())).toBeUndefined();
    expect(findGateProblem(snapshot(), actual())).toBeUndefined();
  });

  it("when nft lists no table (empty output or another table) then the problem is the table missing", () => {
    expect(findGateProblem(outline(), actual(""))).toEqual({ kind: "table-missing", message: "table missing" });
    expect(findGateProblem(outline(), shapeOfListing(LISTING, "other"))).toMatchObject({ kind: "table-missing" });
  });

  it("when the chain is gone then the problem names it", () => {
    const json = edited((items) => items.filter((i) => !i["chain"] && !i["rule"]));
    expect(findGateProblem(outline(), actual(json))).toEqual({ kind: "chain-missing", message: "chain input missing" });
  });

  it("when a set is gone then the problem names it", () => {
    const json = edited((items) => items.filter((i) => i["set"]?.["name"] !== "grants6"));
    expect(findGateProblem(snapshot(), actual(json))).toEqual({ kind: "set-missing", message: "set grants6 missing" });
  });

  it("when a rule is deleted or one is added then the rule count differs", () => {
    const fewer = edited((items) => items.filter((i) => i["rule"]?.["handle"] !== 20));
    expect(findGateProblem(outline(), actual(fewer))).toMatchObject({ kind: "rules-differ", message: "rules differ in chain input: 7 rules, expected 8" });
    const more = edited((items) => [...items, { rule: { family: "inet", table: "tknock", chain: "input", handle: 99, expr: [{ accept: null }] } }]);
    expect(findGateProblem(snapshot(), actual(more))).toMatchObject({ kind: "rules-differ" });
  });

  it("when a rule is replaced by another (same count) then the snapshot tells, though the outline cannot", () => {
    const json = edited((items) => items.map((i) => (i["rule"]?.["handle"] === 14 ? { rule: { ...i["rule"], expr: [{ accept: null }] } } : i)));
    expect(findGateProblem(outline(), actual(json))).toBeUndefined();
    expect(findGateProblem(snapshot(), actual(json))).toEqual({ kind: "rules-differ", message: "rules differ in chain input: rule 5 changed" });
  });

  it("when the chain's hook or policy is changed then the snapshot tells", () => {
    const json = edited((items) => items.map((i) => (i["chain"] ? { chain: { ...i["chain"], policy: "drop" } } : i)));
    expect(findGateProblem(snapshot(), actual(json))).toMatchObject({ kind: "rules-differ", message: "chain input hook, priority or policy changed" });
  });

  it("when a protected port is taken out of the set then the elements differ", () => {
    const json = edited((items) => items.map((i) => (i["set"]?.["name"] === "protected" ? { set: { ...i["set"], elem: [2222] } } : i)));
    expect(findGateProblem(outline(), actual(json))).toMatchObject({ kind: "elements-differ" });
  });

  it("when grants come and go or counters count then nothing differs", () => {
    const json = edited((items) =>
      items.map((i) => {
        if (i["set"]?.["name"] === "grants4") return { set: { ...i["set"], elem: [] } };
        if (i["rule"]?.["handle"] === 7)
          return { rule: { ...i["rule"], expr: [{ counter: { packets: 7, bytes: 420 } }, ...(i["rule"]["expr"] as unknown[])] } };
        return i;
      }),
    );
    const withCounter = edited((items) =>
      items.map((i) =>
        i["rule"]?.["handle"] === 7 ? { rule: { ...i["rule"], expr: [{ counter: { packets: 0, bytes: 0 } }, ...(i["rule"]["expr"] as unknown[])] } } : i,
      ),
    );
    expect(findGateProblem(actual(withCounter) as GateShape, actual(json))).toBeUndefined();
  });

  it("when the prefilter's watch set gets other ports (a new window) then nothing differs, though its absence still shows", () => {
    const gate: GateSpec = { ...GATE, nflogKnocks: { group: 5, min: 10000, max: 59999, watchOnly: true } };
    const script = buildInstallScript("tknock", gate) + "add element inet tknock starts { 10001, 10002 }\n";
    const expected = outlineOfInstallScript(script);
    const set = (name: string, type: string, handle: number, elem: (number | string)[]): Record<string, Record<string, unknown>> => ({
      set: {
        family: "inet",
        name,
        table: "tknock",
        type,
        handle,
        elem,
        ...(name === "watch" || name === "starts" || name === "instant" ? {} : { flags: ["timeout", "dynamic"] }),
      },
    });
    // The kernel fills the active sets from the packet path: their elements are never compared either.
    const withWatch = (elem: number[]): Doc["nftables"] => [
      ...(JSON.parse(LISTING) as Doc).nftables,
      set("starts", "inet_service", 40, elem),
      set("instant", "inet_service", 45, elem.slice(0, 1)),
      set(
        "watch",
        "inet_service",
        41,
        elem.map((p) => p + 1),
      ),
      set("active4", "ipv4_addr", 42, elem.length > 1 ? ["198.18.0.7"] : []),
      set("active6", "ipv6_addr", 43, []),
      set("overflow", "inet_proto", 44, elem.length > 1 ? ["tcp"] : []),
    ];
    // The fixture has no nflog rule: compare sets only, through an outline with the fixture's rule count.
    const sameRules: GateShape = { sets: expected.sets, chains: (actual() as GateShape).chains };
    expect(findGateProblem(sameRules, actual(JSON.stringify({ nftables: withWatch([10001, 10002]) })))).toBeUndefined();
    expect(findGateProblem(sameRules, actual(JSON.stringify({ nftables: withWatch([33333]) })))).toBeUndefined();
    expect(findGateProblem(sameRules, actual())).toEqual({ kind: "set-missing", message: "set starts missing" });
  });

  it("when someone adds a chain or a set to our table then it is reported as unexpected", () => {
    const json = edited((items) => [...items, { chain: { family: "inet", table: "tknock", name: "extra", handle: 50 } }]);
    expect(findGateProblem(snapshot(), actual(json))).toEqual({ kind: "unexpected-object", message: "unexpected chain extra in the table" });
  });

  it("when another table is listed alongside then it is ignored", () => {
    const json = edited((items) => [
      ...items,
      { chain: { family: "inet", table: "other", name: "input", handle: 1 } },
      { rule: { family: "inet", table: "other", chain: "input", handle: 2, expr: [] } },
    ]);
    expect(findGateProblem(snapshot(), actual(json))).toBeUndefined();
  });
});

describe("nft monitor lines", () => {
  it("when our table, chain, rules or the protected set change then it is an event; grants and other tables are not", () => {
    expect(isGateEvent("delete table inet tknock", "tknock")).toBe(true);
    expect(isGateEvent("delete rule inet tknock input handle 5", "tknock")).toBe(true);
    expect(isGateEvent("delete element inet tknock protected { 22 }", "tknock")).toBe(true);
    expect(isGateEvent("add element inet tknock grants4 { 198.18.0.2 . 2222 timeout 30s expires 30s }", "tknock")).toBe(false);
    expect(isGateEvent("delete element inet tknock grants6 { fd18:18::2 . 2222 }", "tknock")).toBe(false);
    expect(isGateEvent("delete table inet other", "tknock")).toBe(false);
    expect(isGateEvent("add element inet tknock watch { 10007, 20011 }", "tknock")).toBe(false);
    expect(isGateEvent("delete table ip tknock", "tknock")).toBe(false);
    expect(isGateEvent("# new generation 4 by process 8494 (nft)", "tknock")).toBe(false);
    expect(isGateEvent("# ERROR: We lost some netlink events!", "tknock")).toBe(true); // any lost one may have been ours
  });
});
