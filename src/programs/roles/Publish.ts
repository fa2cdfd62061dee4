/**
 * `cxlog publish`: publishes messages to brokers over TCP. With `--count` it publishes that
 * many stamped messages (see Audit.ts) as fast as the in-flight window allows; otherwise it
 * publishes each line of standard input as one message. A line the publisher refuses (too
 * large for a batch, or a broker refused the session) stops the command: the lines before it
 * are flushed, none after it is sent (a skipped line would change the stream's order), and
 * the command fails naming the line. Lines sent but not acknowledged (a broker died, none
 * was reachable) fail it with `LinesNotAcknowledged`, naming those lines (the publisher's
 * `unacknowledged`) and keeping the refusal, if any. With `--count`, messages sent but not
 * acknowledged (the final flush or a wait for window room ran out of time, the publisher
 * failed) fail it with `MessagesNotAcknowledged`, naming what waited and which messages were
 * not acknowledged. Those are not always the last ones sent (at ACK level 0 each batch is done
 * when written to its own broker's socket), and any of them may be in the log already (a batch
 * ordered whose ACK never came; in orders 0/2/4 even one ordered after a missing one), so
 * neither message suggests they are all missing, unless no batch ever reached a broker that
 * accepted the session (every broker refused it, at authentication say): then none is in the
 * log, and both say so. `message` (a key, headers) goes with every message.
 */
import { Console, Effect, Schedule, Stream } from "effect"
import * as PublisherLayers from "../../layers/net/Publisher.js"
import { localPublisher, type RegionAccess } from "../../layers/Roles.js"
import {
  type MessageOptions,
  type MessageRange,
  type PublishAckTimeout,
  Publisher,
  type PublisherOptions,
  type PublishError,
  type PublisherStats
} from "../../services/net/Publisher.js"
import { quantiles, summarize } from "../report/Percentiles.js"
import { AUDIT_HEADER_BYTES, stamp } from "../run/Audit.js"
import { makeMessageClock, type MessageClock } from "../run/MessageClock.js"
import { stoppableLines } from "./InputLines.js"
import {
  batchesSent,
  InputUnreadable,
  LineNotPublished,
  LinesNotAcknowledged,
  MessagesNotAcknowledged
} from "./PublishOutcomes.js"
import { report as reportToParent, type RoleEvent } from "./Report.js"

export interface PublishOptions {
  readonly publisher: PublisherOptions
  /** Stamped messages to publish; undefined publishes lines (of `lines`, default stdin). */
  readonly count?: number
  /**
   * With `count`: this many stamped messages first (numbered before the `count`), all acknowledged
   * before the rest; progress and the figures of `done` cover only what follows (a warm process and
   * cluster), and a `warm` event says when it starts.
   */
  readonly warmupCount?: number
  /** The lines to publish when `count` is unset (text as UTF-8, bytes as they are); default standard input's (InputLines.ts). */
  readonly lines?: AsyncIterable<string | Uint8Array>
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
  /** Publish from this host into the region itself (a local publisher: no broker; `publisher.brokers` unused). */
  readonly local?: RegionAccess
  /**
   * Say each acknowledgement as it comes: an `acked` event with the batch's message range, sent
   * from the publisher's ACK callback. What a test that kills the publisher compares the log with.
   */
  readonly reportAcks?: boolean
}

/** The payload of each stamped message: `messageBytes`, or the stamp's size if that is more. */
const stampedBytes = (messageBytes: number) => Math.max(messageBytes, AUDIT_HEADER_BYTES)

/**
 * Why a publisher would refuse the stamped messages `options` describe (its options, or their
 * size), before it connects: `cxlog run` and `bench` ask before they start any process.
 */
export const stampedRefusal = (options: Pick<PublishOptions, "publisher" | "messageBytes" | "message">) =>
  PublisherLayers.refusal(options.publisher, stampedBytes(options.messageBytes), options.message)

