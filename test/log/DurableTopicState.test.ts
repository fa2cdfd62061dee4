/**
 * Named consumers and topic specs across a crash, over every log implementation and the
 * in-process disk: the head's state writer persists each RF 2 topic's spec and its consumers'
 * committed offsets; after the disk crashes, the topics to recover are found from the directory
 * alone, and each consumer is created again at the committed offset its last durable snapshot
 * held — a subscriber joining as it starts there. A commit made after that snapshot is lost (its
 * messages are delivered again: at-least-once); a committed offset past the recovered log's end
 * starts at that end; a consumer removed before the snapshot stays gone, one cut off stays cut
 * off. A data stream without a recorded spec, or a `--topic` contradicting the recorded one, is
 * a typed error.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Layer, Stream } from "effect"
import { persistTopic, streamOf } from "../../src/layers/log/durable/DurableOrder.js"
import {
  persistTopicState,
  restoreAllConsumers,
  stateStreamOf,
  type TopicState,
  topicsToRecover
} from "../../src/layers/log/durable/DurableTopicState.js"
import { crash, makeMemoryDisk, restart } from "../../src/layers/log/durable/SegmentsMemory.js"
import * as SegmentsMemoryLayers from "../../src/layers/log/durable/SegmentsMemory.js"
import { subscriberOver } from "../../src/layers/net/Subscriber.js"
import { Consumers } from "../../src/services/log/Consumers.js"
import { LogReader } from "../../src/services/log/LogReader.js"
import { Segments } from "../../src/services/log/Segments.js"
import { durableLayers, marksOf } from "../fixtures/durable-marks.js"
import { appendMessages, consumersOf, drain, implementations, smallConfig } from "../fixtures/log-harness.js"
import { recoverInto } from "../fixtures/recovery.js"

const spec = { name: "d", order: 5, ackLevel: 2, replicationFactor: 2 } as const

for (const impl of implementations) {
  describe(`topic state across a crash: ${impl.label}`, () => {
    it.scopedLive("consumers resume at their last persisted commit; the spec is found in the directory; newer commits are redelivered, an offset past the recovered end starts at the end", () =>
      Effect.gen(function*() {
        const disk = makeMemoryDisk()
        const first = yield* impl.make()
        const topic = yield* first.topics.create(spec)
        const a = yield* first.appender(0)
        const sequencer = yield* first.sequencer()
        const writer = yield* Effect.forkScoped(
          persistTopic(topic, yield* marksOf(first, 41)).pipe(Effect.provide(durableLayers(disk, first)))
        )
        const consumers = yield* consumersOf(first)
        const persisted: Array<TopicState> = []
        const stateWriter = yield* Effect.forkScoped(
          persistTopicState(topic, { everyMs: 5, onPersisted: (s) => void persisted.push(s) }).pipe(
            Effect.provide(Layer.merge(SegmentsMemoryLayers.layerMemory(disk), Layer.succeed(Consumers, consumers)))
          )
        )
        // 10 batches of 2 messages (batch g holds offsets 2g, 2g+1), on disk.
        for (let seq = 0; seq < 10; seq++) yield* appendMessages(a, "d", 7, 1, seq)
        yield* drain(sequencer)
        yield* first.acks.awaitAcked("d", 7, 1, 9, { timeoutMs: 5_000, level: 2 })
        // Two more batches ordered while the data writer is stopped: never on disk.
        yield* Fiber.interrupt(writer)
        for (let seq = 10; seq < 12; seq++) yield* appendMessages(a, "d", 7, 1, seq)
        yield* drain(sequencer)

        const billing = yield* consumers.join("d", "billing", { offset: 0, globalSeq: 0 })
        expect(billing.commit(6, 3)).toBe(true)
        const ahead = yield* consumers.join("d", "ahead", { offset: 0, globalSeq: 0 })
        expect(ahead.commit(24, 12)).toBe(true)
        yield* Effect.scoped(consumers.join("d", "gone", { offset: 0, globalSeq: 0 }))
        expect(yield* consumers.remove("d", "gone")).toBe(true)
        // Cut off (as a broker does to a consumer that held publishers too long): it comes back cut off.
        const paused = yield* consumers.join("d", "paused", { offset: 0, globalSeq: 0 })
        expect(paused.commit(4, 2)).toBe(true)
        paused.relinquish()
        const wanted = [
          { name: "billing", committed: 6, cutOff: false },
          { name: "ahead", committed: 24, cutOff: false },
          { name: "paused", committed: 4, cutOff: true }
        ]
        for (
          let i = 0;
          i < 1_000 && !persisted.some((s) => JSON.stringify(s.consumers) === JSON.stringify(wanted));
          i++
        ) yield* Effect.sleep(5)
        // The spec as the topic has it: its memory, writers and largest message too, so a recovered topic is made alike.
        const recorded = {
          ...spec,
          memory: smallConfig.topicMemoryBytes,
          writers: smallConfig.topicWriters,
          maxMessageBytes: smallConfig.maxBatchBytes - 16
        }
        expect(persisted.at(-1)).toEqual({ spec: recorded, consumers: wanted })
        // The crash comes before the writer's next snapshot: billing's next commit is lost.
        yield* Fiber.interrupt(stateWriter)
        expect(billing.commit(10, 5)).toBe(true)
        crash(disk)
        restart(disk)

        // The second life: the directory alone names the topic and its spec.
        const segments = SegmentsMemoryLayers.layerMemory(disk)
        expect(yield* topicsToRecover([]).pipe(Effect.provide(segments))).toEqual([recorded])
        const second = yield* impl.make()
        const again = yield* second.topics.create(recorded)
        const result = yield* recoverInto(second, again, segments)
        expect(result.messages).toBe(20)
        const consumers2 = yield* consumersOf(second)
        yield* restoreAllConsumers([again]).pipe(
          Effect.provide(
            Layer.mergeAll(segments, Layer.succeed(LogReader, second.reader), Layer.succeed(Consumers, consumers2))
          )
        )
        const listed = yield* consumers2.list("d")
        expect(listed.map((c) => [c.name, c.committed, c.member, c.cutOff])).toEqual([["billing", 6, 0, false], [
          "ahead",
          20,
          0,
          false
        ], ["paused", 4, 0, true]])

        // A member joining resumes at the persisted commit: offsets 6.. (6..9 delivered again), nothing skipped.
        const subscriber = subscriberOver(second.reader, consumers2)
        const subscription = yield* subscriber.subscribe("d", { consumer: "billing", autoCommit: "off" })
        expect(subscription.start).toBe(6)
        const offsets: Array<number> = []
        yield* Stream.runForEach(
          Stream.take(subscription.batches, 7),
          (batch) => Effect.sync(() => batch.forEach((m) => void offsets.push(m.offset)))
        )
        expect(offsets).toEqual(Array.from({ length: 14 }, (_, i) => 6 + i))
        // Committed past the recovered end: it starts at that end, where anything published again will be.
        const late = yield* subscriber.subscribe("d", { consumer: "ahead", autoCommit: "off" })
        expect(late.start).toBe(20)
      }))
  })
}

describe("topics to recover", () => {
  const record = (stream: string, bytes: Uint8Array) =>
    Effect.gen(function*() {
      const log = yield* (yield* Segments).open(stream)
      yield* log.awaitDurable((yield* log.append(bytes, 1_000)) + 1, 1_000)
    }).pipe(Effect.scoped)

  it.scoped("data without a recorded spec needs --topic; a flag contradicting the recorded spec is refused; flags and recorded topics merge", () =>
    Effect.gen(function*() {
      yield* record(streamOf("old"), new Uint8Array(72))
      const unknown = yield* Effect.flip(topicsToRecover([]))
      expect(unknown).toMatchObject({ _tag: "TopicSpecUnknown", topic: "old" })
      expect(unknown.message).toContain("--topic old:ORDER:ACK:2")
      const old = { name: "old", order: 5, ackLevel: 1, replicationFactor: 2 } as const
      expect(yield* topicsToRecover([old])).toEqual([old])

      const state: TopicState = { spec, consumers: [] }
      yield* record(stateStreamOf("d"), new TextEncoder().encode(JSON.stringify(state)))
      expect(yield* topicsToRecover([old])).toEqual([old, spec])
      const conflict = yield* Effect.flip(topicsToRecover([old, { ...spec, order: 2 }]))
      expect(conflict).toMatchObject({ _tag: "TopicSpecConflict", recorded: spec })

      yield* record(stateStreamOf("d"), new TextEncoder().encode("{\"spec\":1}"))
      expect(yield* Effect.flip(topicsToRecover([old]))).toMatchObject({
        _tag: "TopicStateCorrupt",
        stream: stateStreamOf("d"),
        record: 1
      })
    }).pipe(Effect.provide(SegmentsMemoryLayers.layerMemory(makeMemoryDisk()))))
})
