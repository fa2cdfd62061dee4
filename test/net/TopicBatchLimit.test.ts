/**
 * A topic's largest batch is its own (half of a writer's lane: its memory / writers). A batch over
 * it ends that topic's session `oversized`, naming the limit and what raises it; the publisher's
 * other topics go on over the same connection, and a resend is never tried (it could not fit).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as BrokerLayers from "../../src/layers/net/Broker.js"
import * as BrokerLogLayers from "../../src/layers/net/BrokerLogMemory.js"
import * as PublisherLayers from "../../src/layers/net/Publisher.js"
import { audit, clean, testMessage } from "../fixtures/net-audit.js"

/** A memory log with `topics` and a topic `small` of 64 KiB (one writer), a broker over it, and a publisher of 128 KiB batches. */
const smallTopicAndPublisher = (topics: ReadonlyArray<{ readonly name: string }>) =>
  Effect.gen(function*() {
    const log = yield* BrokerLogLayers.makeMemoryLog({ topics })
    const small = yield* log.topics.create({
      name: "small",
      order: 5,
      ackLevel: 1,
      replicationFactor: 1,
      memory: 64 << 10,
      writers: 1
    })
    const broker = yield* BrokerLayers.make({ insecure: true }).pipe(Effect.provide(log.forBroker(0)))
    const p = yield* PublisherLayers.make({
      brokers: [{ host: "127.0.0.1", port: broker.port }],
      batchBytes: 128 << 10,
      ackTimeoutMs: 600_000
    })
    return { log, p, small }
  })

describe("a batch over its topic's limit", () => {
  it.scopedLive("holding a message over the topic's limit, published before its session said it: dropped unsent, naming the limit; the other topic goes on", () =>
    Effect.gen(function*() {
      const { log, p, small } = yield* smallTopicAndPublisher([{ name: "roomy" }])
      // A message the publisher takes (its batches go to 128 KiB) but the topic cannot: its batches stop near 32 KiB.
      // Published before the topic's session said its limits, it is dropped once it does, naming the topic's largest message.
      const message = testMessage(1, 0, small.maxMessageBytes! + 1024)
      const failure = yield* Effect.flip(p.publishAcked(message, { topic: "small" }))
      expect(failure).toMatchObject({ _tag: "MessageTooLarge", topic: "small", maxMessageBytes: small.maxMessageBytes })
      expect(failure.message).toContain(`over topic small's largest message of ${small.maxMessageBytes} bytes`)
      for (let i = 0; i < 20; i++) yield* p.publish(testMessage(2, i, 64), { topic: "roomy" })
      yield* p.flush(10_000).pipe(Effect.catchAll(() => Effect.void))
      expect(audit(log.ordered("roomy"), new Map([[2, 20]]))).toEqual({ messages: 20, ...clean })
      expect(log.ordered("small")).toHaveLength(0)
    }))

  it.scopedLive("small messages gathering past a topic's limit are sealed at it: every one is acknowledged, none refused", () =>
    Effect.gen(function*() {
      const { log, p, small } = yield* smallTopicAndPublisher([])
      // The publisher's batches (128 KiB) would gather past the topic's limit.
      expect(small.maxMessageBytes).toBeLessThan(64 << 10)
      for (let i = 0; i < 300; i++) yield* p.publish(testMessage(1, i, 1000), { topic: "small" })
      yield* p.flush(60_000)
      expect(audit(log.ordered("small"), new Map([[1, 300]]))).toEqual({ messages: 300, ...clean })
    }))
})
