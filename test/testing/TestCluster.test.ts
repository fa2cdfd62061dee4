/**
 * cxlog/testing's in-memory cluster runs the live engines: what an app's publisher publishes is
 * ordered by the cluster's sequencer before `flush` returns, every reader sees one total order,
 * each session's messages keep their publish order, and the Promise facades open on it share that
 * order with each other.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { CxlogPublisher } from "../../src/layers/net/CxlogPublisher.js"
import { CxlogSubscriber } from "../../src/layers/net/CxlogSubscriber.js"
import { Publisher } from "../../src/services/net/Publisher.js"
import { Subscriber } from "../../src/services/net/Subscriber.js"
import { CxlogTesting, TestCluster } from "../../src/testing.js"

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** An app's own code: publish `count` messages `tag-i`, then wait until every one is acknowledged. */
const publishAll = (tag: string, count: number) =>
  Effect.gen(function*() {
    const publisher = yield* Publisher
    for (let i = 0; i < count; i++) yield* publisher.publish(encoder.encode(`${tag}-${i}`))
    yield* publisher.flush(5_000)
  })

/** An app's own code: the first `count` messages of `topic`, in the order its subscriber reads them. */
const readAll = (topic: string, count: number) =>
  Effect.gen(function*() {
    const subscriber = yield* Subscriber
    const subscription = yield* subscriber.subscribe(topic, { from: "earliest" })
    const read: Array<string> = []
    while (read.length < count) read.push(...(yield* subscription.pull).map((m) => decoder.decode(m.payload)))
    return read
  }).pipe(Effect.scoped)

describe("cxlog/testing", () => {
  it.scopedLive("an Effect app's publisher and subscriber run unchanged over the cluster; flush returns once the sequencer ordered everything", () =>
    Effect.gen(function*() {
      yield* publishAll("order", 50)
      const log = yield* TestCluster
      // Acknowledged means ordered: the cluster's total order holds all 50 before anyone reads.
      expect(log.ordered("orders").reduce((n, batch) => n + batch.messageCount, 0)).toBe(50)
      expect(yield* readAll("orders", 50)).toEqual(Array.from({ length: 50 }, (_, i) => `order-${i}`))
    }).pipe(
      Effect.provide(CxlogTesting.layer({ topics: ["orders"], publisher: { topic: "orders", batchBytes: 256 } }))
    ))

  it.scopedLive("two publishers' messages interleave into one total order that keeps each one's publish order", () =>
    Effect.gen(function*() {
      const second = CxlogTesting.publisher({ topic: "orders", batchBytes: 128 })
      yield* Effect.all([publishAll("a", 200), publishAll("b", 200).pipe(Effect.provide(second))], { concurrency: 2 })
      const first = yield* readAll("orders", 400)
      expect(yield* readAll("orders", 400)).toEqual(first)
      for (const tag of ["a", "b"]) {
        expect(first.filter((m) => m.startsWith(`${tag}-`))).toEqual(
          Array.from({ length: 200 }, (_, i) => `${tag}-${i}`)
        )
      }
    }).pipe(
      Effect.provide(
        Layer.provideMerge(
          Layer.merge(CxlogTesting.publisher({ topic: "orders", batchBytes: 128 }), CxlogTesting.subscriber),
          CxlogTesting.cluster({ topics: ["orders"] })
        )
      )
    ))

  it("the Promise facades open on a started cluster: what one publishes, the other reads", async () => {
    const cluster = await CxlogTesting.start({ topics: ["events"] })
    try {
      const publisher = await CxlogPublisher.openWith(cluster.publisher({ topic: "events" }))
      const acks = await Promise.all(["x", "y", "z"].map((m) => publisher.publish(m, { acked: true })))
      expect(acks.map((ack) => ack.offset)).toEqual([0, 1, 2])
      await publisher.close()
      const subscriber = await CxlogSubscriber.openWith(cluster.subscriber, { topic: "events", from: "earliest" })
      const read: Array<string> = []
      for await (const message of subscriber) if (read.push(message.text()) === 3) break
      await subscriber.close()
      expect(read).toEqual(["x", "y", "z"])
    } finally {
      await cluster.close()
    }
  })
})
