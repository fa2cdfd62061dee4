/**
 * ConsumerGroups contract: the same behaviour from the live layer (a region whose head, a child
 * process, creates the groups' objects; this process a member and a publisher) and from the fake
 * (the same engine over a private directory and the in-memory log). Each test uses topics of its
 * own; waits are for conditions, bounded, never for time.
 */
import { expect } from "@effect/vitest"
import { Chunk, Clock, Deferred, Effect, Fiber, type Layer, Stream, TestClock } from "effect"
import { ackAll } from "../../src/layers/groups/GroupDelivery.js"
import { checkBatchPayload, forEachMessage } from "../../src/layers/net/BatchPayload.js"
import {
  ConsumerGroups,
  type Delivery,
  GroupBehindRetention,
  GroupDeleted,
  GroupExists,
  GroupMembersFull,
  GroupNotFound,
  GroupPendingFull,
  type GroupSpec,
  GroupTopicGone,
  InvalidGroupSpec,
  InvalidNakDelay,
  MAX_NAK_DELAY_MS
} from "../../src/services/groups/ConsumerGroups.js"
import { LogReader } from "../../src/services/log/LogReader.js"
import { TopicNotFound } from "../../src/services/log/Topics.js"
import { Publisher } from "../../src/services/net/Publisher.js"
import {
  CHECK_EVERY_MS,
  type GroupsServices,
  memoryGroups,
  RecreateTopic,
  regionGroups,
  remoteGroups,
  TrimTopic
} from "../fixtures/groups-harness.js"
import { sharedLayer } from "../helpers/SharedLayer.js"

const TOPICS = [
  "t0",
  "t1",
  "t2",
  "t3",
  "t4",
  "t5",
  "t6",
  "t7",
  "t8",
  "t9",
  "t10",
  "t11",
  "t12",
  "t13",
  "t14",
  "t15",
  "t16",
  "t17",
  "t18",
  "t19",
  "t21",
  "t22",
  "t23",
  "t24",
  "t25",
  "t26",
  "dead",
  "dead12",
  "dead15",
  "dead21"
]
const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes)

/** Publishes `count` messages `prefix-i` to `topic` (keys `k{i % keys}` when `keys`), acknowledged. */
const publish = (topic: string, count: number, options: { readonly keys?: number; readonly prefix?: string } = {}) =>
  Effect.gen(function*() {
    const publisher = yield* Publisher
    for (let i = 0; i < count; i++) {
      yield* publisher.publish(new TextEncoder().encode(`${options.prefix ?? "m"}-${i}`), {
        topic,
        ...(options.keys === undefined ? {} : { key: `k${i % options.keys}` })
      })
    }
    yield* publisher.flush(10_000)
  })

/** Waits `ms` of real time (the tests' clock is virtual). */
const realSleep = (ms: number) => Effect.promise(() => new Promise((resolve) => setTimeout(resolve, ms)))

/**
 * 1 KiB messages `0`, `1`, … to `topic` (keys `k{i % keys}` when `keys`), each waiting for room as
 * long as the topic makes it wait, then acknowledged.
 */
const publishKiB = (topic: string, from: number, count: number, keys?: number) =>
  Effect.gen(function*() {
    const publisher = yield* Publisher
    for (let i = from; i < from + count; i++) {
      yield* publisher.publish(
        new TextEncoder().encode(`${i}`.padEnd(1024, ".")),
        keys === undefined ? { topic } : { topic, key: `k${i % keys}` }
      )
    }
    yield* publisher.flush(60_000)
  })

/**
 * Until `fiber` is done or the topic's end stood still across a look 250 ms of real time long:
 * its publisher waits. A window, not a wait on a condition: "no longer moves" is seen only over
 * time (an append that waited for room once may have gone on since).
 */
const doneOrWaiting = (topic: string, fiber: Fiber.RuntimeFiber<unknown, unknown>) =>
  Effect.gen(function*() {
    const reader = yield* LogReader
    let before = -1
    for (;;) {
      if (fiber.unsafePoll() !== null) return
      const { end } = yield* reader.bounds(topic)
      if (end === before) return
      before = end
      yield* realSleep(250)
    }
  })

/** A member's work on a message: a few ms of real time (a test's clock is virtual; this is the work, not a wait). */
const work = Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 5)))

/**
 * A member of `group` (made over `topic`, byKey when `keys` is given) that took the first three of
 * one batch of ten, its place in the batch kept, when a trim cuts the batch at offset 5: the
 * three it got, acked, and how the member ended (within 20 s of real time).
 */
const memberThroughTrimInBatch = (group: string, topic: string, keys?: number) =>
  Effect.gen(function*() {
    const groups = yield* ConsumerGroups
    yield* groups.create({ name: group, topic, ackWaitMs: 3_600_000, ...(keys === undefined ? {} : { byKey: true }) })
    yield* publish(topic, 10, keys === undefined ? {} : { keys })
    const got: Array<Delivery> = []
    const three = yield* Deferred.make<void>()
    const member = yield* groups.join(group, { maxInFlight: 3 }).pipe(
      Stream.runForEach((d) =>
        Effect.suspend(() => got.push(d) === 3 ? Deferred.succeed(three, undefined) : Effect.void)
      ),
      Effect.fork
    )
    yield* Deferred.await(three)
    // The cut lies inside the batch: offsets 3 and 4 are dropped for every reader, their bytes still there.
    yield* (yield* TrimTopic)(topic, 5)
    for (const d of got.slice()) expect(yield* d.ack).toBe(true)
    const ended = yield* Effect.flip(
      Effect.raceFirst(
        Fiber.join(member),
        Effect.zipRight(realSleep(20_000), Effect.dieMessage("the member did not fail"))
      )
    )
    return { got, ended }
  })

/** The first `n` deliveries of a member of `group`, not settled. */
const take = (group: string, n: number, maxInFlight = n) =>
  Effect.flatMap(
    ConsumerGroups,
    (groups) => Stream.runCollect(Stream.take(groups.join(group, { maxInFlight }), n)).pipe(Effect.map(Chunk.toArray))
  )

