/**
 * The local publisher (PublisherLinkRegion.ts) over a real region: it takes a broker slot of its
 * own, appends into the region itself and learns its ACKs from its session's line. A local and a
 * TCP publisher on one topic at once, in every order mode: the log holds each session's messages
 * once, in its order for order 5, in one gap-free order; `publishAcked` gives each message's
 * offset; with every broker slot taken, a local publisher fails typed, naming the setting; its
 * topic deleted and created again, it publishes into the new topic once a call was told.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, type Scope } from "effect"
import * as AckTrackerLayers from "../../src/layers/log/AckTracker.js"
import * as AppenderLayers from "../../src/layers/log/Appender.js"
import * as LogReaderLayers from "../../src/layers/log/LogReader.js"
import * as SequencerLayers from "../../src/layers/log/Sequencer.js"
import * as BrokerLayers from "../../src/layers/net/Broker.js"
import { CxlogPublisher } from "../../src/layers/net/CxlogPublisher.js"
import * as PublisherLayers from "../../src/layers/net/Publisher.js"
import * as CxlMemoryLayers from "../../src/layers/region/CxlMemory.js"
import * as DoorbellLayers from "../../src/layers/region/Doorbell.js"
import { AckTracker } from "../../src/services/log/AckTracker.js"
import { Appender } from "../../src/services/log/Appender.js"
import type { OrderMode } from "../../src/services/log/Topics.js"
import { Topics } from "../../src/services/log/Topics.js"
import { CxlMemory } from "../../src/services/region/CxlMemory.js"
import { Doorbell } from "../../src/services/region/Doorbell.js"
import { bell, recordValue, regionSize, smallConfig, testRegion, testTopics } from "../fixtures/log-harness.js"
import { uniqueRegion } from "../helpers/Processes.js"

/** A region with topic `t`, its head ordering (run loop), broker 0 over TCP and what a local publisher needs; each part with its own doorbell, as its process would have. */
const cluster = (order: OrderMode) =>
  Effect.gen(function*() {
    const name = yield* uniqueRegion("local-pub")
    const region = yield* CxlMemoryLayers.make({
      name,
      size: regionSize(smallConfig),
      mode: "create",
      params: testRegion(smallConfig).params
    })
    const area = testRegion(smallConfig).area
    const inRegion = <A, E, R>(make: Effect.Effect<A, E, R>) => make.pipe(Effect.provideService(CxlMemory, region))
    let bells = 0
    const withBell = <A, E>(make: Effect.Effect<A, E, CxlMemory | Doorbell | Scope.Scope>) =>
      Effect.flatMap(inRegion(DoorbellLayers.make({ offset: bell(bells++), spinMicros: 0 })), (doorbell) =>
        inRegion(make.pipe(Effect.provideService(Doorbell, doorbell))))
    const topics = yield* testTopics(region, area)
    yield* topics.create({ name: "t", order, ackLevel: 1, replicationFactor: 1 })
    const sequencer = yield* withBell(SequencerLayers.make(area, {}))
    yield* Effect.forkScoped(sequencer.run)
    const server = yield* BrokerLayers.make({ insecure: true }).pipe(
      Effect.provideService(Appender, yield* withBell(AppenderLayers.make(area, { brokerId: 0 }))),
      Effect.provideService(AckTracker, yield* withBell(AckTrackerLayers.make(area))),
      Effect.provideService(Topics, topics)
    )
    /** What a local publisher's process has: an appender in a free broker slot and an ACK tracker, over a doorbell of its own (a new one each time). */
    const localLog = Effect.suspend(() =>
      Effect.map(inRegion(DoorbellLayers.make({ offset: bell(bells++), spinMicros: 0 })), (doorbell) =>
        Layer.merge(AppenderLayers.layerAnySlot(area), AckTrackerLayers.layer(area)).pipe(
          Layer.provide(Layer.mergeAll(Layer.succeed(CxlMemory, region), Layer.succeed(Doorbell, doorbell)))
        ))
    )
    /** A local publisher as its own process would make it. */
    const local = (clientId: number) =>
      Effect.gen(function*() {
        // Built into the test's scope: the publisher's appender keeps its slot as long as the publisher lives.
        const log = yield* Layer.build(yield* localLog)
        return yield* PublisherLayers.makeLocal({ topic: "t", clientId, region: name }).pipe(Effect.provide(log))
      })
    /** The same publisher's layer, for the Promise facade. */
    const localLayer = (clientId: number) =>
      Effect.map(localLog, (log) =>
        PublisherLayers.layerLocal({ topic: "t", clientId, region: name }).pipe(Layer.provide(log)))
    const reader = yield* withBell(LogReaderLayers.make(area))
    return { port: server.port, local, localLog, localLayer, reader, topics }
  })

