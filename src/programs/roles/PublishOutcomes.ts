/**
 * Why a `cxlog publish` run did not end with all it was given acknowledged (Publish.ts): a line
 * refused or an input unreadable, lines or stamped messages sent but not acknowledged, each said
 * with the messages it names and whether any of them can be in the log.
 */
import { Data } from "effect"
import type { MessageRange, PublishAckTimeout, PublishError, PublisherStats } from "../../services/net/Publisher.js"

/** An input line the publisher refused; the lines before it were published, none after it. */
export class LineNotPublished extends Data.TaggedError("LineNotPublished")<{
  /** 1-based line number. */
  readonly line: number
  readonly bytes: number
  readonly cause: PublishError | PublishAckTimeout
}> {
  override get message() {
    return `line ${this.line} (${this.bytes} bytes) was not published: ${this.cause.message}; the ${
      this.line - 1
    } lines before it were, none after it`
  }
}

export class InputUnreadable extends Data.TaggedError("InputUnreadable")<{ readonly reason: string }> {
  override get message() {
    return `reading the lines to publish failed: ${this.reason}`
  }
}

/** Ranges shown in a message; the rest are counted. */
const SHOWN_RANGES = 8

/** 1-based numbers of the messages in `ranges` (numbered from 0): "3-4, 7 and 9-12", the first few and how many more. */
export const describeRanges = (ranges: ReadonlyArray<Pick<MessageRange, "from" | "count">>): string => {
  const shown = ranges.slice(0, SHOWN_RANGES).map((
    r
  ) => (r.count === 1 ? `${r.from + 1}` : `${r.from + 1}-${r.from + r.count}`))
  if (ranges.length > SHOWN_RANGES) {
    const more = ranges.slice(SHOWN_RANGES).reduce((n, r) => n + r.count, 0)
    return `${shown.join(", ")} and ${more} more (in ${ranges.length - SHOWN_RANGES} ranges)`
  }
  return shown.length === 1 ? shown[0]! : `${shown.slice(0, -1).join(", ")} and ${shown[shown.length - 1]}`
}

const countOf = (ranges: ReadonlyArray<MessageRange>) => ranges.reduce((n, r) => n + r.count, 0)

/**
 * Batches this publisher wrote to a broker that had accepted its session (resends included).
 * None: nothing it was handed can be in the log.
 */
export const batchesSent = (stats: PublisherStats) => stats.brokers.reduce((n, b) => n + b.sent, 0)

/** Why none of them is in the log, when no batch reached a broker. */
const NONE_IN_THE_LOG = "none is in the log: no batch reached a broker that accepted the session"

/** How many were acknowledged, in words, beside those a message names. */
const acknowledgedOf = (acknowledged: number, named: number, noun: string) =>
  acknowledged === 0
    ? "none was acknowledged"
    : named === 0
    ? `all ${acknowledged} ${noun} were acknowledged`
    : `the other ${acknowledged} ${noun} were acknowledged`

/**
 * Lines were sent but not all acknowledged (a broker died, none was reachable, the head is
 * gone): `unacknowledged` names them (from the publisher; numbered from 0), `line` is the first.
 * Each may or may not be in the log: not necessarily the last lines sent, nor all missing;
 * unless `batchesSent` is 0. `stopped` is why the input ended early, when it did (a refused
 * line), which the failed flush does not replace.
 */
