/**
 * Topic patterns as services/log/TopicPattern.ts and docs/topics.md define them: `*` is exactly one
 * token, `>` (last) one or more, any other token literal. The subscription tests read through
 * patterns over a few topics; here every edge of the matching is asserted, a name one token
 * longer or shorter than the pattern included, which those topics never are.
 */
import { describe, expect, it } from "@effect/vitest"
import { InvalidTopicPattern, parsePattern, parseSelection } from "../../src/services/log/TopicPattern.js"

const matching = (pattern: string, topics: ReadonlyArray<string>) => {
  const parsed = parsePattern(pattern)
  if (parsed instanceof InvalidTopicPattern) throw parsed
  return topics.filter(parsed.matches)
}

const TOPICS = ["orders", "orders.eu", "orders.us", "orders.eu.paid", "eu.paid", "paid", "x.eu.paid", "audit"]

describe("topic patterns", () => {
  it("`*` is exactly one token: a name one token shorter or longer is not matched", () => {
    expect(matching("orders.*", TOPICS)).toEqual(["orders.eu", "orders.us"])
    expect(matching("*.paid", TOPICS)).toEqual(["eu.paid"])
    expect(matching("orders.*.paid", TOPICS)).toEqual(["orders.eu.paid"])
    expect(matching("*", TOPICS)).toEqual(["orders", "paid", "audit"])
  })

  it("`>` is one or more tokens, never none", () => {
    expect(matching("orders.>", TOPICS)).toEqual(["orders.eu", "orders.us", "orders.eu.paid"])
    expect(matching(">", TOPICS)).toEqual(TOPICS)
    expect(matching("*.eu.>", TOPICS)).toEqual(["orders.eu.paid", "x.eu.paid"])
  })

  it("other tokens are literal, whole tokens", () => {
    expect(matching("orders.eu", TOPICS)).toEqual(["orders.eu"])
    expect(matching("order.*", TOPICS)).toEqual([])
    expect(matching("*.pai", TOPICS)).toEqual([])
  })

  it("a selection takes its names as they are and its patterns as above", () => {
    const selection = parseSelection(["audit", "orders.*"])
    if (selection instanceof InvalidTopicPattern) throw selection
    expect(selection.names).toEqual(["audit"])
    expect(TOPICS.filter(selection.selects)).toEqual(["orders.eu", "orders.us", "audit"])
  })
})