const payload = (client: number, i: number) => new TextEncoder().encode(`${client}:${i}`)

describe("the local publisher (a real region)", () => {
  for (const order of [5, 4, 2, 0] as const) {
    it.scopedLive(
      `order ${order}: a local and a TCP publisher on one topic at once; every message once, each session's in its order for order 5`,
      () =>
        Effect.gen(function*() {
          const { port, local, reader } = yield* cluster(order)
          const mine = yield* local(21)
          const remote = yield* PublisherLayers.make({
            brokers: [{ host: "127.0.0.1", port }],
            topic: "t",
            clientId: 22
          })
          const count = 400
          yield* Effect.all([
            Effect.forEach(Array.from({ length: count }, (_, i) => i), (i) => mine.publish(payload(21, i)), {
              discard: true
            }),
            Effect.forEach(Array.from({ length: count }, (_, i) => i), (i) => remote.publish(payload(22, i)), {
              discard: true
            })
          ], { concurrency: 2 })
          yield* Effect.all([mine.flush(10_000), remote.flush(10_000)])
          expect(mine.stats()).toMatchObject({ messages: count, ackedMessages: count })

          const cursor = yield* reader.subscribe("t", { from: 0 })
          const seen = new Map<number, Array<number>>([[21, []], [22, []]])
          let offset = 0
          while (offset < 2 * count) {
            expect(yield* cursor.awaitMore(5_000)).toBe(true)
            yield* cursor.poll((m) => {
              expect(m.totalOrder).toBe(offset++)
              const [client, i] = new TextDecoder().decode(recordValue(m)).split(":").map(Number)
              seen.get(client!)!.push(i!)
            })
          }
          for (const client of [21, 22]) {
            const got = seen.get(client)!
            expect([...got].sort((a, b) => a - b)).toEqual(Array.from({ length: count }, (_, i) => i))
            if (order === 5) expect(got).toEqual([...got].sort((a, b) => a - b))
          }
        }),
      60_000
    )
  }

  // The local link says the topic's batch limit as it opens the session, as a broker's SESSION_OPENED does.
  it.scopedLive(
    "small messages to a topic whose batch limit is below the publisher's batches are sealed within it",
    () =>
      Effect.gen(function*() {
        const { localLog, reader, topics } = yield* cluster(5)
        const small = yield* topics.create({
          name: "small",
          order: 5,
          ackLevel: 1,
          replicationFactor: 1,
          memory: 64 << 10
        })
        expect(small.maxMessageBytes).toBeLessThan(64 << 10)
        const log = yield* Layer.build(yield* localLog)
        const mine = yield* PublisherLayers.makeLocal({
          topic: "small",
          clientId: 41,
          region: "local",
          batchBytes: 128 << 10
        })
          .pipe(Effect.provide(log))
        const value = new Uint8Array(1000).fill(9)
        for (let i = 0; i < 300; i++) yield* mine.publish(value)
        yield* mine.flush(30_000)
        // Every one acknowledged, so in the log (its 64 KiB keeps only the last few: discard old).
        expect((yield* reader.bounds("small")).end).toBe(300)
      }),
    30_000
  )

  it.scopedLive(
    "a local publisher refuses options it does not take: brokers, and a misspelt one",
    () =>
      Effect.gen(function*() {
        const { localLog } = yield* cluster(5)
        const log = yield* Layer.build(yield* localLog)
        for (
          const [option, options] of [
            ["brokers", { topic: "t", region: "local", brokers: [{ host: "127.0.0.1", port: 7400 }] }],
            ["lingerMS", { topic: "t", region: "local", lingerMS: 5 }]
          ] as const
        ) {
          const refused = yield* Effect.flip(
            PublisherLayers.makeLocal(options as unknown as PublisherLayers.LocalPublisherOptions).pipe(
              Effect.provide(log)
            )
          )
          expect(refused._tag).toBe("InvalidPublisherOptions")
          expect(refused.message).toContain(`a local publisher has no option ${option} (its options: topic, `)
        }
      }),
    30_000
  )

  it.scopedLive(
    "a topic's largest message: one published before the session said it is dropped unsent once it does, one after refused at once; the topic goes on",
    () =>
      Effect.gen(function*() {
        const { local, topics } = yield* cluster(5)
        yield* topics.create({ name: "small", order: 5, ackLevel: 1, replicationFactor: 1, maxMessageBytes: 4096 })
        const blind = yield* local(41)
        // One byte over: the check where the batch goes in is exact.
        const dropped = yield* Effect.flip(blind.publishAcked(new Uint8Array(4097), { topic: "small" }))
        expect(dropped).toMatchObject({ _tag: "MessageTooLarge", topic: "small", maxMessageBytes: 4096, bytes: 4097 })
        expect(dropped.message).toContain("over topic small's largest message of 4096 bytes")
        const mine = yield* local(42)
        expect(yield* mine.publishAcked(new Uint8Array(4096), { topic: "small" })).toEqual({ offset: 0 })
        expect(yield* Effect.flip(mine.publish(new Uint8Array(4097), { topic: "small" }))).toMatchObject({
          _tag: "MessageTooLarge",
          topic: "small",
          maxMessageBytes: 4096
        })
        expect(yield* mine.publishAcked(new Uint8Array(64), { topic: "small" })).toEqual({ offset: 1 })
      }),
    30_000
  )

  it.scopedLive("publishAcked gives each message's offset in the log", () =>
    Effect.gen(function*() {
      const { local, reader } = yield* cluster(5)
      const mine = yield* local(31)
      const offsets: Array<number | undefined> = []
      for (let i = 0; i < 20; i++) offsets.push((yield* mine.publishAcked(payload(31, i))).offset)
      expect(offsets).toEqual(Array.from({ length: 20 }, (_, i) => i))
      const cursor = yield* reader.subscribe("t", { from: 7 })
      let text = ""
      yield* cursor.poll((m) => {
        if (m.totalOrder === 7) text = new TextDecoder().decode(recordValue(m))
      })
      expect(text).toBe("31:7")
    }), 30_000)

  it.scopedLive(
    "its topic deleted and created again: the deletion fails a call, messages while it is gone fail unknown-topic, and once it is there they go into the new topic",
    () =>
      Effect.gen(function*() {
        const { local, reader, topics } = yield* cluster(5)
        const mine = yield* local(41)
        for (let i = 0; i < 5; i++) yield* mine.publishAcked(payload(41, i))
        yield* topics.delete("t")
        const failure = yield* Effect.flip(
          Effect.gen(function*() {
            for (let i = 5;; i++) {
              yield* mine.publishAcked(payload(41, i))
              yield* Effect.sleep("5 millis")
            }
          })
        ).pipe(Effect.timeoutFail({ duration: 10_000, onTimeout: () => new Error("the deleted topic took publishes") }))
        expect(failure).toMatchObject({ _tag: "BrokerRejected", topic: "t", code: "topic-deleted" })
        // While no topic has the name, each try is told so, and asks again at the next.
        for (let i = 0; i < 3; i++) {
          expect(yield* Effect.flip(mine.publishAcked(payload(43, i)))).toMatchObject({
            topic: "t",
            code: "unknown-topic"
          })
        }
        yield* topics.create({ name: "t", order: 5, ackLevel: 1, replicationFactor: 1 })
        const offsets: Array<number | undefined> = []
        for (let i = 0; i < 5; i++) offsets.push((yield* mine.publishAcked(payload(42, i))).offset)
        expect(offsets).toEqual([0, 1, 2, 3, 4])
        const cursor = yield* reader.subscribe("t", { from: 0 })
        const texts: Array<string> = []
        yield* cursor.poll((m) => {
          texts.push(new TextDecoder().decode(recordValue(m)))
        })
        expect(texts).toEqual(["42:0", "42:1", "42:2", "42:3", "42:4"])
      }),
    30_000
  )

  it.scopedLive(
    "the Promise facade over a local publisher (CxlogPublisher.openWith): acked publishes give offsets; close flushes",
    () =>
      Effect.gen(function*() {
        const { localLayer, reader } = yield* cluster(5)
        const layer = yield* localLayer(51)
        const offsets = yield* Effect.promise(async () => {
          const publisher = await CxlogPublisher.openWith(layer)
          const got: Array<number | undefined> = []
          for (let i = 0; i < 5; i++) got.push((await publisher.publish(`51:${i}`, { acked: true })).offset)
          await publisher.publish("51:5")
          await publisher.close()
          return got
        })
        expect(offsets).toEqual([0, 1, 2, 3, 4])
        const cursor = yield* reader.subscribe("t", { from: 0 })
        const texts: Array<string> = []
        yield* cursor.poll((m) => {
          texts.push(new TextDecoder().decode(recordValue(m)))
        })
        expect(texts).toEqual(["51:0", "51:1", "51:2", "51:3", "51:4", "51:5"])
      }),
    30_000
  )

  it.scopedLive(
    "with every broker slot owned by a live process, a local publisher fails with NoBrokerSlotFree naming the setting",
    () =>
      Effect.gen(function*() {
        const { local } = yield* cluster(5)
        // Broker 0 and three local publishers take the four slots of the small region.
        for (const client of [41, 42, 43]) yield* local(client)
        const error = yield* Effect.flip(local(44))
        expect(error).toMatchObject({ _tag: "NoBrokerSlotFree", maxBrokers: smallConfig.maxBrokers })
        expect(String((error as Error).message)).toContain("CXLOG_LOG_MAX_BROKERS")
      }),
    30_000
  )
})
