/**
 * The broker's side of a subscription over many rounds: each round waits until the kernel took
 * its writes, and that wait leaves nothing behind on the socket (a close listener per round once
 * piled up until Node warned of a leak).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Stream } from "effect"
import * as BrokerLayers from "../../src/layers/net/Broker.js"
import * as BrokerLogLayers from "../../src/layers/net/BrokerLogMemory.js"
import * as PublisherLayers from "../../src/layers/net/Publisher.js"
import { makeRemote } from "../../src/layers/net/SubscriberRemote.js"
import { publishTestMessages } from "../fixtures/net-audit.js"

const MESSAGES = 4000

describe("a subscription served over many rounds", () => {
  it.scopedLive(
    "reads everything with no listener piling up on the broker's socket (no MaxListenersExceededWarning)",
    () =>
      Effect.gen(function*() {
        const warnings: Array<string> = []
        const onWarning = (warning: Error) => warnings.push(`${warning.name}: ${warning.message}`)
        yield* Effect.acquireRelease(
          Effect.sync(() => process.on("warning", onWarning)),
          () => Effect.sync(() => process.off("warning", onWarning))
        )
        const log = yield* BrokerLogLayers.makeMemoryLog({ topics: [{ name: "t" }] })
        const broker = yield* BrokerLayers.make({ insecure: true }).pipe(
          Effect.provide(BrokerLogLayers.layerMemory(log, 0))
        )
        const brokers = [{ host: "127.0.0.1", port: broker.port }]
        const publisher = yield* PublisherLayers.make({
          brokers,
          topic: "t",
          batchBytes: 32_768,
          connectTimeoutMs: 2_000,
          ackTimeoutMs: 10_000
        })
        yield* publishTestMessages(publisher, 1, MESSAGES, 4_000)
        yield* publisher.flush(10_000)
        // Credit of 2 batches: a round per batch or two, each waiting for the kernel to take its writes.
        const subscription = yield* makeRemote({ brokers, credit: 2, bufferBytes: 65_536 }).subscribe("t")
        const read = yield* subscription.batches.pipe(
          Stream.mapConcat((batch) => Array.from(batch, (m) => m.offset)),
          Stream.take(MESSAGES),
          Stream.runCount
        )
        expect(read).toBe(MESSAGES)
        // A window, not a wait: warnings are emitted on a later tick; none may come.
        yield* Effect.sleep("20 millis")
        expect(warnings.filter((w) => w.startsWith("MaxListenersExceededWarning"))).toEqual([])
      }),
    60_000
  )
})
