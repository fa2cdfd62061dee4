/**
 * One publisher, many topics: every topic's messages over the same connections (one per broker),
 * each topic its own session and batches, one window shared by all; a topic the log refuses fails
 * that topic alone. Brokers over TCP, the log in memory.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, ExecutionStrategy, Exit, Scope } from "effect"
import * as BrokerLayers from "../../src/layers/net/Broker.js"
import * as BrokerLogLayers from "../../src/layers/net/BrokerLogMemory.js"
import { CxlogPublisher } from "../../src/layers/net/CxlogPublisher.js"
import * as PublisherLayers from "../../src/layers/net/Publisher.js"
import type { BrokerShape } from "../../src/services/net/Broker.js"
import type { PublisherOptions, PublisherShape } from "../../src/services/net/Publisher.js"
import { audit, clean, testMessage } from "../fixtures/net-audit.js"

const topicName = (i: number) => `t.${i}`

/** `count` brokers over one memory log holding `topics` topics t.0 …, each broker in its own scope so a test can kill it. */
const cluster = (count: number, topics: number) =>
  Effect.gen(function*() {
    const log = yield* BrokerLogLayers.makeMemoryLog({
      topics: Array.from({ length: topics }, (_, i) => ({ name: topicName(i) })),
      holdTimeoutMs: 10_000
    })
    const parent = yield* Effect.scope
    const brokers: Array<{ server: BrokerShape; kill: Effect.Effect<void> }> = []
    for (let id = 0; id < count; id++) {
      const scope = yield* Scope.fork(parent, ExecutionStrategy.sequential)
      const server = yield* BrokerLayers.make({ insecure: true }).pipe(
        Effect.provide(log.forBroker(id)),
        Scope.extend(scope)
      )
      brokers.push({ server, kill: Scope.close(scope, Exit.void) })
    }
    const addresses = brokers.map((b) => ({ host: "127.0.0.1", port: b.server.port }))
    const publisher = (options: Partial<PublisherOptions> = {}) =>
      PublisherLayers.make({ brokers: addresses, ...options })
    return { log, brokers, addresses, publisher }
  })

/**
 * Publishes messages 0 … perTopic-1 to each of `topics` topics, round-robin over the topics
 * (message i of topic k is `testMessage(k, i)`), honouring backpressure; `midway` runs halfway.
 */
const publishRoundRobin = (
  p: PublisherShape,
  topics: number,
  perTopic: number,
  midway: Effect.Effect<void> = Effect.void
) =>
  Effect.gen(function*() {
    const options = Array.from({ length: topics }, (_, k) => ({ topic: topicName(k) }))
    for (let i = 0; i < perTopic; i++) {
      if (i === perTopic / 2) yield* midway
      for (let k = 0; k < topics; k++) {
        const message = testMessage(k, i, 8 + ((i * 37 + k) % 200))
        const taken = p.tryPublish(message, options[k])
        if (taken === true) continue
        if (taken !== false) return yield* Effect.fail(taken)
        yield* p.publish(message, options[k])
      }
    }
  })