const contract = (name: string, backing: Layer.Layer<GroupsServices, unknown>) =>
  sharedLayer(backing, { timeout: 60_000 })(name, (it) => {
    it.effect("creates, describes, lists and deletes groups; typed errors for bad specs and unknown names", () =>
      Effect.gen(function*() {
        const groups = yield* ConsumerGroups
        yield* publish("t0", 3)
        const info = yield* groups.create({ name: "g0", topic: "t0", ackWaitMs: 5_000, maxDeliver: 3 })
        expect(info).toMatchObject({ name: "g0", topic: "t0", byKey: false, startOffset: 0, frontier: 0, end: 3 })
        expect(info).toMatchObject({ ackWaitMs: 5_000, maxDeliver: 3, pending: 0, members: [], lag: 3 })
        expect(yield* Effect.flip(groups.create({ name: "g0", topic: "t0" }))).toBeInstanceOf(GroupExists)
        const latest = yield* groups.create({ name: "g0-latest", topic: "t0", start: "latest", byKey: true })
        expect(latest).toMatchObject({ startOffset: 3, byKey: true, lag: 0 })
        expect((yield* groups.list).map((g) => g.name).sort()).toEqual(["g0", "g0-latest"])
        expect(yield* Effect.flip(groups.create({ name: "g0-x", topic: "nope" }))).toBeInstanceOf(TopicNotFound)
        // Its dead-letter topic missing too: its own topic is named first.
        expect(yield* Effect.flip(groups.create({ name: "g0-x", topic: "nope", deadLetterTopic: "nope.dead" })))
          .toMatchObject({ _tag: "TopicNotFound", name: "nope" })
        // A field the spec has no name for (a JavaScript caller's typo) is refused naming it, not left out.
        const typo = { name: "g0-t", topic: "t0", ackWait: 5_000 } as unknown as GroupSpec
        const typoRefused = yield* Effect.flip(groups.create(typo))
        expect(typoRefused).toBeInstanceOf(InvalidGroupSpec)
        expect(typoRefused.message).toBe(
          `consumer group "g0-t": a group's spec has no field ackWait (its fields: name, topic, byKey, ackWaitMs, maxDeliver, deadLetterTopic, start, memberSlots, pendingSlots, holdRetention)`
        )
        // A dead-letter topic that does not exist is the spec's mistake, said as such.
        const noDeadLetters = yield* Effect.flip(groups.create({ name: "g0-d", topic: "t0", deadLetterTopic: "nope" }))
        expect(noDeadLetters).toBeInstanceOf(InvalidGroupSpec)
        expect(noDeadLetters.message).toBe(
          `consumer group "g0-d": its dead-letter topic nope does not exist: create it first`
        )
        // A start that is none of the four, from a JavaScript caller, is named as such (not a Schema tree).
        const lastest = yield* Effect.flip(
          groups.create({ name: "g0-s", topic: "t0", start: "lastest" } as unknown as GroupSpec)
        )
        expect(lastest.message).toBe(
          `consumer group "g0-s": start must be "earliest", "latest", { offset: N } or { time: MS }, not "lastest"`
        )
        const bad = yield* Effect.flip(groups.create({ name: "g0-y", topic: "t0", ackWaitMs: 0 }))
        expect(bad).toBeInstanceOf(InvalidGroupSpec)
        const beyond = yield* Effect.flip(groups.create({ name: "g0-z", topic: "t0", start: { offset: 99 } }))
        expect(beyond).toBeInstanceOf(InvalidGroupSpec)
        // A member's window that cannot be is refused as such, local or remote, before it joins.
        for (const maxInFlight of [-3, 0, 1.5, 2 ** 21]) {
          const window = yield* Effect.flip(take("g0", 1, maxInFlight))
          expect(window).toBeInstanceOf(InvalidGroupSpec)
          expect(window.message).toBe(
            `consumer group "g0": maxInFlight ${maxInFlight} must be a whole number from 1 to 1048576`
          )
        }
        yield* groups.delete("g0")
        yield* groups.delete("g0-latest")
        expect(yield* Effect.flip(groups.describe("g0"))).toBeInstanceOf(GroupNotFound)
        expect(yield* Effect.flip(groups.delete("g0"))).toBeInstanceOf(GroupNotFound)
        // A name no object can have: no such group, and no group made of it, as itself (through a broker too).
        for (const name of ["", "x".repeat(129), "a\u0001b"]) {
          expect(yield* Effect.flip(groups.describe(name))).toMatchObject({ _tag: "GroupNotFound", group: name })
          expect(yield* Effect.flip(groups.pending(name))).toMatchObject({ _tag: "GroupNotFound", group: name })
          expect(yield* Effect.flip(take(name, 1))).toMatchObject({ _tag: "GroupNotFound", group: name })
          expect(yield* Effect.flip(groups.create({ name, topic: "t0" }))).toMatchObject({ _tag: "InvalidObjectName" })
        }
        // A name that is not a string (a JavaScript caller's `name: 5`): the same typed errors, not a
        // TypeError or a Schema's ParseError from what reads a name's bytes.
        const five = 5 as unknown as string
        const noGroup = { _tag: "GroupNotFound", group: "5" }
        expect(yield* Effect.flip(groups.describe(five))).toMatchObject(noGroup)
        expect(yield* Effect.flip(groups.pending(five))).toMatchObject(noGroup)
        expect(yield* Effect.flip(groups.delete(five))).toMatchObject(noGroup)
        expect(yield* Effect.flip(take(five, 1))).toMatchObject(noGroup)
        expect(yield* Effect.flip(groups.create({ name: five, topic: "t0" }))).toMatchObject({
          _tag: "InvalidObjectName",
          name: "5",
          reason: "a name is a string, not a number"
        })
        expect(yield* groups.list).toEqual([])
      }))

    it.effect("two members share the messages: each delivered once, every one acked", () =>
      Effect.gen(function*() {
        const groups = yield* ConsumerGroups
        yield* groups.create({ name: "g1", topic: "t1" })
        yield* publish("t1", 500)
        const seen = new Map<number, number>()
        const all = yield* Deferred.make<void>()
        const member = groups.join("g1", { maxInFlight: 16 }).pipe(
          Stream.runForEach((d) =>
            Effect.flatMap(d.ack, (acked) =>
              Effect.sync(() => {
                expect([acked, d.deliveryCount]).toEqual([true, 1])
                seen.set(d.offset, (seen.get(d.offset) ?? 0) + 1)
                if (seen.size === 500) Deferred.unsafeDone(all, Effect.void)
              }))
          )
        )
        const members = yield* Effect.forEach([1, 2], () => Effect.fork(member))
        yield* Deferred.await(all)
        yield* Fiber.interruptAll(members)
        expect([...seen.keys()].sort((a, b) => a - b)).toEqual(Array.from({ length: 500 }, (_, i) => i))
        expect([...seen.values()].every((n) => n === 1)).toBe(true)
        const info = yield* groups.describe("g1")
        expect(info).toMatchObject({ pending: 0, acked: 500, frontier: 500, redeliveries: 0 })
      }))

    it.effect("a nak'd message comes again with its delivery count raised", () =>
      Effect.gen(function*() {
        const groups = yield* ConsumerGroups
        yield* groups.create({ name: "g2", topic: "t2" })
        yield* publish("t2", 1)
        const [first] = yield* take("g2", 1)
        expect(first!.deliveryCount).toBe(1)
        // A delay a nak cannot have is refused, typed, and settles nothing: the message is still this member's.
        for (const delayMs of [-5, Number.NaN, 1.5, MAX_NAK_DELAY_MS + 1, Number.POSITIVE_INFINITY]) {
          const refused = yield* Effect.flip(first!.nak(delayMs))
          expect(refused).toBeInstanceOf(InvalidNakDelay)
          expect(refused).toMatchObject({ group: "g2", offset: 0 })
          expect(refused.message).toBe(
            `consumer group "g2" (offset 0): a nak's delay is a whole number of milliseconds from 0 to ${MAX_NAK_DELAY_MS}, not ${delayMs}`
          )
        }
        expect(yield* groups.pending("g2")).toMatchObject([{ offset: 0, state: "delivered", deliveries: 1 }])
        expect(yield* first!.nak()).toBe(true)
        const [again] = yield* take("g2", 1)
        expect(again).toMatchObject({ offset: 0, deliveryCount: 2 })
        expect(text(again!.value)).toBe("m-0")
        expect(yield* again!.ack).toBe(true)
        expect(yield* again!.ack).toBe(false)
        // Delivered again because it was nak'd, not because its ackWait ran out.
        expect(yield* groups.describe("g2")).toMatchObject({ pending: 0, redeliveries: 1, expired: 0, acked: 1 })
      }))

    it.effect("a member that leaves hands what it holds to the others at once", () =>
      Effect.gen(function*() {
        const groups = yield* ConsumerGroups
        yield* groups.create({ name: "g3", topic: "t3", ackWaitMs: 3_600_000 })
        yield* publish("t3", 10)
        const held = yield* take("g3", 10)
        expect(held.map((d) => d.offset)).toEqual(Array.from({ length: 10 }, (_, i) => i))
        expect(yield* groups.pending("g3")).toHaveLength(10)
        // Its stream ended: it left, holding all ten. Another member gets them again now, not after the hour.
        const again = yield* take("g3", 10)
        expect(again.map((d) => [d.offset, d.deliveryCount])).toEqual(
          Array.from({ length: 10 }, (_, i) => [i, 2])
        )
        // The first member's acks come too late: the messages are the second's.
        expect(yield* held[0]!.ack).toBe(false)
        expect(yield* again[0]!.ack).toBe(true)
      }))

    it.effect("term and maxDeliver send messages to the dead-letter topic, with headers saying why", () =>
      Effect.gen(function*() {
        const groups = yield* ConsumerGroups
        yield* groups.create({ name: "g4", topic: "t4", deadLetterTopic: "dead", maxDeliver: 2 })
        yield* publish("t4", 2, { keys: 2 })
        const [a, b] = yield* take("g4", 2)
        expect(yield* a!.term("bad input")).toBe(true)
        expect(yield* b!.nak()).toBe(true)
        const [b2] = yield* take("g4", 1)
        expect(b2).toMatchObject({ offset: 1, deliveryCount: 2 })
        // Its second delivery was its last: a nak sends it to the dead letters.
        expect(yield* b2!.nak()).toBe(true)
        const dead = yield* readTopic("dead", 2)
        expect(dead.map((m) => [m.value, m.key, m.headers["cxlog-dead-letter-reason"]])).toEqual([
          ["m-0", "k0", "term: bad input"],
          ["m-1", "k1", "max-deliver: nak'd after 2 deliveries"]
        ])
        expect(dead[1]!.headers).toMatchObject({ "cxlog-group": "g4", "cxlog-offset": "1", "cxlog-deliveries": "2" })
        expect(yield* groups.describe("g4")).toMatchObject({ pending: 0, deadLetters: 2 })
      }))

    it.effect("a message its members keep without settling goes to the dead letters once taken past maxDeliver, saying so", () =>
      Effect.gen(function*() {
        const groups = yield* ConsumerGroups
        yield* groups.create({
          name: "g15",
          topic: "t15",
          deadLetterTopic: "dead15",
          maxDeliver: 2,
          ackWaitMs: 3_600_000
        })
        // With a header of its own, which its dead letter keeps beside the ones saying why.
        const publisher = yield* Publisher
        yield* publisher.publish(new TextEncoder().encode("m-0"), {
          topic: "t15",
          key: "k0",
          headers: { trace: "abc-1" }
        })
        yield* publisher.flush(10_000)
        // Two members in turn take it and leave without settling it: each leave hands it on, counted.
        expect((yield* take("g15", 1)).map((d) => [d.offset, d.deliveryCount])).toEqual([[0, 1]])
        expect((yield* take("g15", 1)).map((d) => [d.offset, d.deliveryCount])).toEqual([[0, 2]])
        // The third member to take it over would deliver it a third time: it writes it to the dead letters instead.
        const third = yield* groups.join("g15", { maxInFlight: 1 }).pipe(
          Stream.runForEach((d) => Effect.die(`delivered a third time: offset ${d.offset}, count ${d.deliveryCount}`)),
          Effect.fork
        )
        // Bounded by the member: one that delivers it again fails, and with it this wait.
        const [dead] = yield* Effect.raceFirst(
          readTopic("dead15", 1),
          Effect.zipRight(Fiber.join(third), Effect.dieMessage("the third member's stream ended"))
        )
        expect([dead!.value, dead!.key]).toEqual(["m-0", "k0"])
        expect(dead!.headers).toMatchObject({
          trace: "abc-1",
          "cxlog-dead-letter-reason": "max-deliver: not acked after 2 deliveries",
          "cxlog-group": "g15",
          "cxlog-topic": "t15",
          "cxlog-offset": "0",
          "cxlog-deliveries": "2"
        })
        // Settled by the dead letter: nothing pending, and the member that wrote it never handed it out.
        // Written, then settled: the count follows the message a moment later (real time; bounded, 10 s).
        let info = yield* groups.describe("g15")
        for (let n = 0; n < 1_000 && info.deadLetters === 0; n++) {
          yield* realSleep(10)
          info = yield* groups.describe("g15")
        }
        expect(info).toMatchObject({ pending: 0, deadLetters: 1, acked: 0 })
        expect(third.unsafePoll()).toBeNull()
        yield* Fiber.interrupt(third)
      }))

    it.effect("a group without a dead-letter topic counts what it terminates and drops it: settled, never delivered again", () =>
      Effect.gen(function*() {
        const groups = yield* ConsumerGroups
        yield* groups.create({ name: "g18", topic: "t18", maxDeliver: 1 })
        yield* publish("t18", 3)
        const [a, b] = yield* take("g18", 2)
        expect(yield* a!.term("bad input")).toBe(true)
        // Its first delivery was its last (maxDeliver 1): a nak drops it the same.
        expect(yield* b!.nak()).toBe(true)
        expect(yield* groups.describe("g18")).toMatchObject({ pending: 0, deadLetters: 2, acked: 0 })
        // The next member gets the third message, not either of those again.
        const [c] = yield* take("g18", 1)
        expect(c).toMatchObject({ offset: 2, deliveryCount: 1 })
        expect(yield* c!.ack).toBe(true)
      }))

    it.effect("a term reason of any text is kept to its first 1 000 characters and 3 000 bytes of JSON; the member goes on", () =>
      Effect.gen(function*() {
        const groups = yield* ConsumerGroups
        yield* groups.create({ name: "g12", topic: "t12", deadLetterTopic: "dead12", ackWaitMs: 3_600_000 })
        yield* publish("t12", 3)
        const [a, b, c] = yield* take("g12", 3)
        // Through a broker a control character takes six bytes of the settle request's 4 KiB.
        const controls = "\u0001".repeat(1_000)
        const emoji = "x" + "😀".repeat(600)
        expect(yield* a!.term(controls)).toBe(true)
        expect(yield* b!.term(emoji)).toBe(true)
        expect(yield* c!.ack).toBe(true)
        const reasons = (yield* readTopic("dead12", 2)).map((m) => m.headers["cxlog-dead-letter-reason"]!)
        // As JSON, 499 control characters take 2 + 6 × 499 = 2 996 bytes; 999 UTF-16 units, no emoji cut in half.
        expect(reasons).toEqual([`term: ${"\u0001".repeat(499)}`, `term: x${"😀".repeat(499)}`])
        expect(yield* groups.describe("g12")).toMatchObject({ pending: 0, deadLetters: 2 })
      }))

    it.effect("a message held past ackWait goes to another member; inProgress moves the deadline (virtual time)", () =>
      Effect.gen(function*() {
        const groups = yield* ConsumerGroups
        yield* groups.create({ name: "g5", topic: "t5", ackWaitMs: 10_000 })
        yield* publish("t5", 2)
        const got = yield* Deferred.make<ReadonlyArray<Delivery>>()
        const holder = yield* groups.join("g5", { maxInFlight: 2 }).pipe(
          Stream.grouped(2),
          Stream.runForEach((held) => Effect.zipRight(Deferred.succeed(got, Chunk.toArray(held)), Effect.never)),
          Effect.fork
        )
        const [first, second] = yield* Deferred.await(got)
        yield* TestClock.adjust("6 seconds")
        expect(yield* second!.inProgress).toBe(true)
        expect((yield* groups.pending("g5")).map((p) => p.deadlineMs)).toEqual([10_000, 16_000])
        // The one member holds both (their age is the nak test's: here they were delivered at 0, which reads as never).
        expect(yield* groups.describe("g5")).toMatchObject({ pending: 2, members: [{ maxInFlight: 2, pending: 2 }] })
        yield* TestClock.adjust("5 seconds")
        // The first is past its deadline, the second not: a new member gets the first only.
        const [again] = yield* take("g5", 1)
        expect(again).toMatchObject({ offset: 0, deliveryCount: 2 })
        // Delivered again with a full ackWait of its own from now (11 s): due at 21 s, the second still at 16 s.
        expect((yield* groups.pending("g5")).map((p) => [p.offset, p.deliveries, p.deadlineMs])).toEqual([
          [0, 2, 21_000],
          [1, 1, 16_000]
        ])
        // Settled by the member that took it over first: a member through a broker takes what it has room for
        // without waiting for its stream's pull, so the first holder, its room freed by the stale ack, would take it back.
        expect(yield* again!.ack).toBe(true)
        // Taken over: the first holder can no longer move its deadline, nor settle it.
        expect(yield* first!.inProgress).toBe(false)
        expect(yield* first!.ack).toBe(false)
        expect(yield* second!.ack).toBe(true)
        expect(yield* groups.describe("g5")).toMatchObject({ pending: 0, expired: 1, redeliveries: 1, acked: 2 })
        yield* Fiber.interrupt(holder)
      }))

    it.effect("ackAll settles as each one's ack would: an outcome each, in order, counted once; the room comes back", () =>
      Effect.gen(function*() {
        const groups = yield* ConsumerGroups
        yield* groups.create({ name: "g11", topic: "t11", ackWaitMs: 10_000 })
        yield* publish("t11", 6)
        // A holder with room for 4 takes 4 and pulls no more; the first is held past ackWait, the others renewed.
        const got = yield* Deferred.make<ReadonlyArray<Delivery>>()
        const holder = yield* groups.join("g11", { maxInFlight: 4 }).pipe(
          Stream.grouped(4),
          Stream.runForEach((held) => Effect.zipRight(Deferred.succeed(got, Chunk.toArray(held)), Effect.never)),
          Effect.fork
        )
        const held = yield* Deferred.await(got)
        expect(held.map((d) => d.offset)).toEqual([0, 1, 2, 3])
        yield* TestClock.adjust("6 seconds")
        for (const d of held.slice(1)) expect(yield* d.inProgress).toBe(true)
        yield* TestClock.adjust("5 seconds")
        const [again] = yield* take("g11", 1)
        expect(again).toMatchObject({ offset: 0, deliveryCount: 2 })
        // Two members' deliveries mixed: the one taken over answers false, the others settle. The member that
        // took it over acks first: through a broker, a holder with room would take the message back from it.
        expect(yield* ackAll([again!, held[0]!, held[1]!, held[2]!])).toEqual([true, false, true, true])
        expect(yield* ackAll([held[1]!, held[3]!])).toEqual([false, true])
        expect(yield* groups.describe("g11")).toMatchObject({ acked: 4, expired: 1, redeliveries: 1 })
        yield* Fiber.interrupt(holder)
        // Room for one message at a time: the second comes only once ackAll gave the first's room back.
        const rest = yield* groups.join("g11", { maxInFlight: 1 }).pipe(
          Stream.mapChunksEffect((chunk) => Effect.as(ackAll(chunk), chunk)),
          Stream.take(2),
          Stream.runCollect
        )
        expect(Chunk.toArray(rest).map((d) => d.offset).sort()).toEqual([4, 5])
        expect(yield* groups.describe("g11")).toMatchObject({ acked: 6, pending: 0 })
      }))

    it.effect("a nak with a delay parks the message, no member's, until the delay passed; then it comes again (virtual time)", () =>
      Effect.gen(function*() {
        const groups = yield* ConsumerGroups
        yield* groups.create({ name: "g16", topic: "t16" })
        yield* publish("t16", 1)
        // The block's tests share one virtual clock, where the ones before this left it; not at 0,
        // which a first delivery's time reads as never (run alone, this test would start there).
        yield* TestClock.adjust("1 second")
        const [first] = yield* take("g16", 1)
        const now = yield* Clock.currentTimeMillis
        expect(yield* first!.nak(5_000)).toBe(true)
        // Due 5 s from now: not at once, as a nak without a delay is.
        expect(yield* groups.pending("g16")).toMatchObject([
          { offset: 0, state: "waiting", memberPid: undefined, deliveries: 1, deadlineMs: now + 5_000 }
        ])
        yield* TestClock.adjust("5 seconds")
        // Parked, it is still pending, its age counted from its first delivery.
        expect(yield* groups.describe("g16")).toMatchObject({ pending: 1, oldestPendingAgeMs: 5_000, members: [] })
        const [again] = yield* take("g16", 1)
        expect(again).toMatchObject({ offset: 0, deliveryCount: 2 })
        // Delivered again, it keeps the time of its first delivery: `groups pending` and the age count from then.
        expect(yield* groups.pending("g16")).toMatchObject([{ offset: 0, deliveries: 2, firstDeliveredAtMs: now }])
        expect(yield* groups.describe("g16")).toMatchObject({ oldestPendingAgeMs: 5_000 })
        expect(yield* again!.ack).toBe(true)
        expect(yield* groups.describe("g16")).toMatchObject({ pending: 0, redeliveries: 1, expired: 0, acked: 1 })
      }))

    it.effect("a term of a message taken over past its ackWait answers false and writes no dead letter (virtual time)", () =>
      Effect.gen(function*() {
        const groups = yield* ConsumerGroups
        yield* groups.create({ name: "g21", topic: "t21", deadLetterTopic: "dead21", ackWaitMs: 10_000 })
        yield* publish("t21", 1)
        const got = yield* Deferred.make<Delivery>()
        const holder = yield* groups.join("g21", { maxInFlight: 1 }).pipe(
          Stream.runForEach((d) => Effect.zipRight(Deferred.succeed(got, d), Effect.never)),
          Effect.fork
        )
        const first = yield* Deferred.await(got)
        yield* TestClock.adjust("11 seconds")
        const [again] = yield* take("g21", 1)
        expect(again).toMatchObject({ offset: 0, deliveryCount: 2 })
        // The holder leaves first: through a broker, a member with room takes what it may at once, and the
        // room its stale term frees would take the message back from the member that left with it.
        yield* Fiber.interrupt(holder)
        // The first holder's term comes too late: the message is the other member's, nothing is written.
        expect(yield* first.term("late")).toBe(false)
        expect(yield* again!.term("on time")).toBe(true)
        // The topic's first dead letter is the second member's.
        const dead = yield* readTopic("dead21", 1)
        expect(dead.map((m) => [m.headers["cxlog-dead-letter-reason"], m.headers["cxlog-deliveries"]])).toEqual([
          ["term: on time", "2"]
        ])
        expect(yield* groups.describe("g21")).toMatchObject({ pending: 0, deadLetters: 1 })
      }))

    it.effect("a group behind its topic's retention fails naming the offsets, and skips nothing", () =>
      Effect.gen(function*() {
        const groups = yield* ConsumerGroups
        yield* groups.create({ name: "g6", topic: "t6" })
        yield* publish("t6", 10)
        yield* (yield* TrimTopic)("t6", 5)
        const behind = yield* Effect.flip(take("g6", 1))
        expect(behind).toBeInstanceOf(GroupBehindRetention)
        expect(behind).toMatchObject({ group: "g6", topic: "t6", requested: 0, earliest: 5, end: 10 })
        expect(yield* groups.describe("g6")).toMatchObject({
          frontier: 0,
          pending: 0,
          members: [],
          behindRetention: { needs: 0, earliest: 5 }
        })
        // A group that is not behind says nothing of it.
        yield* groups.create({ name: "g6b", topic: "t6", start: "latest" })
        expect((yield* groups.describe("g6b")).behindRetention).toBeUndefined()
      }))

    it.effect("a trim inside a batch a member read drops the messages before the cut for the group too: none handed out", () =>
      Effect.gen(function*() {
        // One batch: the member that took its first three has it at hand for the rest.
        const { ended, got } = yield* memberThroughTrimInBatch("g25", "t25")
        expect(ended).toBeInstanceOf(GroupBehindRetention)
        expect(ended).toMatchObject({ group: "g25", topic: "t25", requested: 3, earliest: 5, end: 10 })
        expect(got.map((d) => d.offset)).toEqual([0, 1, 2])
        expect(yield* (yield* ConsumerGroups).describe("g25")).toMatchObject({
          behindRetention: { needs: 3, earliest: 5 }
        })
      }))

    it.effect("byKey, a trim inside the batch a member reads drops the messages before the cut for the group too", () =>
      Effect.gen(function*() {
        // One batch of one key: the member that took its first three stops in it, its place kept.
        const { ended, got } = yield* memberThroughTrimInBatch("g26", "t26", 1)
        expect(ended).toBeInstanceOf(GroupBehindRetention)
        expect(ended).toMatchObject({ group: "g26", topic: "t26", requested: 3, earliest: 5, end: 10 })
        expect(got.map((d) => d.offset)).toEqual([0, 1, 2])
      }))

    it.effect("a message to deliver again that the topic no longer holds fails the next member naming it: not skipped", () =>
      Effect.gen(function*() {
        const groups = yield* ConsumerGroups
        yield* groups.create({ name: "g19", topic: "t19", ackWaitMs: 3_600_000 })
        yield* publish("t19", 10)
        // A holds offset 0 while B takes and acks the other nine: the frontier is at the end.
        const got = yield* Deferred.make<Delivery>()
        const holder = yield* groups.join("g19", { maxInFlight: 1 }).pipe(
          Stream.runForEach((d) => Effect.zipRight(Deferred.succeed(got, d), Effect.never)),
          Effect.fork
        )
        expect((yield* Deferred.await(got)).offset).toBe(0)
        for (const d of yield* take("g19", 9)) expect(yield* d.ack).toBe(true)
        yield* (yield* TrimTopic)("t19", 5)
        // A leaves: offset 0 is to be delivered again, and the topic holds it no more.
        yield* Fiber.interrupt(holder)
        // Bounded in real time: a member that skipped it would wait for ever.
        const behind = yield* Effect.flip(
          Effect.raceFirst(
            take("g19", 1),
            Effect.zipRight(realSleep(20_000), Effect.dieMessage("the member neither failed nor got a message"))
          )
        )
        expect(behind).toBeInstanceOf(GroupBehindRetention)
        expect(behind).toMatchObject({ group: "g19", topic: "t19", requested: 0, earliest: 5, end: 10 })
        expect(yield* groups.describe("g19")).toMatchObject({ behindRetention: { needs: 0, earliest: 5 } })
      }))

    it.effect("a member that read less far than the group's frontier goes on from the frontier after a trim below it", () =>
      Effect.gen(function*() {
        const groups = yield* ConsumerGroups
        yield* groups.create({ name: "g22", topic: "t22", ackWaitMs: 3_600_000 })
        // A batch a message: a member reads no more batches than its window needs.
        for (let i = 0; i < 20; i++) yield* publish("t22", 1, { prefix: `m${i}` })
        // A holds offset 0, having read its batch alone, while B takes and acks the next ten: the frontier is at 11.
        const first = yield* Deferred.make<Delivery>()
        const second = yield* Deferred.make<Delivery>()
        const holder = yield* groups.join("g22", { maxInFlight: 1 }).pipe(
          Stream.runForEach((d) => Deferred.succeed(d.offset === 0 ? first : second, d)),
          Effect.fork
        )
        const held = yield* Deferred.await(first)
        for (const d of yield* take("g22", 10)) expect(yield* d.ack).toBe(true)
        // Past where A read, short of the frontier: the group needs nothing the trim dropped.
        yield* (yield* TrimTopic)("t22", 5)
        expect(yield* held.ack).toBe(true)
        // A reads on from the frontier; bounded in real time by A failing, or by 20 s.
        const next = yield* Effect.raceFirst(
          Deferred.await(second),
          Effect.zipRight(
            Effect.raceFirst(Fiber.join(holder), realSleep(20_000)),
            Effect.dieMessage("the member got nothing")
          )
        )
        expect([next.offset, text(next.value)]).toEqual([11, "m11-0"])
        expect((yield* groups.describe("g22")).behindRetention).toBeUndefined()
      }))

    it.effect("a topic deleted and made again under its group: its members fail GroupTopicGone, never reading the new one", () =>
      Effect.gen(function*() {
        const groups = yield* ConsumerGroups
        yield* groups.create({ name: "g23", topic: "t23", ackWaitMs: 3_600_000 })
        yield* publish("t23", 5, { prefix: "old" })
        // A holds offsets 0 to 2, B 3 and 4: with no room, B reads nothing of the topic until it acks.
        const holding = (maxInFlight: number, got: Array<Delivery>, full: Deferred.Deferred<void>) =>
          groups.join("g23", { maxInFlight }).pipe(
            Stream.runForEach((d) =>
              Effect.suspend(() => got.push(d) === maxInFlight ? Deferred.succeed(full, undefined) : Effect.void)
            ),
            Effect.fork
          )
        const [aFull, bFull] = [yield* Deferred.make<void>(), yield* Deferred.make<void>()]
        const a = yield* holding(3, [], aFull)
        yield* Deferred.await(aFull)
        const gotB: Array<Delivery> = []
        const b = yield* holding(2, gotB, bFull)
        yield* Deferred.await(bFull)
        yield* (yield* RecreateTopic)("t23")
        // The publisher's session of the deleted topic fails a first call; the next opens one of the new topic.
        yield* Effect.either(publish("t23", 1, { prefix: "probe" }))
        yield* publish("t23", 5, { prefix: "new" })
        // A leaves: its offsets 0 to 2 are to be delivered again, and the topic of the name holds other messages there.
        yield* Fiber.interrupt(a)
        // A window for B's looks (every CHECK_EVERY_MS while it has no room) to find them before its room comes back.
        yield* realSleep(10 * CHECK_EVERY_MS)
        // Its outcome is not the point: B, holding all it may, may have been told at a look already.
        yield* gotB[0]!.ack
        const gone = yield* Effect.flip(
          Effect.raceFirst(
            Fiber.join(b),
            Effect.zipRight(
              realSleep(20_000),
              Effect.suspend(() =>
                Effect.dieMessage(
                  `the member did not fail; it got ${
                    gotB.map((d) => `${d.offset} ${text(d.value)} #${d.deliveryCount}`)
                  }`
                )
              )
            )
          )
        )
        expect(gone).toBeInstanceOf(GroupTopicGone)
        expect(gone).toMatchObject({ group: "g23", topic: "t23" })
        expect(gotB.map((d) => [d.offset, text(d.value), d.deliveryCount])).toEqual([[3, "old-3", 1], [4, "old-4", 1]])
        expect(yield* groups.describe("g23")).toMatchObject({ topicGone: true })
      }))

    it.effect("a member holding all it may is told GroupTopicGone at its next look once its topic is deleted", () =>
      Effect.gen(function*() {
        const groups = yield* ConsumerGroups
        yield* groups.create({ name: "g24", topic: "t24", ackWaitMs: 3_600_000 })
        yield* publish("t24", 3)
        const full = yield* Deferred.make<void>()
        let held = 0
        const member = yield* groups.join("g24", { maxInFlight: 2 }).pipe(
          Stream.runForEach(() => Effect.suspend(() => ++held === 2 ? Deferred.succeed(full, undefined) : Effect.void)),
          Effect.fork
        )
        yield* Deferred.await(full)
        // With no room the member reads nothing of the topic: only its look can find the topic gone.
        yield* (yield* RecreateTopic)("t24")
        const gone = yield* Effect.flip(
          Effect.raceFirst(
            Fiber.join(member),
            Effect.zipRight(realSleep(20_000), Effect.dieMessage("the member was not told its topic is gone"))
          )
        )
        expect(gone).toBeInstanceOf(GroupTopicGone)
        expect(gone).toMatchObject({ group: "g24", topic: "t24" })
      }))

    it.effect("byKey: each key's messages come in offset order, one member at a time, as members join", () =>
      Effect.gen(function*() {
        const groups = yield* ConsumerGroups
        yield* groups.create({ name: "g7", topic: "t7", byKey: true })
        yield* publish("t7", 600, { keys: 12 })
        // Per key, in the order processed (across members), and per member; and who holds each key now.
        const order = new Map<string, Array<number>>()
        const byMember = new Map<number, Map<string, Array<number>>>()
        const holders = new Map<string, Map<number, number>>()
        const overlaps: Array<string> = []
        const all = yield* Deferred.make<void>()
        let acked = 0
        // Each member works on four messages at once, a few ms each, so it pulls (and looks at its share
        // of the keys) while it holds messages: a key it hands back must wait until they are settled.
        const member = (id: number) =>
          groups.join("g7", { maxInFlight: 8 }).pipe(
            Stream.mapEffect((d) =>
              Effect.gen(function*() {
                const key = text(d.key!)
                const held = holders.get(key) ?? new Map<number, number>()
                holders.set(key, held)
                if ([...held].some(([other, n]) => other !== id && n > 0)) overlaps.push(`${key}@${d.offset}`)
                held.set(id, (held.get(id) ?? 0) + 1)
                order.set(key, [...(order.get(key) ?? []), d.offset])
                const mine = byMember.get(id) ?? new Map<string, Array<number>>()
                byMember.set(id, mine.set(key, [...(mine.get(key) ?? []), d.offset]))
                yield* work
                held.set(id, held.get(id)! - 1)
                expect(yield* d.ack).toBe(true)
                if (++acked === 600) Deferred.unsafeDone(all, Effect.void)
              }), { concurrency: 4 }),
            Stream.runDrain,
            Effect.fork
          )
        const members = [yield* member(1), yield* member(2), yield* member(3)]
        yield* Deferred.await(all)
        yield* Fiber.interruptAll(members)
        const increasing = (offsets: ReadonlyArray<number>) => offsets.every((o, i) => i === 0 || o > offsets[i - 1]!)
        for (const [key, offsets] of order) {
          expect(offsets, key).toHaveLength(50)
          expect(increasing(offsets), `key ${key}: ${offsets}`).toBe(true)
        }
        for (const mine of byMember.values()) {
          for (const offsets of mine.values()) expect(increasing(offsets)).toBe(true)
        }
        // The keys moved between members as they joined, never held by two at once, their order kept.
        expect(byMember.size).toBeGreaterThan(1)
        expect(overlaps).toEqual([])
      }))

    it.effect("a slow member holding its one message does not hold back a fast one", () =>
      Effect.gen(function*() {
        const groups = yield* ConsumerGroups
        yield* groups.create({ name: "g8", topic: "t8" })
        yield* publish("t8", 200)
        const stuck = yield* Deferred.make<Delivery>()
        const slow = yield* groups.join("g8", { maxInFlight: 1 }).pipe(
          Stream.runForEach((d) => Effect.zipRight(Deferred.succeed(stuck, d), Effect.never)),
          Effect.fork
        )
        const held = yield* Deferred.await(stuck)
        const fast = yield* groups.join("g8", { maxInFlight: 32 }).pipe(
          Stream.mapEffect((d) => Effect.as(d.ack, d.offset)),
          Stream.take(199),
          Stream.runCollect
        )
        expect([...Chunk.toArray(fast), held.offset].sort((a, b) => a - b)).toEqual(
          Array.from({ length: 200 }, (_, i) => i)
        )
        expect(yield* groups.pending("g8")).toMatchObject([{ offset: held.offset, state: "delivered", deliveries: 1 }])
        yield* Fiber.interrupt(slow)
      }))

    it.effect("a member takes its whole window at once, however small the topic's batches", () =>
      Effect.gen(function*() {
        const groups = yield* ConsumerGroups
        yield* groups.create({ name: "g10", topic: "t10" })
        // Each message acknowledged before the next is published: a batch of its own.
        for (let i = 0; i < 12; i++) yield* publish("t10", 1, { prefix: `m${i}` })
        const heldAtFirst = yield* Deferred.make<number>()
        const member = yield* groups.join("g10", { maxInFlight: 8 }).pipe(
          Stream.runForEach(() =>
            Effect.flatMap(groups.pending("g10"), (p) => Deferred.succeed(heldAtFirst, p.length))
          ),
          Effect.fork
        )
        // By its first delivery the member claimed its eight, across eight batches.
        expect(yield* Deferred.await(heldAtFirst)).toBe(8)
        yield* Fiber.interrupt(member)
      }))

    it.effect("a group holds its topic's retention: the publisher waits for it, nothing is lost; deleted, it holds nothing", () =>
      Effect.gen(function*() {
        const groups = yield* ConsumerGroups
        // Forty times what the live region's topics hold and twice the fake's: the topic's oldest messages must go, or wait.
        const messages = 40_000
        yield* groups.create({ name: "g13", topic: "t13" })
        expect(yield* groups.describe("g13")).toMatchObject({ heldFrom: 0, holdCutOff: false })
        const publishing = yield* Effect.fork(publishKiB("t13", 0, messages))
        // Nobody reads yet: the group's hold at its start makes the publisher wait once the topic is full.
        yield* doneOrWaiting("t13", publishing)
        const seen: Array<number> = []
        yield* groups.join("g13", { maxInFlight: 64 }).pipe(
          Stream.take(messages),
          Stream.runForEachChunk((chunk) =>
            Effect.map(ackAll(chunk), (acked) => {
              expect(acked.every((ok) => ok)).toBe(true)
              for (const d of chunk) seen.push(Number.parseInt(text(d.value), 10))
            })
          )
        )
        yield* Fiber.join(publishing)
        expect(seen).toEqual(Array.from({ length: messages }, (_, i) => i))
        // The member kept the hold where the group stands as it went: at the end, holding nothing it still needs.
        const info = yield* groups.describe("g13")
        expect(info).toMatchObject({ frontier: messages, pending: 0, acked: messages, holdCutOff: false })
        expect(info.heldFrom).toBeGreaterThan(0)
        // Deleted, the group holds nothing: as much again goes through with nobody reading (a hold left
        // behind would keep the publisher waiting for the writer's 30 s bound).
        yield* groups.delete("g13")
        yield* Effect.raceFirst(
          publishKiB("t13", messages, messages),
          Effect.zipRight(realSleep(20_000), Effect.dieMessage("the publisher still waits on a deleted group's hold"))
        )
      }))

    it.effect("byKey, a group holds its topic the same: the publisher waits, each key's messages come in order, none lost", () =>
      Effect.gen(function*() {
        const groups = yield* ConsumerGroups
        const messages = 40_000
        yield* groups.create({ name: "g14", topic: "t14", byKey: true })
        const publishing = yield* Effect.fork(publishKiB("t14", 0, messages, 50))
        yield* doneOrWaiting("t14", publishing)
        const byKey = new Map<string, Array<number>>()
        yield* groups.join("g14", { maxInFlight: 64 }).pipe(
          Stream.take(messages),
          Stream.runForEachChunk((chunk) =>
            Effect.map(ackAll(chunk), () => {
              for (const d of chunk) {
                const key = text(d.key!)
                byKey.set(key, [...(byKey.get(key) ?? []), Number.parseInt(text(d.value), 10)])
              }
            })
          )
        )
        yield* Fiber.join(publishing)
        expect(byKey.size).toBe(50)
        for (const [key, seen] of byKey) {
          const k = Number(key.slice(1))
          expect(seen).toEqual(Array.from({ length: messages / 50 }, (_, i) => k + 50 * i))
        }
        expect(yield* groups.describe("g14")).toMatchObject({ pending: 0, acked: messages, holdCutOff: false })
      }))

    it.effect("a group starts at an offset, or at the first message stamped at or after a time", () =>
      Effect.gen(function*() {
        const groups = yield* ConsumerGroups
        yield* publish("t17", 2, { prefix: "early" })
        // Later stamps for the next two, whichever clock the publisher stamps with (the block's virtual one, or the real one).
        yield* TestClock.adjust("1 second")
        yield* realSleep(5)
        yield* publish("t17", 2, { prefix: "late" })
        yield* groups.create({ name: "g17-all", topic: "t17" })
        const stamps = (yield* take("g17-all", 4)).map((d) => d.timestamp)
        expect(stamps[2]).toBeGreaterThan(stamps[1]!)
        const first = (group: string) => Effect.map(take(group, 1), ([d]) => [d!.offset, text(d!.value)])
        expect(yield* groups.create({ name: "g17-offset", topic: "t17", start: { offset: 1 } })).toMatchObject({
          startOffset: 1,
          frontier: 1,
          lag: 3
        })
        expect(yield* first("g17-offset")).toEqual([1, "early-1"])
        expect(yield* groups.create({ name: "g17-time", topic: "t17", start: { time: stamps[2]! } })).toMatchObject({
          startOffset: 2,
          frontier: 2,
          lag: 2
        })
        expect(yield* first("g17-time")).toEqual([2, "late-0"])
      }))

    it.effect("full tables and a deleted group are typed errors", () =>
      Effect.gen(function*() {
        const groups = yield* ConsumerGroups
        yield* groups.create({ name: "g9", topic: "t9", memberSlots: 1, pendingSlots: 4 })
        yield* publish("t9", 2)
        const tooMany = yield* Effect.flip(take("g9", 1, 8))
        expect(tooMany).toBeInstanceOf(GroupPendingFull)
        const first = yield* Deferred.make<Delivery>()
        const member = yield* groups.join("g9", { maxInFlight: 1 }).pipe(
          Stream.runForEach((d) => Effect.zipRight(Deferred.succeed(first, d), d.ack)),
          Effect.fork
        )
        yield* Deferred.await(first)
        expect(yield* Effect.flip(take("g9", 1, 1))).toBeInstanceOf(GroupMembersFull)
        yield* groups.delete("g9")
        // The member's next look finds its group gone.
        expect(yield* Effect.flip(Fiber.join(member))).toBeInstanceOf(GroupDeleted)
        expect(yield* Effect.flip(take("g9", 1))).toBeInstanceOf(GroupNotFound)
      }))
  })

/** The first `n` messages of `topic`: value and key as text, headers by name. */
const readTopic = (topic: string, n: number) =>
  Effect.scoped(Effect.gen(function*() {
    const cursor = yield* (yield* LogReader).subscribe(topic, { from: "earliest" })
    const found: Array<{ value: string; key: string | undefined; headers: Record<string, string> }> = []
    while (found.length < n) {
      yield* cursor.awaitMore(10_000)
      yield* cursor.pollBatches((batch) => {
        const payload = batch.bytes.slice(batch.offset, batch.offset + batch.length)
        expect(checkBatchPayload(payload, batch.messageCount)).toBeUndefined()
        forEachMessage(payload, batch.messageCount, (m) =>
          found.push({
            value: text(m.payload),
            key: m.key === undefined ? undefined : text(m.key),
            headers: Object.fromEntries((m.headers ?? []).map((h) => [h.name, text(h.value)]))
          }))
      })
    }
    return found
  }))

contract("consumer groups over the fake", memoryGroups(TOPICS))
// Each topic written takes 10 MiB of the region's heap: the block's topics take more than the harness's 256 MiB leave.
contract("consumer groups over a live region", regionGroups(TOPICS, { CXLOG_HEAP_BYTES: `${384 << 20}` }))
contract("consumer groups through a broker", remoteGroups(TOPICS))