export class LinesNotAcknowledged extends Data.TaggedError("LinesNotAcknowledged")<{
  /** 1-based number of the first line not acknowledged. */
  readonly line: number
  /** Lines handed to the publisher. */
  readonly sent: number
  /** Batches written to a broker that had accepted the session: with none, no line is in the log. */
  readonly batchesSent: number
  readonly unacknowledged: ReadonlyArray<MessageRange>
  readonly cause: PublishError | PublishAckTimeout
  readonly stopped?: LineNotPublished | InputUnreadable
}> {
  override get message() {
    // The refused line alone: what the lines before it came to is this failure's to say.
    const after = this.stopped === undefined
      ? ""
      : this.stopped._tag === "LineNotPublished"
      ? `; the input stopped at line ${this.stopped.line} (${this.stopped.bytes} bytes), refused: ${this.stopped.cause.message}`
      : `; the input stopped there: ${this.stopped.message}`
    // No broker ever accepted the publisher: nothing left this process, so the cause says it all.
    if (this.cause._tag === "BrokersUnreachable") {
      return `${this.cause.message}; none of the ${this.sent} lines reached a broker${after}`
    }
    const missing = countOf(this.unacknowledged)
    // Gathered before the topic's limit was known, then dropped unsent with the batch over it: the
    // flush ends once nothing is in flight, so what it leaves unacknowledged was never sent.
    if (this.cause._tag === "MessageTooLarge" && missing > 0) {
      return `${missing === 1 ? "line" : "lines"} ${describeRanges(this.unacknowledged)} ${
        missing === 1 ? "was" : "were"
      } not published (dropped unsent: a message over the topic's limit; ${
        acknowledgedOf(this.sent - missing, missing, "lines")
      }): ${this.cause.message}${after}`
    }
    if (this.batchesSent === 0 && missing > 0) {
      return `${missing === 1 ? "line" : "lines"} ${describeRanges(this.unacknowledged)} ${
        missing === 1 ? "was" : "were"
      } not published (${NONE_IN_THE_LOG}): ${this.cause.message}${after}`
    }
    const lines = missing === 0
      ? "the flush failed"
      : `${missing === 1 ? "line" : "lines"} ${describeRanges(this.unacknowledged)} ${
        missing === 1 ? "was" : "were"
      } sent but not acknowledged`
    return `${lines} (${missing === 0 ? "" : `${missing === 1 ? "it" : "each"} may or may not be in the log; `}${
      acknowledgedOf(this.sent - missing, missing, "lines")
    }): ${this.cause.message}${after}`
  }
}

/**
 * `--count` stamped messages not all acknowledged: sending message `sent + 1` failed (`during`
 * "send": its wait for window room ran out, or the publisher failed), or the final flush did
 * ("flush"). `unacknowledged` names the messages handed to the publisher but not acknowledged
 * (numbered from 0): not necessarily the last ones, and each may or may not be in the log;
 * unless `batchesSent` is 0.
 */
export class MessagesNotAcknowledged extends Data.TaggedError("MessagesNotAcknowledged")<{
  /** Messages asked for (`--count`). */
  readonly count: number
  /** Messages handed to the publisher. */
  readonly sent: number
  /** Batches written to a broker that had accepted the session: with none, no message is in the log. */
  readonly batchesSent: number
  readonly unacknowledged: ReadonlyArray<MessageRange>
  readonly during: "send" | "flush"
  readonly cause: PublishError | PublishAckTimeout
}> {
  override get message() {
    if (this.cause._tag === "BrokersUnreachable") {
      return `${this.cause.message}; none of the ${this.count} messages reached a broker`
    }
    const waiting = this.during === "flush"
      ? "the final flush"
      : this.cause._tag === "PublishAckTimeout"
      ? `waiting for window room to send message ${this.sent + 1}`
      : `sending message ${this.sent + 1}`
    const missing = countOf(this.unacknowledged)
    const named = this.count - this.sent + missing
    if (this.batchesSent === 0) {
      return `${named} of ${this.count} messages not acknowledged, and ${NONE_IN_THE_LOG}; ${waiting} failed: ${this.cause.message}`
    }
    const sentPart = missing === 0
      ? ""
      : `${missing === 1 ? "message" : "messages"} ${describeRanges(this.unacknowledged)} sent, ${
        missing === 1 ? "it" : "each"
      } may or may not be in the log; `
    const unsent = this.count > this.sent
      ? `${this.count - this.sent === 1 ? "message" : "messages"} ${
        describeRanges([{ from: this.sent, count: this.count - this.sent }])
      } never sent; `
      : ""
    return `${named} of ${this.count} messages not acknowledged: ${sentPart}${unsent}${
      acknowledgedOf(this.sent - missing, named, "messages")
    }; ${waiting} failed: ${this.cause.message}`
  }
}
