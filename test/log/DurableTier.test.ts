/**
 * The durable tier's takeover of a topic's stream (DurableTier.ts `retryWhileLocked`), over every
 * log implementation with the in-process disk: while another process (a head stalled past its
 * lease) holds the stream, the topic's ACK 2 is refused, never given; once it lets go, the writer
 * takes the stream and level 2 moves.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Scope } from "effect"
import { persistTopic, streamOf } from "../../src/layers/log/durable/DurableOrder.js"
import { retryWhileLocked } from "../../src/layers/log/durable/DurableTier.js"
import { makeMemoryDisk } from "../../src/layers/log/durable/SegmentsMemory.js"
import * as SegmentsMemoryLayers from "../../src/layers/log/durable/SegmentsMemory.js"
import { durableLayers, marksOf, persistedTopic } from "../fixtures/durable-marks.js"
import { appendSimple, drain, implementations } from "../fixtures/log-harness.js"

for (const impl of implementations) {
  describe(`durable tier takeover: ${impl.label}`, () => {
    it.scopedLive("a stream held by a live process is taken once it lets go; meanwhile ACK 2 is refused, never given", () =>
      Effect.gen(function*() {
        const cluster = yield* impl.make()
        const { appender, sequencer, topic } = yield* persistedTopic(cluster)
        const disk = makeMemoryDisk()
        const marks = yield* marksOf(cluster, 40)
        // The old head, stalled past its lease: alive, holding the stream.
        const oldHead = yield* Scope.make()
        yield* Effect.addFinalizer(() => Scope.close(oldHead, Exit.void))
        yield* (yield* SegmentsMemoryLayers.makeMemory(disk)).open(streamOf("d")).pipe(Scope.extend(oldHead))

        yield* Effect.forkScoped(
          persistTopic(topic, marks).pipe(retryWhileLocked("d"), Effect.provide(durableLayers(disk, cluster)))
        )
        yield* appendSimple(appender, "d", 7, 1, 0)
        yield* drain(sequencer)
        const watch = yield* cluster.acks.watch("d", 7, 1)
        for (let n = 0; n < 5_000 && watch.durableFailure() === undefined; n++) yield* Effect.sleep(1)
        expect(watch.durableFailure()).toBe("stopped")
        expect(yield* cluster.acks.sessionAcks("d", 7, 1)).toMatchObject({ ordered: 1, replicated: 0 })

        // The old head exits: its lock goes, and the writer takes the stream on its next attempt.
        yield* Scope.close(oldHead, Exit.void)
        expect(yield* cluster.acks.awaitAcked("d", 7, 1, 0, { timeoutMs: 10_000, level: 2 })).toMatchObject({
          replicated: 1
        })
        expect(watch.durableFailure()).toBeUndefined()
      }))
  })
}