describe("one publisher, many topics", () => {
  it.scopedLive("30 topics over 3 brokers, one connection each, a broker killed midway: every topic's audit is clean, each topic its own session", () =>
    Effect.gen(function*() {
      const topics = 30
      const perTopic = 400
      const { brokers, log, publisher } = yield* cluster(3, topics)
      // No default topic: every message names its own.
      const p = yield* publisher({ clientId: 5, batchBytes: 2048, maxInFlightBatches: 32 })
      yield* publishRoundRobin(p, topics, perTopic, brokers[1]!.kill)
      yield* p.flush(20_000)
      for (let k = 0; k < topics; k++) {
        const ordered = log.ordered(topicName(k))
        expect(audit(ordered, new Map([[k, perTopic]])), topicName(k)).toEqual({ messages: perTopic, ...clean })
        // The topic's own session, registered by the log for this publisher.
        expect(new Set(ordered.map((b) => b.clientId))).toEqual(new Set([5]))
      }
      const stats = p.stats()
      expect(stats.topics.map((t) => t.topic)).toEqual(Array.from({ length: topics }, (_, k) => topicName(k)))
      for (const t of stats.topics) {
        expect(t).toMatchObject({ messages: perTopic, ackedMessages: perTopic, inFlight: 0 })
        expect(t.sessionEpoch).toBeGreaterThan(0)
      }
      expect(stats).toMatchObject({ messages: topics * perTopic, ackedMessages: topics * perTopic, sessionEpoch: 0 })
      // What the killed broker carried was resent through the others at once, not replayed after a gap's fence.
      expect(stats.resends).toBeGreaterThan(0)
      expect(stats.fences).toBe(0)
      // One connection to each broker carried every topic.
      for (const b of [0, 2]) {
        expect(brokers[b]!.server.stats()).toMatchObject({ connections: 1 })
        expect(brokers[b]!.server.stats().sessions).toBeGreaterThanOrEqual(topics)
      }
      // Batches gathered messages while the shared window was full: far fewer batches than messages.
      expect(stats.batches).toBeLessThan((topics * perTopic) / 4)
      expect(p.unacknowledged()).toEqual([])
    }))

  it.scopedLive("the default topic, and any other a message names; a message naming none without a default, or a bad name, is PublishTopicInvalid", () =>
    Effect.gen(function*() {
      const { log, publisher } = yield* cluster(2, 2)
      const withDefault = yield* publisher({ topic: topicName(0), clientId: 6, batchBytes: 1024 })
      for (let i = 0; i < 50; i++) {
        yield* withDefault.publish(testMessage(0, i, 64))
        yield* withDefault.publish(testMessage(1, i, 64), { topic: topicName(1) })
      }
      const acked = yield* withDefault.publishAcked(testMessage(1, 50, 64), { topic: topicName(1), key: "k" })
      yield* withDefault.flush(10_000)
      expect(audit(log.ordered(topicName(0)), new Map([[0, 50]]))).toEqual({ messages: 50, ...clean })
      expect(audit(log.ordered(topicName(1)), new Map([[1, 51]]))).toEqual({ messages: 51, ...clean })
      expect(acked.offset).toBe(50)
      expect(withDefault.stats().sessionEpoch).toBe(withDefault.stats().topics[0]!.sessionEpoch)
      const without = yield* publisher({ clientId: 7 })
      expect(yield* Effect.flip(without.publish(testMessage(0, 0, 64)))).toMatchObject({
        _tag: "PublishTopicInvalid",
        topic: undefined
      })
      expect(without.tryPublish(testMessage(0, 0, 64), { topic: "no such name!" })).toMatchObject({
        _tag: "PublishTopicInvalid",
        topic: "no such name!"
      })
      // Rejected before anything was made: no topic, no session.
      expect(without.stats().topics).toEqual([])
    }))

  it.scopedLive("an unknown topic among several: its publishes fail with BrokerRejected naming it, the others are all acknowledged", () =>
    Effect.gen(function*() {
      const { log, publisher } = yield* cluster(2, 3)
      const p = yield* publisher({ clientId: 8, batchBytes: 1024 })
      const acked = yield* p.publishAcked(testMessage(0, 0, 64), { topic: topicName(0) })
      expect(acked.offset).toBe(0)
      const refused = yield* Effect.flip(p.publishAcked(testMessage(9, 0, 64), { topic: "nope" }))
      expect(refused).toMatchObject({ _tag: "BrokerRejected", code: "unknown-topic", topic: "nope" })
      expect(refused.message).toMatch(/refused the session of topic nope: unknown-topic/)
      // A call was told: the next message asks for the topic again (it may have been created since); the other topics go on.
      expect(p.tryPublish(testMessage(9, 1, 64), { topic: "nope" })).toBe(true)
      for (let i = 1; i < 100; i++) {
        for (const k of [0, 1, 2]) yield* p.publish(testMessage(k, k === 0 ? i : i - 1, 64), { topic: topicName(k) })
      }
      yield* p.publish(testMessage(1, 99, 64), { topic: topicName(1) })
      yield* p.publish(testMessage(2, 99, 64), { topic: topicName(2) })
      // A flush covers every topic: the refused one's message stays unacknowledged, and is named.
      expect(yield* Effect.flip(p.flush(10_000))).toMatchObject({ code: "unknown-topic", topic: "nope" })
      for (const k of [0, 1, 2]) {
        expect(audit(log.ordered(topicName(k)), new Map([[k, 100]]))).toEqual({ messages: 100, ...clean })
      }
      expect(p.unacknowledged()).toEqual([{ topic: "nope", from: 0, count: 2 }])
      expect(p.stats().topics.find((t) => t.topic === "nope")?.failure).toMatch(/unknown-topic/)
    }))

  it.scopedLive("a topic published to before it is created: each try after a call was told asks again, and once it exists its messages go in; the lost ones stay named", () =>
    Effect.gen(function*() {
      const { log, publisher } = yield* cluster(2, 1)
      const p = yield* publisher({ clientId: 11, batchBytes: 1024 })
      for (let i = 0; i < 20; i++) {
        expect(yield* Effect.flip(p.publishAcked(testMessage(5, i, 64), { topic: "late" }))).toMatchObject({
          _tag: "BrokerRejected",
          code: "unknown-topic",
          topic: "late"
        })
      }
      // Twenty tries, one lane: the publisher does not grow with them.
      expect(p.stats().topics.filter((t) => t.topic === "late")).toHaveLength(1)
      expect(yield* Effect.flip(p.flush(10_000))).toMatchObject({ code: "unknown-topic", topic: "late" })
      yield* p.flush(10_000)
      yield* log.topics.create({ name: "late", order: 5, ackLevel: 1, replicationFactor: 1 })
      for (let i = 0; i < 10; i++) yield* p.publishAcked(testMessage(5, i, 64), { topic: "late" })
      expect(audit(log.ordered("late"), new Map([[5, 10]]))).toEqual({ messages: 10, ...clean })
      // The twenty lost keep their numbers 0 … 19; the topic's own messages are numbered on.
      expect(p.unacknowledged()).toEqual([{ topic: "late", from: 0, count: 20 }])
      expect(p.stats().topics.filter((t) => t.topic === "late").map((t) => [t.messages, t.ackedMessages, t.failure]))
        .toEqual([[30, 10, undefined]])
    }))

  it.scopedLive("a message over its topic's limit published before the publisher knew it: its batch is dropped and named, the others go in, and the topic goes on", () =>
    Effect.gen(function*() {
      const { log, publisher } = yield* cluster(2, 0)
      yield* log.topics.create({ name: "small", order: 5, ackLevel: 1, replicationFactor: 1, maxMessageBytes: 4096 })
      const p = yield* publisher({ clientId: 12, batchBytes: 16 * 1024 })
      // Three messages gather before the topic's first session says its limit, the second over it.
      yield* p.publish(testMessage(6, 0, 64), { topic: "small" })
      yield* p.publish(testMessage(6, 1, 5000), { topic: "small" })
      yield* p.publish(testMessage(6, 2, 64), { topic: "small" })
      expect(yield* Effect.flip(p.flush(10_000))).toMatchObject({
        _tag: "MessageTooLarge",
        topic: "small",
        maxMessageBytes: 4096
      })
      // Until a topic's limit is known its batches stay small, so the large message went alone: only it is lost.
      expect(p.unacknowledged()).toEqual([{ topic: "small", from: 1, count: 1 }])
      // The topic goes on: later messages within its limit go in, one over it is refused at once.
      for (let i = 3; i < 13; i++) yield* p.publishAcked(testMessage(6, i, 64), { topic: "small" })
      expect(p.tryPublish(testMessage(6, 13, 5000), { topic: "small" })).toMatchObject({ _tag: "MessageTooLarge" })
      yield* p.flush(10_000)
      expect(log.ordered("small")).toHaveLength(12)
      expect(p.stats().topics.find((t) => t.topic === "small")?.failure).toBeUndefined()
    }))

  it.scopedLive("a topic deleted while published to: its publishes fail with BrokerRejected naming it; the others go on", () =>
    Effect.gen(function*() {
      const { log, publisher } = yield* cluster(2, 3)
      const p = yield* publisher({ clientId: 9, batchBytes: 1024 })
      yield* publishRoundRobin(p, 3, 50)
      yield* p.flush(10_000)
      yield* log.topics.delete(topicName(1))
      const failure = yield* Effect.flip(
        Effect.gen(function*() {
          for (let i = 50;; i++) {
            yield* p.publishAcked(testMessage(1, i, 64), { topic: topicName(1) })
            yield* Effect.sleep("5 millis")
          }
        })
      ).pipe(Effect.timeoutFail({ duration: 10_000, onTimeout: () => new Error("the deleted topic took publishes") }))
      // Whichever broker tells it (one that appended to the topic, or one its session comes back to), it was deleted.
      expect(failure).toMatchObject({ _tag: "BrokerRejected", topic: topicName(1), code: "topic-deleted" })
      for (let i = 50; i < 100; i++) {
        for (const k of [0, 2]) yield* p.publish(testMessage(k, i, 64), { topic: topicName(k) })
      }
      yield* Effect.flip(p.flush(10_000))
      for (const k of [0, 2]) {
        expect(audit(log.ordered(topicName(k)), new Map([[k, 100]]))).toEqual({ messages: 100, ...clean })
      }
    }))

  it.scopedLive("a topic deleted and created again: once a call is told, messages naming it go into the new topic, numbered on; one flush fails naming the loss", () =>
    Effect.gen(function*() {
      const { log, publisher } = yield* cluster(2, 3)
      const acked: Array<{ readonly topic: string; readonly from: number; readonly count: number }> = []
      const p = yield* publisher({ clientId: 9, batchBytes: 1024, onAcknowledged: (range) => acked.push(range) })
      yield* publishRoundRobin(p, 3, 50)
      yield* p.flush(10_000)
      yield* log.topics.delete(topicName(1))
      // Published to until the deletion fails one: that message goes with the old topic.
      let lost = 50
      const failure = yield* Effect.flip(
        Effect.gen(function*() {
          for (;; lost++) {
            yield* p.publishAcked(testMessage(1, lost, 64), { topic: topicName(1) })
            yield* Effect.sleep("5 millis")
          }
        })
      ).pipe(Effect.timeoutFail({ duration: 10_000, onTimeout: () => new Error("the deleted topic took publishes") }))
      expect(failure).toMatchObject({ _tag: "BrokerRejected", topic: topicName(1), code: "topic-deleted" })
      yield* log.topics.create({ name: topicName(1), order: 5, ackLevel: 1, replicationFactor: 1 })
      for (let i = 0; i < 20; i++) yield* p.publishAcked(testMessage(1, i, 64), { topic: topicName(1) })
      expect(audit(log.ordered(topicName(1)), new Map([[1, 20]]))).toEqual({ messages: 20, ...clean })
      // The lost message keeps its number; the new topic's are numbered on after it.
      expect(p.unacknowledged()).toEqual([{ topic: topicName(1), from: lost, count: 1 }])
      const numbered = acked.filter((r) => r.topic === topicName(1) && r.from >= lost).flatMap((r) =>
        Array.from({ length: r.count }, (_, i) => r.from + i)
      )
      expect(numbered).toEqual(Array.from({ length: 20 }, (_, i) => lost + 1 + i))
      const perName = p.stats().topics.filter((t) => t.topic === topicName(1))
      expect(perName.map((t) => [t.messages, t.ackedMessages, t.failure === undefined])).toEqual([
        [lost + 1, lost, false],
        [20, 20, true]
      ])
      expect(yield* Effect.flip(p.flush(10_000))).toMatchObject({ topic: topicName(1), code: "topic-deleted" })
      yield* p.flush(10_000)
      for (const k of [0, 2]) {
        expect(audit(log.ordered(topicName(k)), new Map([[k, 50]]))).toEqual({ messages: 50, ...clean })
      }
    }))

  it.scopedLive("the default topic deleted and created again: messages naming no topic go into the new one", () =>
    Effect.gen(function*() {
      const { log, publisher } = yield* cluster(1, 1)
      const p = yield* publisher({ clientId: 10, batchBytes: 1024, topic: topicName(0) })
      for (let i = 0; i < 10; i++) yield* p.publishAcked(testMessage(0, i, 64))
      yield* log.topics.delete(topicName(0))
      const failure = yield* Effect.flip(
        Effect.gen(function*() {
          for (;;) {
            yield* p.publishAcked(testMessage(0, 0, 64))
            yield* Effect.sleep("5 millis")
          }
        })
      ).pipe(Effect.timeoutFail({ duration: 10_000, onTimeout: () => new Error("the deleted topic took publishes") }))
      expect(failure).toMatchObject({ _tag: "BrokerRejected", topic: topicName(0), code: "topic-deleted" })
      yield* log.topics.create({ name: topicName(0), order: 5, ackLevel: 1, replicationFactor: 1 })
      for (let i = 0; i < 10; i++) yield* p.publishAcked(testMessage(0, i, 64))
      expect(audit(log.ordered(topicName(0)), new Map([[0, 10]]))).toEqual({ messages: 10, ...clean })
    }))

  it.scopedLive("the Promise facade: publish to any topic by name, opened without a default topic", () =>
    Effect.gen(function*() {
      const { addresses, log } = yield* cluster(2, 2)
      const publisher = yield* Effect.promise(() => CxlogPublisher.open({ brokers: addresses, insecure: true }))
      yield* Effect.addFinalizer(() => Effect.promise(() => publisher.close({ flush: false })))
      const acks = yield* Effect.promise(() =>
        Promise.all([
          publisher.publish(testMessage(0, 0, 64), { topic: topicName(0), acked: true }),
          publisher.publish(testMessage(1, 0, 64), { topic: topicName(1), acked: true }),
          publisher.publish(testMessage(1, 1, 64), { topic: topicName(1), acked: true })
        ])
      )
      expect(acks.map((a) => a.offset)).toEqual([0, 0, 1])
      yield* Effect.promise(() => publisher.flush(10_000))
      expect(audit(log.ordered(topicName(1)), new Map([[1, 2]]))).toEqual({ messages: 2, ...clean })
    }))
})
