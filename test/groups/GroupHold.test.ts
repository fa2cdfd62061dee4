/**
 * A group's hold on its topic once a writer cut it off (its hold kept the appends waiting past
 * CXLOG_CONSUMER_HOLD_MS): it holds nothing while the group is behind, and a member takes it again
 * once the group has passed where the topic ended when the cut was seen. Over the fake, whose
 * subscriber lines the test cuts as a writer would.
 */
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Layer, Stream } from "effect"
import * as ConsumerGroupsMemoryLayers from "../../src/layers/groups/ConsumerGroupsMemory.js"
import { ackAll } from "../../src/layers/groups/GroupDelivery.js"
import { holdName } from "../../src/layers/groups/GroupHold.js"
import { heldLines } from "../../src/layers/log/ConsumerLineReads.js"
import { cutOffHolding } from "../../src/layers/log/Consumers.js"
import * as ConsumersMemory from "../../src/layers/log/ConsumersMemory.js"
import { lineTaken } from "../../src/layers/log/Participants.js"
import { SubscriberLineView } from "../../src/layers/log/ProcessLineViews.js"
import * as TestClusterLayers from "../../src/layers/testing/TestCluster.js"
import { TestCluster } from "../../src/layers/testing/TestCluster.js"
import { ConsumerGroups, type GroupInfo } from "../../src/services/groups/ConsumerGroups.js"
import { Publisher } from "../../src/services/net/Publisher.js"
import { CHECK_EVERY_MS } from "../fixtures/groups-harness.js"

const services = Layer.unwrapEffect(
  Effect.map(
    TestCluster,
    (log) =>
      ConsumerGroupsMemoryLayers.layerMemory(ConsumerGroupsMemoryLayers.makeMemoryGroupsStore(log.store), {
        checkEveryMs: CHECK_EVERY_MS
      })
  )
).pipe(
  Layer.provideMerge(TestClusterLayers.publisher({ topic: "t" })),
  Layer.provideMerge(TestClusterLayers.cluster({ topics: ["t"] }))
)

const publish = (from: number, count: number, topic = "t") =>
  Effect.gen(function*() {
    const publisher = yield* Publisher
    for (let i = from; i < from + count; i++) yield* publisher.publish(new TextEncoder().encode(`${i}`), { topic })
    yield* publisher.flush(10_000)
  })

/** A member of `group` that takes `count` messages, acks them and leaves; how many it took. */
const takeAndLeave = (group: string, count: number) =>
  Effect.flatMap(ConsumerGroups, (groups) =>
    groups.join(group, { maxInFlight: 8 }).pipe(
      Stream.take(count),
      Stream.mapChunksEffect((chunk) => Effect.as(ackAll(chunk), chunk)),
      Stream.runCount
    ))

/** cxlog's own consumers of `topic`: the holds of its groups. */
const holdsOf = (topic: string) =>
  Effect.flatMap(TestCluster, (log) => Effect.flatMap(ConsumersMemory.makeMemory(log.store), (c) => c.own.list(topic)))

/** Waits (real time, bounded) until the group's description satisfies `ok`. */
const until = (ok: (info: GroupInfo) => boolean) =>
  Effect.gen(function*() {
    const groups = yield* ConsumerGroups
    for (let look = 0; look < 500; look++) {
      const info = yield* groups.describe("g")
      if (ok(info)) return info
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 10)))
    }
    return yield* Effect.dieMessage(
      `the group's hold never came to that: ${JSON.stringify(yield* groups.describe("g"))}`
    )
  })

/** A pid no process has (above any pid_max). */
const DEAD_PID = 0x3fffffff

/** Real time: the member's looks run on it. */
const sleep = (ms: number) => Effect.promise(() => new Promise((resolve) => setTimeout(resolve, ms)))

describe("a group's hold cut off", () => {
  it.live("holds nothing while the group is behind where the topic ended at the cut, and is taken again once it passed it", () =>
    Effect.gen(function*() {
      const groups = yield* ConsumerGroups
      const log = yield* TestCluster
      yield* groups.create({ name: "g", topic: "t" })
      yield* publish(0, 10)
      // The member holds its first four messages unacked until the test lets it go on.
      const goOn = yield* Deferred.make<void>()
      const acked: Array<number> = []
      const member = yield* groups.join("g", { maxInFlight: 4 }).pipe(
        Stream.runForEachChunk((chunk) =>
          Effect.zipRight(
            Deferred.await(goOn),
            Effect.map(ackAll(chunk), () => {
              for (const d of chunk) acked.push(d.offset)
            })
          )
        ),
        Effect.fork
      )
      yield* until((info) => info.pending === 4 && info.heldFrom === 0)
      // A writer waited past its bound for the room the hold keeps: it cuts the hold off.
      const topic = log.store.topics.find((t) => t?.info.name === "t")!
      expect(cutOffHolding(log.store.lines.region, log.store.lines.area, topic.info.id, Number.MAX_SAFE_INTEGER)).toBe(
        1
      )
      expect(yield* until((info) => info.holdCutOff)).toMatchObject({ heldFrom: undefined })
      // Behind the topic's end at the cut (10), the group does not take its hold again: it would only be cut again
      // (a window, not a wait: five of the member's looks, none of which may take the hold).
      yield* sleep(5 * CHECK_EVERY_MS)
      expect(yield* groups.describe("g")).toMatchObject({ holdCutOff: true, pending: 4 })
      // Caught up with everything the topic had then, it holds again, from where it stands.
      yield* Deferred.succeed(goOn, undefined)
      expect(yield* until((info) => !info.holdCutOff)).toMatchObject({ heldFrom: 10 })
      yield* publish(10, 10)
      yield* until((info) => info.heldFrom === 20)
      yield* Fiber.interrupt(member)
      expect(acked).toEqual(Array.from({ length: 20 }, (_, i) => i))
    }).pipe(Effect.provide(services)))
})