/** Stamped messages `from` to `count - 1`, each timed by `clock` from the call that hands it over. */
const publishStamped = (from: number, count: number, options: PublishOptions, clock: MessageClock) =>
  Effect.gen(function*() {
    const publisher = yield* Publisher
    const payload = new Uint8Array(stampedBytes(options.messageBytes))
    for (let i = AUDIT_HEADER_BYTES; i < payload.length; i++) payload[i] = (i * 31) & 0xff
    let seq = from
    const started = performance.now()
    const perMs = options.rateMBps === undefined ? Infinity : (options.rateMBps * 1e6) / payload.length / 1000
    // Per message: stamp and copy into the open batch, no Effect. `true`: every message due is published.
    const publishDue = (): boolean | PublishError => {
      const now = performance.now()
      const allowed = Math.min(count, perMs === Infinity ? count : from + Math.floor((now - started) * perMs) + 1)
      while (seq < allowed) {
        stamp(payload, options.publisherIndex, seq)
        clock.published(seq, now)
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
        timer = setTimeout(tick, Math.max(1, Math.ceil((seq - from) / perMs - (performance.now() - started))))
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

/** Publishes each line, counting in `taken` those the publisher took; why the input stopped early if it did. */
const publishLines = (
  lines: AsyncIterable<string | Uint8Array>,
  message: MessageOptions | undefined,
  taken: { sent: number }
) =>
  Effect.gen(function*() {
    const publisher = yield* Publisher
    const encoder = new TextEncoder()
    let line = 0
    return yield* Stream.fromAsyncIterable(lines, (error) => new InputUnreadable({ reason: String(error) }))
      .pipe(
        Stream.runForEach((text) => {
          line++
          const payload = typeof text === "string" ? encoder.encode(text) : text
          return publisher.publish(payload, message).pipe(
            Effect.mapError((cause) => new LineNotPublished({ line, bytes: payload.length, cause })),
            Effect.tap(() => void taken.sent++)
          )
        }),
        Effect.either
      )
  })

/** A publisher's counts since `base` (the counts at the end of a warm-up). */
const countedSince = (stats: PublisherStats, base: PublisherStats | undefined): PublisherStats =>
  base === undefined ? stats : {
    ...stats,
    messages: stats.messages - base.messages,
    batches: stats.batches - base.batches,
    ackedBatches: stats.ackedBatches - base.ackedBatches,
    ackedMessages: stats.ackedMessages - base.ackedMessages
  }

/** The stamped warm-up (`warmupCount`), every message acknowledged; its publisher counts, or undefined without one. */
const warmUp = (options: PublishOptions, report: (event: RoleEvent) => void, clock: MessageClock) =>
  Effect.gen(function*() {
    const warmup = options.warmupCount ?? 0
    if (warmup === 0 || options.count === undefined) return undefined
    const publisher = yield* Publisher
    const notAcknowledged = (during: "send" | "flush") => (cause: PublishError | PublishAckTimeout) =>
      new MessagesNotAcknowledged({
        count: warmup,
        sent: publisher.stats().messages,
        batchesSent: batchesSent(publisher.stats()),
        unacknowledged: publisher.unacknowledged(),
        during,
        cause
      })
    const started = performance.now()
    yield* publishStamped(0, warmup, options, clock).pipe(Effect.mapError(notAcknowledged("send")))
    yield* publisher.flush(options.flushTimeoutMs).pipe(Effect.mapError(notAcknowledged("flush")))
    const base = publisher.stats()
    report({ event: "warm", elapsedMs: performance.now() - started, messages: base.ackedMessages })
    return base
  })

const publishing = (options: PublishOptions, clock: MessageClock) =>
  Effect.gen(function*() {
    const publisher = yield* Publisher
    const report = options.report ?? reportToParent
    const warm = yield* warmUp(options, report, clock)
    if (options.count !== undefined) clock.measure(warm?.messages ?? 0, options.count)
    const started = performance.now()
    const stats = () => countedSince(publisher.stats(), warm)
    // elapsedMs: the orchestrator's live rate uses the same clock as the summary's.
    yield* Effect.sync(() => report({ event: "progress", elapsedMs: performance.now() - started, ...stats() })).pipe(
      Effect.repeat(Schedule.spaced(options.reportEveryMs)),
      Effect.forkScoped
    )
    // Lines: a refused line ends the input, but what was taken before it is still flushed first.
    if (options.count === undefined) {
      const taken = { sent: 0 }
      // A line is one message, numbered as the publisher numbers them.
      const flushLines = (stopped: LineNotPublished | InputUnreadable | undefined) =>
        publisher.flush(options.flushTimeoutMs).pipe(
          Effect.mapError((cause) => {
            const unacknowledged = publisher.unacknowledged()
            return new LinesNotAcknowledged({
              line: (unacknowledged[0]?.from ?? taken.sent) + 1,
              sent: taken.sent,
              batchesSent: batchesSent(publisher.stats()),
              unacknowledged,
              cause,
              ...(stopped === undefined ? {} : { stopped })
            })
          })
        )
      const input = yield* publishLines(options.lines ?? stoppableLines(process.stdin), options.message, taken).pipe(
        // Stopped (SIGTERM, Ctrl-C) while it read: the lines it took are flushed still, within the flush
        // bound, and those not acknowledged said, exit 1, as at the input's end; they went unsaid, exit 0.
        Effect.onInterrupt(() =>
          flushLines(undefined).pipe(Effect.catchAll((failed) =>
            Effect.sync(() => {
              process.stderr.write(`cxlog publish: ${failed.message}\n`)
              process.exitCode = 1
            })
          ))
        )
      )
      const stopped = input._tag === "Left" ? input.left : undefined
      yield* flushLines(stopped)
      if (stopped !== undefined) return yield* Effect.fail(stopped)
    } else {
      const from = warm === undefined ? 0 : warm.messages
      const count = from + options.count
      const notAcknowledged = (during: "send" | "flush") => (cause: PublishError | PublishAckTimeout) => {
        return new MessagesNotAcknowledged({
          count,
          sent: publisher.stats().messages,
          batchesSent: batchesSent(publisher.stats()),
          unacknowledged: publisher.unacknowledged(),
          during,
          cause
        })
      }
      yield* publishStamped(from, count, options, clock).pipe(Effect.mapError(notAcknowledged("send")))
      yield* publisher.flush(options.flushTimeoutMs).pipe(Effect.mapError(notAcknowledged("flush")))
    }
    const elapsedMs = performance.now() - started
    report({ event: "acknowledged", elapsedMs })
    // Stamped messages: each one's, from its publish call; lines: each batch's, from its seal.
    const latencies = options.count === undefined ? publisher.ackLatencies(warm?.ackedBatches) : clock.latenciesUs()
    const latency = summarize(latencies)
    const counted = stats()
    report({
      event: "done",
      elapsedMs,
      startedAtMs: performance.timeOrigin + started,
      ackLatencyP50Us: latency.p50,
      ackLatencyP99Us: latency.p99,
      ackLatencyQuantilesUs: quantiles(latencies),
      ...counted
    })
    // No input (empty stdin, --count 0): no latency to give, rather than NaN.
    const ackLatency = latency.count === 0
      ? "no batch acknowledged"
      : `ack latency p50 ${latency.p50.toFixed(0)} µs, p99 ${latency.p99.toFixed(0)} µs`
    yield* Console.error(
      `publisher: ${counted.messages} messages in ${counted.batches} batches${
        warm === undefined ? "" : ` after a warm-up of ${warm.messages}`
      }, ${(elapsedMs / 1000).toFixed(2)} s; ${ackLatency}; resends ${counted.resends}, fences ${counted.fences}`
    )
    return { elapsedMs, latency, stats: counted }
  }).pipe(Effect.scoped)

/** The publisher `options` ask for: to brokers over TCP, or local (into the region itself); `clock` hears its ACKs (and the orchestrator, with `reportAcks`). */
const publisherLayer = (options: PublishOptions, clock: MessageClock) => {
  const report = options.report ?? reportToParent
  const onAcknowledged = options.reportAcks === true
    ? (range: MessageRange) => {
      clock.acknowledged(range)
      report({ event: "acked", from: range.from, count: range.count })
    }
    : clock.acknowledged
  const publisher = { ...options.publisher, onAcknowledged }
  if (options.local === undefined) return PublisherLayers.layer(publisher)
  const { brokers: _brokers, ...local } = publisher
  return localPublisher(options.local, local)
}

/** Publishes; stamped messages the publisher would refuse fail it before it connects (a usage mistake). */
export const publish = (options: PublishOptions) =>
  Effect.gen(function*() {
    const refused = options.count === undefined ? undefined : stampedRefusal(options)
    if (refused !== undefined) return yield* refused
    const clock = makeMessageClock()
    return yield* publishing(options, clock).pipe(Effect.provide(publisherLayer(options, clock)))
  })
