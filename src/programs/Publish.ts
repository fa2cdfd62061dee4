/**
 * `cxlog publish`: publishes messages to brokers over TCP. With `--count` it publishes that
 * many stamped messages (see Audit.ts) as fast as the in-flight window allows; otherwise it
 * publishes each line of standard input as one message. A line the publisher refuses (too
 * large for a batch, or a broker refused the session) stops the command: the lines before it
 * are flushed, none after it is sent (a skipped line would change the stream's order), and
 * the command fails naming the line. `message` (a key, headers) goes with every message.
 */
import { Console, Data, Effect, Schedule, Stream } from "effect"
import { createInterface } from "node:readline"
import * as PublisherLayers from "../layers/net/Publisher.js"
import { quantiles, summarize } from "../Percentiles.js"
import { type MessageOptions, type PublishAckTimeout, Publisher, type PublisherOptions, type PublishError } from "../services/net/Publisher.js"
import { AUDIT_HEADER_BYTES, stamp } from "./Audit.js"
import { report as reportToParent, type RoleEvent } from "./Report.js"

export interface PublishOptions {
  readonly publisher: PublisherOptions
  /** Stamped messages to publish; undefined publishes lines (of `lines`, default stdin). */
  readonly count?: number
  /** The lines to publish when `count` is unset; default standard input. */
  readonly lines?: AsyncIterable<string>
  readonly messageBytes: number
  /** This publisher's index in the audit (stamped into each message). */
  readonly publisherIndex: number
  readonly flushTimeoutMs: number
  readonly reportEveryMs: number
  /** Where progress and done events go; default the orchestrator's IPC channel, if any. */
  readonly report?: (event: RoleEvent) => void
  /** Offered load in MB/s (stamped mode); unset = as fast as the in-flight window allows. */
  readonly rateMBps?: number
  /** A key and headers every message carries. */
  readonly message?: MessageOptions
}

const publishStamped = (count: number, options: PublishOptions) =>
  Effect.gen(function*() {
    const publisher = yield* Publisher
    const payload = new Uint8Array(Math.max(options.messageBytes, AUDIT_HEADER_BYTES))
    for (let i = AUDIT_HEADER_BYTES; i < payload.length; i++) payload[i] = (i * 31) & 0xff
    let seq = 0
    const started = performance.now()
    const perMs = options.rateMBps === undefined ? Infinity : (options.rateMBps * 1e6) / payload.length / 1000
    // Per message: stamp and copy into the open batch, no Effect. `true`: every message due is published.
    const publishDue = (): boolean | PublishError => {
      const allowed = Math.min(count, perMs === Infinity ? count : Math.floor((performance.now() - started) * perMs) + 1)
      while (seq < allowed) {
        stamp(payload, options.publisherIndex, seq)
        const taken = publisher.tryPublish(payload, options.message)
        if (taken !== true) return taken
        seq++
      }
      return true
    }
    // Under an offered load, a plain timer paces the messages (every 1 ms, or when the next one is
    // due if that is later): the fiber only wakes when the window is full, on an error, or at the
    // end (an Effect.sleep per tick cost about twice the CPU of the timer's own wake-up).
    const paced = Effect.async<boolean | PublishError>((resume) => {
      let timer: ReturnType<typeof setTimeout> | undefined
      const tick = () => {
        // Outside any fiber here: a throw must become this effect's defect, not an uncaught exception.
        let outcome: boolean | PublishError
        try {
          outcome = publishDue()
        } catch (defect) {
          return resume(Effect.die(defect))
        }
        if (outcome !== true || seq >= count) return resume(Effect.succeed(outcome))
        timer = setTimeout(tick, Math.max(1, Math.ceil(seq / perMs - (performance.now() - started))))
      }
      tick()
      return Effect.sync(() => clearTimeout(timer))
    })
    const fill = perMs === Infinity ? Effect.sync(publishDue) : paced
    while (seq < count) {
      const outcome = yield* fill
      if (outcome === false) yield* publisher.writable
      else if (outcome !== true) return yield* Effect.fail(outcome)
    }
  })

/** An input line the publisher refused; the lines before it were published, none after it. */
export class LineNotPublished extends Data.TaggedError("LineNotPublished")<{
  /** 1-based line number. */
  readonly line: number
  readonly bytes: number
  readonly cause: PublishError | PublishAckTimeout
}> {
  override get message() {
    return `line ${this.line} (${this.bytes} bytes) was not published: ${this.cause.message}; the ${this.line - 1} lines before it were, none after it`
  }
}

export class InputUnreadable extends Data.TaggedError("InputUnreadable")<{ readonly reason: string }> {
  override get message() {
    return `reading the lines to publish failed: ${this.reason}`
  }
}

const publishLines = (lines: AsyncIterable<string>, message: MessageOptions | undefined) =>
  Effect.gen(function*() {
    const publisher = yield* Publisher
    const encoder = new TextEncoder()
    let line = 0
    return yield* Stream.fromAsyncIterable(lines, (error) => new InputUnreadable({ reason: String(error) })).pipe(
      Stream.runForEach((text) => {
        line++
        const payload = encoder.encode(text)
        return Effect.mapError(publisher.publish(payload, message), (cause) => new LineNotPublished({ line, bytes: payload.length, cause }))
      }),
      Effect.either
    )
  })

export const publish = (options: PublishOptions) =>
  Effect.gen(function*() {
    const publisher = yield* Publisher
    const report = options.report ?? reportToParent
    const started = performance.now()
    // elapsedMs: the orchestrator's live rate uses the same clock as the summary's.
    yield* Effect.sync(() => report({ event: "progress", elapsedMs: performance.now() - started, ...publisher.stats() })).pipe(
      Effect.repeat(Schedule.spaced(options.reportEveryMs)),
      Effect.forkScoped
    )
    // Lines: a refused line ends the input, but what was taken before it is still flushed first.
    const input = options.count === undefined
      ? yield* publishLines(options.lines ?? createInterface({ input: process.stdin }), options.message)
      : yield* Effect.as(publishStamped(options.count, options), undefined)
    yield* publisher.flush(options.flushTimeoutMs)
    if (input?._tag === "Left") return yield* Effect.fail(input.left)
    const elapsedMs = performance.now() - started
    const latency = summarize(publisher.ackLatencies())
    const stats = publisher.stats()
    report({
      event: "done",
      elapsedMs,
      ackLatencyP50Us: latency.p50,
      ackLatencyP99Us: latency.p99,
      ackLatencyQuantilesUs: quantiles(publisher.ackLatencies()),
      ...stats
    })
    yield* Console.error(
      `publisher: ${stats.messages} messages in ${stats.batches} batches, ${(elapsedMs / 1000).toFixed(2)} s; ack latency p50 ${
        latency.p50.toFixed(0)
      } µs, p99 ${latency.p99.toFixed(0)} µs; resends ${stats.resends}, fences ${stats.fences}`
    )
    return { elapsedMs, latency, stats }
  }).pipe(Effect.scoped, Effect.provide(PublisherLayers.layer(options.publisher)))