describe("a group on a topic that discards old messages", () => {
  it.live("holds nothing: no hold is made, and its members take none", () =>
    Effect.gen(function*() {
      const groups = yield* ConsumerGroups
      const log = yield* TestCluster
      yield* log.topics.create({
        name: "old",
        order: 5,
        ackLevel: 1,
        replicationFactor: 1,
        retention: { discard: "old" }
      })
      yield* groups.create({ name: "o", topic: "old" })
      yield* publish(0, 5, "old")
      expect(yield* takeAndLeave("o", 5)).toBe(5)
      // The member came, took them and left: no line of the topic is the group's.
      expect(yield* holdsOf("old")).toEqual([])
      expect(yield* groups.describe("o")).toMatchObject({ heldFrom: undefined, holdCutOff: false })
    }).pipe(Effect.provide(services)))
})

describe("a group made with holdRetention: false", () => {
  it.live("holds nothing of its topic: no hold is made, and its members take none", () =>
    Effect.gen(function*() {
      const groups = yield* ConsumerGroups
      yield* groups.create({ name: "free", topic: "t", holdRetention: false })
      yield* publish(0, 5)
      expect(yield* takeAndLeave("free", 5)).toBe(5)
      expect(yield* holdsOf("t")).toEqual([])
      expect(yield* groups.describe("free")).toMatchObject({ holdRetention: false, heldFrom: undefined })
      expect(yield* Effect.flip(groups.create({ name: "bad", topic: "t", holdRetention: "no" as unknown as boolean })))
        .toMatchObject({
          _tag: "InvalidGroupSpec",
          reason: expect.stringMatching(/holdRetention must be true or false/)
        })
    }).pipe(Effect.provide(services)))
})

describe("a hold whose group is gone", () => {
  it.live("is removed by the next create of a group of its topic (its deleter was killed between the object and the hold)", () =>
    Effect.gen(function*() {
      const groups = yield* ConsumerGroups
      const log = yield* TestCluster
      const consumers = yield* ConsumersMemory.makeMemory(log.store)
      // What a deleter killed after removing group (slot 7, generation 3)'s object leaves: its hold, no member.
      const left = holdName({ slot: 7, generation: 3 })
      yield* Effect.scoped(consumers.own.join("t", left, { offset: 0, globalSeq: 0 }))
      yield* groups.create({ name: "next", topic: "t" })
      const holds = (yield* consumers.own.list("t")).map((c) => c.name)
      expect(holds).not.toContain(left)
      expect(holds).toHaveLength(1)
    }).pipe(Effect.provide(services)))
})

describe("a hold whose member died", () => {
  it.live("is taken by another member at its next tick, and moves on with the group", () =>
    Effect.gen(function*() {
      const groups = yield* ConsumerGroups
      const log = yield* TestCluster
      yield* groups.create({ name: "g", topic: "t" })
      yield* publish(0, 10)
      // The first member acks its window of 5 and stays, taking no more: it takes the hold and moves
      // it to 5. It is killed (here: its process's claim on the hold's line forgotten and a dead pid
      // in the line's member word), so its lease moves nothing more.
      const first = yield* groups.join("g", { maxInFlight: 5 }).pipe(
        Stream.runForEachChunk((chunk) => Effect.zipRight(ackAll(chunk), Effect.never)),
        Effect.fork
      )
      yield* until((info) => info.heldFrom === 5)
      const { region, area } = log.store.lines
      const topic = log.store.topics.find((t) => t?.info.name === "t")!
      const lines = new SubscriberLineView(region)
      const line = Array.from({ length: area.config.subscriberSlots }, (_, s) => area.subscriber(topic.info.id, s))
        .find((l) => lineTaken(region, l) && lines.durable(l) === 2)!
      heldLines(region).delete(line)
      lines.storeMember(line, DEAD_PID, 0)
      // A second member, in another "process", takes the hold over and keeps it where the group stands.
      const second = yield* groups.join("g", { maxInFlight: 5 }).pipe(
        Stream.runForEachChunk((chunk) => Effect.zipRight(ackAll(chunk), Effect.never)),
        Effect.fork
      )
      expect(yield* until((info) => info.heldFrom === 10)).toMatchObject({ holdCutOff: false, acked: 10 })
      yield* Fiber.interruptAll([first, second])
    }).pipe(Effect.provide(services)))
})
