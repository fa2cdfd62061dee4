/**
 * Topic patterns: what a subscriber names to read every topic that matches. A topic name's
 * dot-separated parts are its tokens (`orders.eu.paid` has three); in a pattern, `*` stands for
 * exactly one token and `>`, as the last token, for one or more. So `orders.*` matches
 * `orders.eu` but neither `orders` nor `orders.eu.paid`; `orders.>` matches both of the latter's
 * longer forms; `*.paid` matches `eu.paid`; `>` matches every topic. Any other token is literal.
 * A selection (`TopicSelection`) lists topic names and patterns; an entry with no `*` or `>`
 * token is a topic's name, which topic names never contain.
 */
import { Schema } from "effect"
import { TopicName } from "./Topics.js"

/** A selection names at most this many topics and patterns (a longer list is one of topics to publish, not to read). */
export const MAX_SELECTION = 1024

export class InvalidTopicPattern extends Schema.TaggedError<InvalidTopicPattern>()("InvalidTopicPattern", {
  pattern: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `invalid topic or pattern ${JSON.stringify(this.pattern)}: ${this.reason}`
  }
}

/** A token of a pattern: a literal one, `*` (one token) or `>` (the rest: one or more). */
type Token = { readonly literal: string } | "*" | ">"

/** A checked pattern, ready to match. */
export interface TopicPattern {
  readonly source: string
  readonly matches: (topic: string) => boolean
}

const LITERAL = /^[A-Za-z0-9_-]+$/

const isWildcard = (token: string) => token === "*" || token === ">"

/** Whether `entry` is a pattern (it has a `*` or `>` token) rather than a topic's name. */
export const isPattern = (entry: string): boolean => entry.split(".").some(isWildcard)

const matchTokens = (tokens: ReadonlyArray<Token>, parts: ReadonlyArray<string>): boolean => {
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i]!
    if (token === ">") return parts.length > i
    if (i >= parts.length) return false
    if (token !== "*" && token.literal !== parts[i]) return false
    if (token === "*" && parts[i]!.length === 0) return false
  }
  return tokens.length === parts.length
}

/** `source` as a pattern, or why it is none. */
export const parsePattern = (source: string): TopicPattern | InvalidTopicPattern => {
  const invalid = (reason: string) => new InvalidTopicPattern({ pattern: source, reason })
  if (source.length === 0 || source.length > 100) return invalid("a pattern is 1 to 100 characters")
  const parts = source.split(".")
  const tokens: Array<Token> = []
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!
    if (part === ">") {
      if (i !== parts.length - 1) return invalid("`>` stands for the rest of a name: it can only be the last token")
      tokens.push(">")
    } else if (part === "*") {
      tokens.push("*")
    } else if (part.length === 0) {
      return invalid("a token between dots is empty")
    } else if (!LITERAL.test(part)) {
      return invalid(
        part.includes("*") || part.includes(">")
          ? `\`${part}\`: a wildcard is a whole token (\`*\` or \`>\`), never part of one`
          : `\`${part}\`: a token is A-Z a-z 0-9 _ -`
      )
    } else {
      tokens.push({ literal: part })
    }
  }
  return { source, matches: (topic) => matchTokens(tokens, topic.split(".")) }
}

const isTopicName = (entry: string): boolean => Schema.is(TopicName)(entry)

/** A subscriber's selection, checked: the topics it names and the patterns it reads. */
export interface TopicSelection {
  readonly names: ReadonlyArray<string>
  readonly patterns: ReadonlyArray<TopicPattern>
  /** Whether a topic (one listed now or made later) is selected. */
  readonly selects: (topic: string) => boolean
}

/** `entries` (topic names and patterns) as a selection, or the first entry that is neither. */
export const parseSelection = (entries: ReadonlyArray<string>): TopicSelection | InvalidTopicPattern => {
  if (entries.length === 0) {
    return new InvalidTopicPattern({ pattern: "", reason: "name at least one topic or pattern" })
  }
  if (entries.length > MAX_SELECTION) {
    return new InvalidTopicPattern({
      pattern: entries[MAX_SELECTION]!,
      reason: `a subscription names at most ${MAX_SELECTION} topics and patterns (a pattern covers many)`
    })
  }
  const names: Array<string> = []
  const patterns: Array<TopicPattern> = []
  for (const entry of entries as ReadonlyArray<unknown>) {
    // A JavaScript caller's entry can be anything: one that is no string is named, not split.
    if (typeof entry !== "string") {
      return new InvalidTopicPattern({
        pattern: String(entry),
        reason: `a topic or pattern is a string, not ${entry === null ? "null" : typeof entry}`
      })
    }
    if (isPattern(entry)) {
      const pattern = parsePattern(entry)
      if (pattern instanceof InvalidTopicPattern) return pattern
      patterns.push(pattern)
    } else if (isTopicName(entry)) {
      if (!names.includes(entry)) names.push(entry)
    } else {
      return new InvalidTopicPattern({
        pattern: entry,
        reason: entry.includes("*") || entry.includes(">")
          ? "a wildcard is a whole token (`*` or `>`), never part of one"
          : "not a topic name (1 to 100 of A-Z a-z 0-9 . _ -) nor a pattern"
      })
    }
  }
  const named = new Set(names)
  return { names, patterns, selects: (topic) => named.has(topic) || patterns.some((p) => p.matches(topic)) }
}
