/**
 * `cxlog publish`: publishes messages to brokers over TCP. With `--count` it publishes that
 * many stamped messages (see Audit.ts) as fast as the in-flight window allows; otherwise it
 * publishes each line of standard input as one message.
 */
import { Console, Effect, Schedule } from "effect"
import { createInterface } from "node:readline"
import * as PublisherLayers from "../layers/Publisher.js"
import { summarize } from "../Percentiles.js"
import { Publisher, type PublisherOptions } from "../services/Publisher.js"
import { AUDIT_HEADER_BYTES, stamp } from "./Audit.js"
import { report } from "./Report.js"

export interface PublishOptions {
  readonly publisher: PublisherOptions
  /** Stamped messages to publish; undefined reads lines from stdin. */
  readonly count?: number
  readonly messageBytes: number
  /** This publisher's index in the audit (stamped into each message). */
  readonly publisherIndex: number
  readonly flushTimeoutMs: number
  readonly reportEveryMs: number
  /** Offered load in MB/s (stamped mode); unset = as fast as the in-flight window allows. */
  readonly rateMBps?: number
}

const publishStamped = (count: number, options: PublishOptions) =>
  Effect.gen(function*() {
    const publisher = yield* Publisher
    const payload = new Uint8Array(Math.max(options.messageBytes, AUDIT_HEADER_BYTES))
    for (let i = AUDIT_HEADER_BYTES; i < payload.length; i++) payload[i] = (i * 31) & 0xff
    let seq = 0
    const started = performance.now()
    const perMs = options.rateMBps === undefined ? Infinity : (options.rateMBps * 1e6) / payload.length / 1000
    // Per message: stamp and copy into the open batch, no Effect; yield only when the window is full
    // or, under an offered load, when the schedule is ahead of the clock.
    const fill = Effect.sync(() => {
      const allowed = Math.min(count, perMs === Infinity ? count : Math.floor((performance.now() - started) * perMs) + 1)
      while (seq < allowed) {
        stamp(payload, options.publisherIndex, seq)
        const taken = publisher.tryPublish(payload)
        if (taken !== true) return taken
        seq++
      }
      return true as const
    })
    while (seq < count) {
      const outcome = yield* fill
      if (outcome === false) yield* publisher.writable
      else if (outcome !== true) return yield* Effect.fail(outcome)
      else if (seq < count) yield* Effect.sleep("1 millis")
    }
  })


export const publish = (options: PublishOptions) =>
  Effect.gen(function*() {
    const publisher = yield* Publisher
    const started = performance.now()
    yield* Effect.sync(() => report({ event: "progress", ...publisher.stats() })).pipe(
      Effect.repeat(Schedule.spaced(options.reportEveryMs)),
      Effect.forkScoped
    )
    if (options.count === undefined) {
      yield* Effect.promise(async () => {
        const encoder = new TextEncoder()
        for await (const line of createInterface({ input: process.stdin })) {
          await Effect.runPromise(Effect.either(publisher.publish(encoder.encode(line))))
        }
      })
    } else {
      yield* publishStamped(options.count, options)
    }
    yield* publisher.flush(options.flushTimeoutMs)
    const elapsedMs = performance.now() - started
    const latency = summarize(publisher.ackLatencies())
    const stats = publisher.stats()
    report({ event: "done", elapsedMs, ackLatencyP50Us: latency.p50, ackLatencyP99Us: latency.p99, ...stats })
    yield* Console.error(
      `publisher: ${stats.messages} messages in ${stats.batches} batches, ${(elapsedMs / 1000).toFixed(2)} s; ack latency p50 ${
        latency.p50.toFixed(0)
      } µs, p99 ${latency.p99.toFixed(0)} µs; resends ${stats.resends}, fences ${stats.fences}`
    )
    return { elapsedMs, latency, stats }
  }).pipe(Effect.scoped, Effect.provide(PublisherLayers.layer(options.publisher)))
