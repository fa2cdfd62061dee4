/**
 * Without keys, a member that already holds a claim of its wake takes no part of a batch it cannot
 * take whole, so the next member's claim starts at that batch's first record (where a claim in a
 * batch's middle reads the length of every record before it); a member's first claim of a wake
 * still takes what fits, so a window smaller than the topic's batches still fills. Over the fake
 * and a live region: the same engine, fed batches of ten messages each.
 */
import { expect } from "@effect/vitest"
import { Deferred, Effect, Fiber, type Layer, Stream } from "effect"
import { ConsumerGroups, type Delivery } from "../../src/services/groups/ConsumerGroups.js"
import { LogReader } from "../../src/services/log/LogReader.js"
import { Publisher } from "../../src/services/net/Publisher.js"
import { type GroupsServices, memoryGroups, regionGroups } from "../fixtures/groups-harness.js"
import { sharedLayer } from "../helpers/SharedLayer.js"

const BATCH = 10
const BATCHES = 4

const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i)

/**
 * `BATCHES` batches of `BATCH` messages to `topic`: each burst published together goes as one
 * batch, acknowledged before the next; checked as such in the log.
 */
const publishBatches = (topic: string) =>
  Effect.gen(function*() {
    const publisher = yield* Publisher
    for (let b = 0; b < BATCHES; b++) {
      for (let i = 0; i < BATCH; i++) {
        const taken = publisher.tryPublish(new TextEncoder().encode(`m-${b * BATCH + i}`), { topic })
        if (taken !== true) return yield* Effect.dieMessage(`the burst's message ${i} was not taken: ${String(taken)}`)
      }
      yield* publisher.flush(10_000)
    }
    expect(yield* batchSizes(topic)).toEqual(Array.from({ length: BATCHES }, () => BATCH))
  })

/** How many messages each batch of `topic` holds, in order. */
const batchSizes = (topic: string) =>
  Effect.scoped(Effect.gen(function*() {
    const cursor = yield* (yield* LogReader).subscribe(topic, { from: "earliest" })
    const sizes: Array<number> = []
    while (sizes.reduce((a, b) => a + b, 0) < BATCH * BATCHES) {
      const read = yield* cursor.pollBatches((batch) => void sizes.push(batch.messageCount))
      if (read === 0 && !(yield* cursor.awaitMore(5_000))) break
    }
    return sizes
  }))

/** A member of `group` that takes its first delivery and holds it (and what came with it) unsettled: what the group held for it then. */
const firstHold = (group: string, maxInFlight: number) =>
  Effect.gen(function*() {
    const groups = yield* ConsumerGroups
    const first = yield* Deferred.make<Array<number>>()
    const member = yield* groups.join(group, { maxInFlight }).pipe(
      Stream.runForEach(() =>
        Effect.zipRight(
          Effect.flatMap(
            groups.pending(group),
            (pending) => Deferred.succeed(first, pending.map((p) => p.offset).sort((a, b) => a - b))
          ),
          Effect.never
        )
      ),
      Effect.fork
    )
    return { held: yield* Deferred.await(first), member }
  })

const suite = (name: string, backing: Layer.Layer<GroupsServices, unknown>) =>
  sharedLayer(backing, { timeout: 60_000 })(name, (it) => {
    it.effect("a member's further claims of a wake stop at a batch it cannot take whole; a first claim takes what fits", () =>
      Effect.gen(function*() {
        const groups = yield* ConsumerGroups
        yield* groups.create({ name: "tens", topic: "tens" })
        yield* publishBatches("tens")
        // Room for 15: the first batch whole, none of the second (it would take 5 of its 10).
        const a = yield* firstHold("tens", 15)
        expect(a.held).toEqual(range(0, 10))
        // The next member starts at the second batch's first message.
        const b = yield* firstHold("tens", 15)
        expect(b.held).toEqual(range(0, 20))
        // A window smaller than a batch: its first claim takes what fits, from a batch's start.
        const c = yield* firstHold("tens", 4)
        expect(c.held).toEqual(range(0, 24))
        yield* Fiber.interruptAll([a.member, b.member, c.member])
      }))

    it.effect("the room a member left short of a batch waits for a settle: pulling again at once takes no sliver of it", () =>
      Effect.gen(function*() {
        const groups = yield* ConsumerGroups
        yield* groups.create({ name: "eager", topic: "eager" })
        yield* publishBatches("eager")
        // A member that pulls for more at once, settling nothing (as a broker does for its client).
        const taken: Array<Delivery> = []
        const tenth = yield* Deferred.make<void>()
        const sixteenth = yield* Deferred.make<void>()
        const eager = yield* groups.join("eager", { maxInFlight: 15 }).pipe(
          Stream.runForEach((d) =>
            Effect.sync(() => {
              taken.push(d)
              if (taken.length === BATCH) Deferred.unsafeDone(tenth, Effect.void)
              if (taken.length === BATCH + 6) Deferred.unsafeDone(sixteenth, Effect.void)
            })
          ),
          Effect.fork
        )
        yield* Deferred.await(tenth)
        // Its pull after the tenth is made before the next member claims: that one starts at the second batch.
        const next = yield* firstHold("eager", 15)
        expect(next.held).toEqual(range(0, 20))
        expect(taken.map((d) => d.offset)).toEqual(range(0, 10))
        // A settle gives its room back: it takes what fits (six) from where the others left off.
        yield* taken[0]!.ack
        yield* Deferred.await(sixteenth)
        expect(taken.map((d) => d.offset)).toEqual([...range(0, 10), ...range(20, 26)])
        yield* Fiber.interruptAll([eager, next.member])
      }))
  })

suite("a group's claims and the topic's batches, over the fake", memoryGroups(["tens", "eager"]))
suite("a group's claims and the topic's batches, over a live region", regionGroups(["tens", "eager"]))
