/**
 * Subscriber contract: the same behaviour from the local layer (the region read in place), the
 * in-memory fake, and the remote layer (a broker streaming over TCP, over the native region
 * and over the memory log).
 */
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Fiber, Metric, Option, Schedule, type Scope, Stream } from "effect"
import * as BrokerLayers from "../../src/layers/net/Broker.js"
import { subscriberOver } from "../../src/layers/net/Subscriber.js"
import * as SubscriberMemoryLayers from "../../src/layers/net/SubscriberMemory.js"
import { makeRemote } from "../../src/layers/net/SubscriberRemote.js"
import * as CxlMemoryLayers from "../../src/layers/region/CxlMemory.js"
import { logConsumerCutOffs } from "../../src/Metrics.js"
import { AckTracker } from "../../src/services/log/AckTracker.js"
import { Appender } from "../../src/services/log/Appender.js"
import { Consumers, type ConsumersShape } from "../../src/services/log/Consumers.js"
import { LogReader } from "../../src/services/log/LogReader.js"
import { Topics } from "../../src/services/log/Topics.js"
import type {
  SubscribeOptions,
  SubscriberBatch,
  SubscriberMessage,
  SubscriberShape,
  Subscription
} from "../../src/services/net/Subscriber.js"
import {
  appendMessages,
  consumersOf,
  drain,
  header,
  type LogCluster,
  makeMessageBatch,
  memoryCluster,
  messageTime,
  regionCluster,
  smallConfig
} from "../fixtures/log-harness.js"

const spec = { name: "t", order: 5 as const, ackLevel: 1 as const, replicationFactor: 1 }

interface Options {
  /** Remote: DATA frames the broker may send ahead. */
  readonly credit?: number
}

interface Impl {
  readonly label: string
  readonly make: (
    options?: Options
  ) => Effect.Effect<
    { cluster: LogCluster; subscriber: SubscriberShape; consumers: ConsumersShape },
    unknown,
    Scope.Scope
  >
  readonly zeroCopyOfRegion: boolean
}

const local = (cluster: LogCluster) =>
  Effect.map(
    consumersOf(cluster),
    (consumers) => ({ cluster, consumers, subscriber: subscriberOver(cluster.reader, consumers, cluster.topics) })
  )

/** A broker (slot 3) over the cluster's log, and a remote subscriber talking to it. */
const remote = (cluster: LogCluster, options: Options) =>
  Effect.gen(function*() {
    const appender = yield* cluster.appender(3, { registered: false })
    const consumers = yield* consumersOf(cluster)
    const broker = yield* BrokerLayers.make({ insecure: true }).pipe(
      Effect.provideService(Appender, appender),
      Effect.provideService(AckTracker, cluster.acks),
      Effect.provideService(Topics, cluster.topics),
      Effect.provideService(LogReader, cluster.reader),
      Effect.provideService(Consumers, consumers)
    )
    const subscriber = makeRemote({
      brokers: [{ host: "127.0.0.1", port: broker.port }],
      ...(options.credit === undefined ? {} : { credit: options.credit })
    })
    return { cluster, consumers, subscriber }
  })

const impls: ReadonlyArray<Impl> = [
  {
    label: "layer (native region)",
    zeroCopyOfRegion: true,
    make: () => Effect.flatMap(regionCluster(CxlMemoryLayers.make)(), local)
  },
  {
    label: "layerMemory",
    zeroCopyOfRegion: false,
    make: () =>
      Effect.gen(function*() {
        const cluster = yield* memoryCluster()
        return {
          cluster,
          consumers: yield* consumersOf(cluster),
          subscriber: yield* SubscriberMemoryLayers.makeMemory(cluster.store!)
        }
      })
  },
  {
    label: "layerRemote (a broker over the native region)",
    zeroCopyOfRegion: false,
    make: (options = {}) => Effect.flatMap(regionCluster(CxlMemoryLayers.make)(), (cluster) => remote(cluster, options))
  },
  {
    label: "layerRemote (a broker over the memory log)",
    zeroCopyOfRegion: false,
    make: (options = {}) => Effect.flatMap(memoryCluster(), (cluster) => remote(cluster, options))
  }
]

/** Pulls one batch at a time, as the contract asks (each valid until the next pull). */
const puller = (subscription: Subscription) =>
  Effect.map(Stream.toPull(subscription.batches), (pull) =>
    pull.pipe(
      Effect.map((chunk) => {
        expect(Chunk.size(chunk)).toBe(1)
        return Chunk.unsafeHead(chunk)
      }),
      Effect.catchAll((e) => (Option.isSome(e) ? Effect.fail(e.value) : Effect.dieMessage("the stream ended")))
    ))

/** Waits (every 5 ms, at most 5 s) until the named consumer's committed offset on `topic` is `offset`. */
const committedOf = (consumers: ConsumersShape, topic: string, name: string, offset: number) =>
  consumers.list(topic).pipe(
    Effect.repeat({
      until: (list) => list.some((c) => c.name === name && c.committed === offset),
      schedule: Schedule.spaced("5 millis")
    }),
    Effect.timeoutFail({
      duration: "5 seconds",
      onTimeout: () => new Error(`consumer ${name} of ${topic} did not commit ${offset} within 5 s`)
    })
  )

/** The bytes `appendSimple` gives message i of batch `seq` (a pattern of the batch, the message and the byte). */
const expectedPayload = (seq: number, i: number) =>
  Uint8Array.from({ length: 8 + i }, (_, k) => (seq * 31 + i * 7 + k) & 0xff)

/** Message i of batch `seq` carries a key when i % 3 is 1, two headers when it is 2, neither when 0. */
const partsOf = (seq: number) => (i: number) =>
  i % 3 === 1
    ? { key: `k${seq}.${i}` }
    : i % 3 === 2
    ? { headers: [["trace", `t${seq}.${i}`], ["raw", Uint8Array.of(0, 255, i)]] as const }
    : undefined

/** Batch `seq` of `count` messages as a publisher builds it (values as `expectedPayload`, parts as `partsOf`). */
const appendSimple = (
  appender: Parameters<typeof appendMessages>[0],
  topic: string,
  clientId: number,
  sessionEpoch: number,
  seq: number,
  count = 2
) => appendMessages(appender, topic, clientId, sessionEpoch, seq, count, partsOf(seq))

/** Small bounds for the cut-off tests: a consumer holding appends 200 ms is cut off; an append gives up only after 10 s. */
const HOLD_MS = 200
const PATIENT_MS = 10_000

const cutOffs = Effect.map(Metric.value(logConsumerCutOffs), (state) => state.count)

/** Appends batches `from … to` (2 messages each) of client 1, ordering every 16. */
const appendRange = (
  a: Parameters<typeof appendMessages>[0],
  sequencer: Parameters<typeof drain>[0],
  from: number,
  to: number
) =>
  Effect.gen(function*() {
    for (let seq = from; seq <= to; seq++) {
      yield* appendSimple(a, "t", 1, 0, seq)
      if (seq % 16 === 0) yield* drain(sequencer)
    }
    yield* drain(sequencer)
  })

const text = (bytes: Uint8Array | undefined) => (bytes === undefined ? undefined : new TextDecoder().decode(bytes))

const viewOf = (m: SubscriberMessage) => ({
  offset: m.offset,
  timestamp: m.timestamp,
  key: text(m.key),
  headers: m.headers?.map((h) => [h.name, Array.from(h.value)]),
  payload: Array.from(m.payload),
  // The value where it lies is the same bytes (loops that take no view per message read it there).
  value: Array.from(m.bytes.subarray(m.valueOffset, m.valueOffset + m.valueLength))
})

const messagesOf = (batch: SubscriberBatch) => {
  const out: Array<ReturnType<typeof viewOf>> = []
  batch.forEach((m) => out.push(viewOf(m)))
  return out
}

/** What message i of batch `seq` (at `offset`) reads as. */
const expectedMessage = (seq: number, i: number, offset: number) => ({
  offset,
  timestamp: messageTime(seq, i),
  key: i % 3 === 1 ? `k${seq}.${i}` : undefined,
  headers: i % 3 === 2
    ? [["trace", Array.from(new TextEncoder().encode(`t${seq}.${i}`))], ["raw", [0, 255, i]]]
    : undefined,
  payload: Array.from(expectedPayload(seq, i)),
  value: Array.from(expectedPayload(seq, i))
})

for (const impl of impls) {
  describe(`Subscriber contract: ${impl.label}`, () => {
    it.scopedLive("streams every message in order from the earliest, as views of the stored batch; copy() keeps one", () =>
      Effect.gen(function*() {
        const { cluster, subscriber } = yield* impl.make()
        yield* cluster.topics.create(spec)
        const a = yield* cluster.appender(0)
        for (let seq = 0; seq < 5; seq++) yield* appendSimple(a, "t", 4, 1, seq, 3)
        yield* drain(yield* cluster.sequencer())
        const subscription = yield* subscriber.subscribe("t")
        expect(subscription.start).toBe(0)
        const next = yield* puller(subscription)
        const first = yield* next
        expect([first.offset, first.count, first.clientId, first.sessionEpoch]).toEqual([0, 3, 4, 1])
        expect(messagesOf(first)).toEqual([0, 1, 2].map((i) => expectedMessage(0, i, i)))
        if (impl.zeroCopyOfRegion) {
          for (const m of first) {
            for (const view of [m.payload, m.key ?? m.payload, ...(m.headers ?? []).map((h) => h.value)]) {
              expect(view.buffer).toBe(cluster.region!.memory.bytes.buffer)
            }
          }
        }
        for (const m of first) expect(m.payload).toBe(m.payload)
        const kept = first.copy()
        const keptMessages: Array<SubscriberMessage> = []
        first.forEach((m) => keptMessages.push(m.copy()))
        // An array's view of the batch: its length, map in order, and toArray's copies that outlive the batch.
        expect(first.length).toBe(3)
        expect(first.map((m, i) => [i, m.offset])).toEqual([[0, 0], [1, 1], [2, 2]])
        const copies = first.toArray()
        const offsets: Array<number> = []
        for (const m of first) offsets.push(m.offset)
        for (let seq = 1; seq < 5; seq++) {
          const batch = yield* next
          for (const m of batch) {
            offsets.push(m.offset)
            expect(Array.from(m.payload)).toEqual(Array.from(expectedPayload(seq, m.offset - 3 * seq)))
          }
        }
        expect(offsets).toEqual(Array.from({ length: 15 }, (_, i) => i))
        expect(messagesOf(kept)).toEqual([0, 1, 2].map((i) => expectedMessage(0, i, i)))
        expect(keptMessages.map(viewOf)).toEqual([0, 1, 2].map((i) => expectedMessage(0, i, i)))
        expect(copies.map(viewOf)).toEqual([0, 1, 2].map((i) => expectedMessage(0, i, i)))
        expect(subscription.position()).toBe(15)
        expect(yield* subscription.lag).toBe(0)
        expect(yield* subscriber.bounds("t")).toEqual({ earliest: 0, end: 15 })
      }))

    it.scopedLive("poll hands every batch at hand to its callback in order, each once; a pull goes on where it stopped", () =>
      Effect.gen(function*() {
        const { cluster, subscriber } = yield* impl.make()
        yield* cluster.topics.create(spec)
        const a = yield* cluster.appender(0)
        const sequencer = yield* cluster.sequencer()
        for (let seq = 0; seq < 8; seq++) yield* appendSimple(a, "t", 1, 0, seq, 3)
        yield* drain(sequencer)
        const subscription = yield* subscriber.subscribe("t")
        const seen: Array<ReturnType<typeof viewOf>> = []
        const polled: Array<number> = []
        while (subscription.position() < 18) {
          polled.push(yield* subscription.poll((batch) => seen.push(...messagesOf(batch))))
        }
        expect(seen).toEqual(
          Array.from({ length: subscription.position() }, (_, k) => expectedMessage(Math.floor(k / 3), k % 3, k))
        )
        expect(polled.reduce((a, b) => a + b, 0)).toBe(seen.length / 3)
        // Over TCP the broker sends the ordered batches together: a poll takes all it has received, not one.
        if (impl.label.startsWith("layerRemote")) expect(Math.max(...polled)).toBeGreaterThan(1)
        yield* appendSimple(a, "t", 1, 0, 8, 3)
        yield* drain(sequencer)
        const rest: Array<number> = []
        while (subscription.position() < 27) rest.push((yield* subscription.pull).offset)
        expect(rest).toEqual(Array.from({ length: (27 - seen.length) / 3 }, (_, i) => seen.length + 3 * i))
      }))

    it.scopedLive("starts at an offset inside a batch, or at the latest end, and waits for what comes next", () =>
      Effect.gen(function*() {
        const { cluster, subscriber } = yield* impl.make()
        yield* cluster.topics.create(spec)
        const a = yield* cluster.appender(0)
        const sequencer = yield* cluster.sequencer()
        for (let seq = 0; seq < 3; seq++) yield* appendSimple(a, "t", 1, 0, seq, 4)
        yield* drain(sequencer)
        const mid = yield* subscriber.subscribe("t", { from: 6 })
        expect(mid.start).toBe(6)
        const midNext = yield* puller(mid)
        const partial = yield* midNext
        expect([partial.offset, partial.count]).toEqual([6, 2])
        // The batch's base timestamp lies in its first message, which this subscription skips.
        expect(messagesOf(partial)).toEqual([expectedMessage(1, 2, 6), expectedMessage(1, 3, 7)])
        expect(messagesOf(partial.copy())).toEqual([expectedMessage(1, 2, 6), expectedMessage(1, 3, 7)])
        expect((yield* midNext).offset).toBe(8)
        expect(yield* mid.lag).toBe(0)

        const latest = yield* subscriber.subscribe("t", { from: "latest" })
        expect(latest.start).toBe(12)
        const waiting = yield* Effect.fork(Effect.flatMap(puller(latest), (next) => next))
        // A window, not a wait: nothing new is appended, so the pull must not end in it.
        yield* Effect.sleep("50 millis")
        expect(waiting.unsafePoll()).toBeNull()
        yield* appendSimple(a, "t", 1, 0, 3, 1)
        yield* drain(sequencer)
        const tail = yield* Fiber.join(waiting)
        expect([tail.offset, tail.count]).toEqual([12, 1])
        expect(yield* mid.lag).toBe(1)
      }))

    it.scopedLive("starts at a time: the first message its publisher stamped at or after it, on each of several topics too", () =>
      Effect.gen(function*() {
        const { cluster, subscriber } = yield* impl.make()
        yield* cluster.topics.create(spec)
        yield* cluster.topics.create({ ...spec, name: "u" })
        const a = yield* cluster.appender(0)
        for (let seq = 0; seq < 3; seq++) yield* appendMessages(a, "t", 1, 0, seq, 4)
        // Topic u: one batch stamped as t's batch 1 (offsets 0..3).
        const stamped = makeMessageBatch([8, 9, 10, 11], 1)
        yield* a.append("u", header(2, 0, 0, stamped), stamped.payload)
        yield* drain(yield* cluster.sequencer())
        const startAt = (fromTime: number) =>
          Effect.scoped(Effect.flatMap(subscriber.subscribe("t", { fromTime }), (s) => Effect.succeed(s.start)))
        // Batch 1 holds offsets 4..7, stamped messageTime(1, 0..3).
        expect(yield* startAt(messageTime(1, 2))).toBe(6)
        expect(yield* startAt(messageTime(1, 500))).toBe(8)
        expect(yield* startAt(0)).toBe(0)
        expect(yield* startAt(messageTime(9, 0))).toBe(12)
        const from = yield* subscriber.subscribe("t", { fromTime: messageTime(2, 1) })
        const first = yield* (yield* puller(from))
        expect([first.offset, first.count]).toEqual([9, 3])
        expect(first.map((m) => m.timestamp)).toEqual([messageTime(2, 1), messageTime(2, 2), messageTime(2, 3)])
        // Several topics from a time: each starts at its first message stamped at or after it.
        const both = yield* subscriber.subscribeTopics(["t", "u"], { fromTime: messageTime(1, 2) })
        const starts = new Map<string, number>()
        yield* Effect.gen(function*() {
          while (starts.size < 2) {
            const batch = yield* both.pull
            if (!starts.has(batch.topic)) starts.set(batch.topic, batch.offset)
          }
        }).pipe(Effect.timeoutFail({ duration: 10_000, onTimeout: () => new Error("t and u were not both read") }))
        expect(Object.fromEntries(starts)).toEqual({ t: 6, u: 2 })
      }))

    it.scopedLive("an offset past the end is LogOutOfRange naming the window; an unknown topic is TopicNotFound; a position or time that is none is InvalidSubscribeOptions", () =>
      Effect.gen(function*() {
        const { cluster, subscriber } = yield* impl.make()
        yield* cluster.topics.create(spec)
        const a = yield* cluster.appender(0)
        for (let seq = 0; seq < 2; seq++) yield* appendSimple(a, "t", 1, 0, seq)
        yield* drain(yield* cluster.sequencer())
        expect(yield* Effect.flip(subscriber.subscribe("t", { from: 5 }))).toMatchObject({
          _tag: "LogOutOfRange",
          requested: 5,
          earliest: 0,
          end: 4
        })
        expect(yield* Effect.flip(subscriber.subscribe("nope"))).toMatchObject({ _tag: "TopicNotFound", name: "nope" })
        // The end itself is where a subscriber waits for the next message.
        expect((yield* subscriber.subscribe("t", { from: 4 })).start).toBe(4)
        // A position or a time that is none (what a JavaScript caller may pass) is refused in one line.
        const refused = (options: Record<string, unknown>) =>
          Effect.flip(subscriber.subscribe("t", options as SubscribeOptions))
        expect(yield* refused({ from: -1 })).toMatchObject({
          _tag: "InvalidSubscribeOptions",
          message:
            "invalid subscribe options: from -1 is not a position: earliest, latest or a message offset (0, 1, …)"
        })
        expect((yield* refused({ from: "soon" })).message).toContain(`from "soon" is not a position`)
        expect((yield* refused({ from: 1.5 })).message).toContain("from 1.5 is not a position")
        expect(yield* refused({ fromTime: "yesterday" })).toMatchObject({
          _tag: "InvalidSubscribeOptions",
          message:
            `invalid subscribe options: fromTime "yesterday" is not a time: give milliseconds since the epoch (Date.now(), date.getTime())`
        })
        expect(
          yield* Effect.flip(subscriber.subscribeTopics(["t"], { from: -2 } as unknown as SubscribeOptions))
        ).toMatchObject({ _tag: "InvalidSubscribeOptions" })
        // An option it does not take (a JavaScript caller's typo) is named, not left out.
        expect((yield* refused({ fromTimestamp: 5 })).message).toBe(
          "invalid subscribe options: a subscription has no option fromTimestamp (its options: from, fromTime, consumer, autoCommit)"
        )
        // Both a position and a time: neither is taken over the other in silence.
        expect((yield* refused({ from: 2, fromTime: 5 })).message).toBe(
          "invalid subscribe options: from 2 and fromTime 5 are both given: fromTime starts in place of from, give one"
        )
        // A consumer name the log refuses is said as such, before anything is asked of a broker.
        expect(yield* refused({ consumer: "$hold" })).toMatchObject({ _tag: "ConsumerNameInvalid", name: "$hold" })
        // One name where the list of several goes is not read as a list of its letters.
        expect(
          (yield* Effect.flip(subscriber.subscribeTopics("t" as unknown as ReadonlyArray<string>))).message
        ).toBe(
          `invalid subscribe options: topics must be a list of names and patterns (["orders", "audit.*"]), not "t"`
        )
      }))

    it.scopedLive("a subscriber that fell behind retention gets LogOutOfRange naming the oldest offset held, never skipped data", () =>
      Effect.gen(function*() {
        const { cluster, subscriber } = yield* impl.make({ credit: 1 })
        yield* cluster.topics.create(spec)
        const a = yield* cluster.appender(0)
        const sequencer = yield* cluster.sequencer()
        yield* appendSimple(a, "t", 1, 0, 0)
        yield* drain(sequencer)
        const early = yield* subscriber.subscribe("t", { from: 0 })
        // More than a GOI's worth: the log reuses what nobody holds.
        for (let seq = 1; seq <= 2 * smallConfig.goiSlots; seq++) {
          yield* appendSimple(a, "t", 1, 0, seq)
          if (seq % 16 === 0) yield* drain(sequencer)
        }
        yield* drain(sequencer)
        const { earliest, end } = yield* subscriber.bounds("t")
        expect(earliest).toBeGreaterThan(2)
        // What arrived before its bytes were reused (a remote subscriber may have batch 0 in hand) is intact and contiguous; then the error.
        const next = yield* puller(early)
        const delivered: Array<number> = []
        const error = yield* Effect.flip(Effect.forever(Effect.map(next, (batch) => {
          for (const m of batch) {
            expect(Array.from(m.payload)).toEqual(Array.from(expectedPayload(m.offset >> 1, m.offset & 1)))
            delivered.push(m.offset)
          }
        })))
        expect(delivered).toEqual(Array.from({ length: delivered.length }, (_, i) => i))
        expect(delivered.length).toBeLessThan(earliest)
        expect(error).toMatchObject({ _tag: "LogOutOfRange", earliest, end })
        expect(error._tag === "LogOutOfRange" && error.requested).toBe(delivered.length)
        // From the oldest held on, everything is there.
        const rest = yield* subscriber.subscribe("t", { from: "earliest" })
        expect(rest.start).toBe(earliest)
        expect((yield* (yield* puller(rest))).offset).toBe(earliest)
      }))

    if (!impl.label.startsWith("layerRemote")) {
      it.scopedLive("a view kept past reuse of its bytes fails the next pull (LogOutOfRange at its offset); a copy() made before stays intact", () =>
        Effect.gen(function*() {
          const { cluster, subscriber } = yield* impl.make()
          yield* cluster.topics.create(spec)
          const a = yield* cluster.appender(0)
          const sequencer = yield* cluster.sequencer()
          yield* appendSimple(a, "t", 1, 0, 0, 3)
          yield* drain(sequencer)
          const next = yield* puller(yield* subscriber.subscribe("t"))
          const first = yield* next
          const kept = first.copy()
          const keptMessages: Array<SubscriberMessage> = []
          for (const m of first) keptMessages.push(m.copy())
          // Big enough batches that the Blog wraps over batch 0's bytes.
          for (let seq = 1; seq <= 2 * smallConfig.pbrSlots; seq++) {
            const batch = makeMessageBatch([4096, 4096, 4096], seq)
            yield* a.append("t", header(1, 0, seq, batch), batch.payload)
            if (seq % 16 === 0) yield* drain(sequencer)
          }
          yield* drain(sequencer)
          const { earliest } = yield* subscriber.bounds("t")
          expect(yield* Effect.flip(next)).toMatchObject({ _tag: "LogOutOfRange", requested: 0, earliest })
          expect(messagesOf(kept)).toEqual([0, 1, 2].map((i) => expectedMessage(0, i, i)))
          expect(keptMessages.map(viewOf)).toEqual([0, 1, 2].map((i) => expectedMessage(0, i, i)))
        }))
    }

    it.scopedLive("a named consumer: one member at a time, the next resumes at the committed offset; commits stay within what was delivered", () =>
      Effect.gen(function*() {
        const { cluster, subscriber, consumers } = yield* impl.make()
        yield* cluster.topics.create(spec)
        const a = yield* cluster.appender(0)
        for (let seq = 0; seq < 4; seq++) yield* appendSimple(a, "t", 1, 0, seq, 3)
        yield* drain(yield* cluster.sequencer())
        const first = yield* Effect.gen(function*() {
          const member = yield* subscriber.subscribe("t", { consumer: "audit", autoCommit: "off" })
          expect([member.start, member.consumer]).toEqual([0, "audit"])
          const next = yield* puller(member)
          yield* next
          yield* next
          // The second member waits its turn.
          expect(yield* Effect.flip(Effect.scoped(subscriber.subscribe("t", { consumer: "audit" })))).toMatchObject({
            _tag: "ConsumerBusy"
          })
          expect(yield* Effect.flip(member.commit(7))).toMatchObject({ _tag: "CommitRejected" })
          yield* member.commit(4)
          expect(yield* Effect.flip(member.commit(3))).toMatchObject({ _tag: "CommitRejected" })
          yield* member.commit()
          // Delivered (and pulled) past the commit: redelivered to the next member.
          yield* next
          return member.position()
        }).pipe(Effect.scoped)
        expect(first).toBe(9)
        const second = yield* subscriber.subscribe("t", { consumer: "audit", from: "latest" })
        expect(second.start).toBe(6)
        expect((yield* (yield* puller(second))).offset).toBe(6)
        const anonymous = yield* subscriber.subscribe("t")
        expect(yield* Effect.flip(anonymous.commit(0))).toMatchObject({ _tag: "CommitRejected" })
        // A remote commit is applied in order with the connection's frames: wait for the broker (bounded).
        yield* Effect.repeat(consumers.list("t"), {
          until: (list) => list[0]?.committed === 6,
          schedule: Schedule.spaced("5 millis")
        }).pipe(Effect.timeout("5 seconds"))
        expect(yield* consumers.list("t")).toEqual([{
          topic: "t",
          name: "audit",
          committed: 6,
          end: 12,
          lag: 6,
          member: expect.any(Number),
          cutOff: false
        }])
      }))

    it.scopedLive("auto-commit every N messages: what a member pulled before its last pull is committed", () =>
      Effect.gen(function*() {
        const { cluster, subscriber } = yield* impl.make()
        yield* cluster.topics.create(spec)
        const a = yield* cluster.appender(0)
        for (let seq = 0; seq < 4; seq++) yield* appendSimple(a, "t", 1, 0, seq, 3)
        yield* drain(yield* cluster.sequencer())
        yield* Effect.gen(function*() {
          const next = yield* puller(
            yield* subscriber.subscribe("t", { consumer: "c", autoCommit: { everyMessages: 6 } })
          )
          for (let i = 0; i < 4; i++) yield* next
        }).pipe(Effect.scoped)
        // Pulling batch 3 committed 0–5 (6 messages since the last commit); batches 2 and 3 come again.
        // The commit and the member's release may land a little later on a loaded machine: look again until then.
        const startOf = Effect.scoped(Effect.map(subscriber.subscribe("t", { consumer: "c" }), (s) => s.start))
        let start = yield* Effect.orElseSucceed(startOf, () => -1)
        for (
          const until = Date.now() + 5_000;
          start !== 6 && Date.now() < until;
          start = yield* Effect.orElseSucceed(startOf, () => -1)
        ) {
          yield* Effect.sleep("20 millis")
        }
        expect(start).toBe(6)
      }))

    it.scopedLive("a named consumer holds retention without a member: publishers wait (backpressure) until it commits or is deleted", () =>
      Effect.gen(function*() {
        const { cluster, subscriber, consumers } = yield* impl.make()
        yield* cluster.topics.create(spec)
        const a = yield* cluster.appender(0, { timeoutMs: 300 })
        const sequencer = yield* cluster.sequencer()
        yield* appendSimple(a, "t", 1, 0, 0)
        yield* drain(sequencer)
        yield* Effect.scoped(subscriber.subscribe("t", { consumer: "slow" }))
        let seq = 1
        const appended = yield* Effect.either(Effect.gen(function*() {
          for (; seq <= 4 * smallConfig.pbrSlots; seq++) {
            yield* appendSimple(a, "t", 1, 0, seq)
            if (seq % 16 === 0) yield* drain(sequencer)
          }
        }))
        expect(appended._tag === "Left" && appended.left._tag).toBe("AppendTimeout")
        expect(seq).toBeLessThanOrEqual(smallConfig.pbrSlots + 1)
        expect(yield* consumers.remove("t", "slow")).toBe(true)
        expect(yield* consumers.list("t")).toEqual([])
        yield* drain(sequencer)
        yield* appendSimple(a, "t", 1, 0, seq)
      }))

    it.scopedLive("a commit inside a batch holds that batch: after publishers filled the log, the next member resumes there intact", () =>
      Effect.gen(function*() {
        const { cluster, consumers, subscriber } = yield* impl.make()
        yield* cluster.topics.create(spec)
        const a = yield* cluster.appender(0, { timeoutMs: 300 })
        const sequencer = yield* cluster.sequencer()
        for (let seq = 0; seq < 4; seq++) yield* appendSimple(a, "t", 1, 0, seq, 3)
        yield* drain(sequencer)
        yield* Effect.gen(function*() {
          const member = yield* subscriber.subscribe("t", { consumer: "mid", autoCommit: "off" })
          const next = yield* puller(member)
          yield* next
          yield* next
          yield* member.commit(4)
          // A remote commit is applied in order with the connection's frames: wait until the broker has it.
          yield* committedOf(consumers, "t", "mid", 4)
        }).pipe(Effect.scoped)
        // More than the log holds: the appends wait for the batch the consumer holds (offsets 3-5), then time out.
        const appended = yield* Effect.either(Effect.gen(function*() {
          for (let seq = 4; seq <= 4 * smallConfig.pbrSlots; seq++) {
            yield* appendSimple(a, "t", 1, 0, seq, 3)
            if (seq % 16 === 0) yield* drain(sequencer)
          }
        }))
        expect(appended._tag === "Left" && appended.left._tag).toBe("AppendTimeout")
        yield* drain(sequencer)
        const resumed = yield* subscriber.subscribe("t", { consumer: "mid" })
        expect(resumed.start).toBe(4)
        const batch = yield* (yield* puller(resumed))
        expect(messagesOf(batch)).toEqual([expectedMessage(1, 1, 4), expectedMessage(1, 2, 5)])
      }))

    it.scopedLive("a named consumer holding publishers past the bound is cut off: the appends go through, and subscribing as it again is LogOutOfRange; removed, it starts afresh", () =>
      Effect.gen(function*() {
        const { cluster, subscriber, consumers } = yield* impl.make()
        yield* cluster.topics.create(spec)
        const a = yield* cluster.appender(0, { timeoutMs: PATIENT_MS, consumerHoldMs: HOLD_MS })
        const sequencer = yield* cluster.sequencer()
        yield* appendSimple(a, "t", 1, 0, 0)
        yield* drain(sequencer)
        yield* Effect.scoped(subscriber.subscribe("t", { consumer: "stalled" }))
        const before = yield* cutOffs
        // Four PBRs' worth: an append waits for the room the consumer holds until the bound, then every batch goes in.
        yield* appendRange(a, sequencer, 1, 4 * smallConfig.pbrSlots)
        expect((yield* cutOffs) - before).toBe(1)
        const { earliest, end } = yield* subscriber.bounds("t")
        expect(end).toBe(2 * (4 * smallConfig.pbrSlots + 1))
        expect(yield* consumers.list("t")).toEqual([{
          topic: "t",
          name: "stalled",
          committed: 0,
          end,
          lag: end,
          member: 0,
          cutOff: true
        }])
        // Its committed offset is gone: a typed error naming the oldest offset held and how to move or remove the consumer, and it stays cut off.
        const gone = yield* Effect.flip(Effect.scoped(subscriber.subscribe("t", { consumer: "stalled" })))
        expect(gone).toMatchObject({ _tag: "LogOutOfRange", requested: 0, earliest, consumer: "stalled" })
        expect(gone.message).toContain(`cxlog consumers reset "stalled" --topic t --to earliest`)
        expect(gone.message).toContain(`cxlog consumers --topic t --remove "stalled"`)
        expect((yield* consumers.list("t"))[0]).toMatchObject({ cutOff: true, member: 0 })
        expect(yield* consumers.remove("t", "stalled")).toBe(true)
        // Created again, it starts at the oldest offset held (the fake reclaims eagerly: maybe the end).
        const held = yield* subscriber.bounds("t")
        const again = yield* subscriber.subscribe("t", { consumer: "stalled" })
        expect(again.start).toBe(held.earliest)
        yield* appendRange(a, sequencer, 4 * smallConfig.pbrSlots + 1, 4 * smallConfig.pbrSlots + 1)
        expect((yield* (yield* puller(again))).offset).toBe(held.earliest)
      }))

    it.scopedLive("the member of a consumer cut off gets ConsumerCutOff naming its committed offset and the oldest held; nothing is skipped before it", () =>
      Effect.gen(function*() {
        const { cluster, subscriber } = yield* impl.make()
        yield* cluster.topics.create(spec)
        const a = yield* cluster.appender(0, { timeoutMs: PATIENT_MS, consumerHoldMs: HOLD_MS })
        const sequencer = yield* cluster.sequencer()
        yield* appendSimple(a, "t", 1, 0, 0)
        yield* drain(sequencer)
        const member = yield* subscriber.subscribe("t", { consumer: "m", autoCommit: "off" })
        const next = yield* puller(member)
        expect((yield* next).offset).toBe(0)
        yield* member.commit()
        yield* appendRange(a, sequencer, 1, 4 * smallConfig.pbrSlots)
        const { earliest } = yield* subscriber.bounds("t")
        // A remote member may first get what the broker had sent before it saw the cut: in order and intact.
        const delivered: Array<number> = []
        const error = yield* Effect.flip(Effect.forever(Effect.map(next, (batch) => {
          for (const m of batch) {
            expect(Array.from(m.payload)).toEqual(Array.from(expectedPayload(m.offset >> 1, m.offset & 1)))
            delivered.push(m.offset)
          }
        })))
        expect(delivered).toEqual(Array.from({ length: delivered.length }, (_, i) => 2 + i))
        expect(error).toMatchObject({ _tag: "ConsumerCutOff", topic: "t", name: "m", committed: 2, earliest })
        if (!impl.label.startsWith("layerRemote")) {
          expect(delivered).toEqual([])
          expect(yield* Effect.flip(member.commit())).toMatchObject({ _tag: "ConsumerCutOff", committed: 2 })
        }
      }))

    it.scopedLive("re-subscribing as a cut-off consumer whose committed offset is still held resumes there and holds retention again", () =>
      Effect.gen(function*() {
        const { cluster, subscriber, consumers } = yield* impl.make()
        yield* cluster.topics.create(spec)
        const a = yield* cluster.appender(0, { timeoutMs: PATIENT_MS, consumerHoldMs: HOLD_MS })
        const b = yield* cluster.appender(1)
        const sequencer = yield* cluster.sequencer()
        // The consumer's committed batch lies in broker 1's Blog, which the cut-off on broker 0 leaves alone.
        yield* appendSimple(b, "t", 2, 0, 0)
        yield* drain(sequencer)
        yield* Effect.scoped(subscriber.subscribe("t", { consumer: "c" }))
        yield* appendRange(a, sequencer, 0, smallConfig.pbrSlots)
        expect((yield* consumers.list("t"))[0]).toMatchObject({ committed: 0, cutOff: true })
        const resumed = yield* subscriber.subscribe("t", { consumer: "c", autoCommit: "off" })
        expect(resumed.start).toBe(0)
        expect((yield* consumers.list("t"))[0]).toMatchObject({ committed: 0, cutOff: false })
        const next = yield* puller(resumed)
        expect(messagesOf(yield* next)).toEqual([0, 1].map((i) => expectedMessage(0, i, i)))
        // The cut freed broker 0's PBR slots; their bytes stay readable until its Blog needs them.
        expect(messagesOf(yield* next)).toEqual([0, 1].map((i) => expectedMessage(0, i, 2 + i)))
      }))

    it.scopedLive("a consumer that keeps committing within the bound is never cut off, however long publishers wait for it overall", () =>
      Effect.gen(function*() {
        const { cluster, subscriber, consumers } = yield* impl.make()
        yield* cluster.topics.create(spec)
        // The bound is 10× the consumer's pace between commits; the publisher waits for it well past the bound in all.
        const a = yield* cluster.appender(0, { timeoutMs: PATIENT_MS, consumerHoldMs: 1_000 })
        const sequencer = yield* cluster.sequencer()
        yield* appendSimple(a, "t", 1, 0, 0)
        yield* drain(sequencer)
        const before = yield* cutOffs
        const member = yield* subscriber.subscribe("t", { consumer: "steady", autoCommit: "off" })
        const next = yield* puller(member)
        const batches = smallConfig.pbrSlots + 40
        const publishing = yield* Effect.fork(appendRange(a, sequencer, 1, batches))
        for (let i = 0; i < 20; i++) {
          yield* next
          yield* member.commit()
          // The scenario's pace: a slow consumer, committing every 100 ms (a tenth of the bound).
          yield* Effect.sleep("100 millis")
        }
        expect(publishing.unsafePoll()).toBeNull()
        // Then it catches up, and the publisher finishes.
        while (member.position() < 2 * (batches + 1)) {
          yield* next
          yield* member.commit()
        }
        yield* Fiber.join(publishing)
        expect((yield* cutOffs) - before).toBe(0)
        expect((yield* consumers.list("t"))[0]).toMatchObject({ name: "steady", cutOff: false })
      }))

    it.scopedLive("several topics on one subscription: each message tagged with its topic, each topic in its order, topics taking turns", () =>
      Effect.gen(function*() {
        const { cluster, subscriber } = yield* impl.make()
        for (const name of ["a", "b", "c"]) yield* cluster.topics.create({ ...spec, name })
        const a = yield* cluster.appender(0)
        const sequencer = yield* cluster.sequencer()
        // More batches than a topic gives in a row (64) before the others get their turn.
        const batches = 80
        for (let seq = 0; seq < batches; seq++) {
          for (const [name, client] of [["a", 1], ["b", 2], ["c", 3]] as const) {
            yield* appendSimple(a, name, client, 0, seq, 2)
          }
          if (seq % 16 === 15) yield* drain(sequencer)
        }
        yield* drain(sequencer)
        const subscription = yield* subscriber.subscribeTopics(["a", "b"])
        expect(subscription.selection).toEqual(["a", "b"])
        const read = new Map<string, Array<number>>()
        const order: Array<string> = []
        while ((read.get("a")?.length ?? 0) + (read.get("b")?.length ?? 0) < 4 * batches) {
          const batch = yield* subscription.pull
          order.push(batch.topic)
          for (const m of batch) {
            expect(m.topic).toBe(batch.topic)
            read.set(m.topic, [...(read.get(m.topic) ?? []), m.offset])
            expect(Array.from(m.payload)).toEqual(Array.from(expectedPayload(Math.floor(m.offset / 2), m.offset % 2)))
          }
        }
        expect([...read.keys()].sort()).toEqual(["a", "b"])
        for (const name of ["a", "b"]) expect(read.get(name)).toEqual(Array.from({ length: 2 * batches }, (_, i) => i))
        // Neither topic waits for the other to be read through.
        expect(order.indexOf("b")).toBeLessThan(order.lastIndexOf("a"))
        expect([...subscription.topics()].sort()).toEqual(["a", "b"])
        expect([subscription.position("a"), subscription.position("b"), subscription.position("c")]).toEqual([
          2 * batches,
          2 * batches,
          undefined
        ])
        expect(yield* subscription.lag).toBe(0)
        // What comes next, on either topic, is delivered next.
        const waiting = yield* Effect.fork(subscription.pull)
        yield* appendSimple(a, "b", 2, 0, batches, 1)
        yield* drain(sequencer)
        const next = yield* Fiber.join(waiting)
        expect([next.topic, next.offset, next.count]).toEqual(["b", 2 * batches, 1])
      }))

    it.scopedLive("a pattern reads every topic it matches, and a topic created after it started, from its first message", () =>
      Effect.gen(function*() {
        const { cluster, subscriber } = yield* impl.make()
        for (const name of ["orders.eu", "orders.us", "audit"]) yield* cluster.topics.create({ ...spec, name })
        const a = yield* cluster.appender(0)
        const sequencer = yield* cluster.sequencer()
        for (const [name, client] of [["orders.eu", 1], ["orders.us", 2], ["audit", 3]] as const) {
          yield* appendSimple(a, name, client, 0, 0, 1)
        }
        yield* drain(sequencer)
        const subscription = yield* subscriber.subscribeTopics(["orders.*"], { from: "latest" })
        const later = yield* Effect.fork(
          Effect.gen(function*() {
            const topics: Array<string> = []
            while (topics.length < 2) topics.push((yield* subscription.pull).topic)
            return topics
          })
        )
        // Made while it runs: read from its first message (published before the subscription found the topic).
        yield* cluster.topics.create({ ...spec, name: "orders.asia" })
        yield* appendSimple(a, "orders.asia", 4, 0, 0, 2)
        yield* appendSimple(a, "orders.eu", 1, 0, 1, 1)
        yield* appendSimple(a, "audit", 3, 0, 1, 1)
        yield* drain(sequencer)
        const topics = yield* Fiber.join(later).pipe(
          Effect.timeoutFail({ duration: 10_000, onTimeout: () => new Error("the new topic was not read") })
        )
        expect([...topics].sort()).toEqual(["orders.asia", "orders.eu"])
        expect([...subscription.topics()].sort()).toEqual(["orders.asia", "orders.eu", "orders.us"])
        expect(subscription.position("orders.asia")).toBe(2)
        expect(subscription.position("audit")).toBeUndefined()
      }))

    it.scopedLive("a pattern that matches nothing waits (a bounded wait ends with nothing), then reads the first topic that matches", () =>
      Effect.gen(function*() {
        const { cluster, subscriber } = yield* impl.make()
        yield* cluster.topics.create({ ...spec, name: "audit" })
        const subscription = yield* subscriber.subscribeTopics(["metrics.>"])
        expect(subscription.topics()).toEqual([])
        expect(yield* Effect.timeout(subscription.pull, "300 millis").pipe(Effect.option)).toEqual(Option.none())
        yield* cluster.topics.create({ ...spec, name: "metrics.cpu.host1" })
        const a = yield* cluster.appender(0)
        yield* appendSimple(a, "metrics.cpu.host1", 1, 0, 0, 1)
        yield* drain(yield* cluster.sequencer())
        const first = yield* subscription.pull.pipe(
          Effect.timeoutFail({ duration: 10_000, onTimeout: () => new Error("the matching topic was not read") })
        )
        expect([first.topic, first.offset]).toEqual(["metrics.cpu.host1", 0])
      }))

    it.scopedLive("bad pattern syntax is InvalidTopicPattern; an unknown topic among several is TopicNotFound naming it", () =>
      Effect.gen(function*() {
        const { cluster, subscriber } = yield* impl.make()
        yield* cluster.topics.create({ ...spec, name: "a" })
        for (
          const [selection, reason] of [
            [["orders.>.eu"], /can only be the last token/],
            [["ord*"], /a wildcard is a whole token/],
            [["orders..*"], /empty/],
            [[], /at least one topic or pattern/]
          ] as const
        ) {
          const error = yield* Effect.flip(subscriber.subscribeTopics(selection))
          expect(error).toMatchObject({ _tag: "InvalidTopicPattern" })
          expect(error.message).toMatch(reason)
        }
        expect(yield* Effect.flip(subscriber.subscribeTopics(["a", "nope"]))).toMatchObject({
          _tag: "TopicNotFound",
          name: "nope"
        })
      }))

    it.scopedLive("a named consumer over several topics is that consumer on each topic, committed per topic", () =>
      Effect.gen(function*() {
        const { cluster, consumers, subscriber } = yield* impl.make()
        for (const name of ["a", "b"]) yield* cluster.topics.create({ ...spec, name })
        const a = yield* cluster.appender(0)
        const sequencer = yield* cluster.sequencer()
        for (let seq = 0; seq < 3; seq++) {
          yield* appendSimple(a, "a", 1, 0, seq, 2)
          yield* appendSimple(a, "b", 2, 0, seq, 2)
        }
        yield* drain(sequencer)
        yield* Effect.scoped(Effect.gen(function*() {
          const member = yield* subscriber.subscribeTopics(["a", "b"], { consumer: "billing", autoCommit: "off" })
          const seen = new Set<string>()
          while (!seen.has("a") || !seen.has("b")) seen.add((yield* member.pull).topic)
          yield* member.commit({ topic: "a", offset: 2 })
          expect(yield* Effect.flip(member.commit({ topic: "b", offset: 9 }))).toMatchObject({
            _tag: "CommitRejected",
            topic: "b"
          })
          yield* member.commit({ topic: "b" })
        }))
        yield* committedOf(consumers, "a", "billing", 2)
        yield* committedOf(consumers, "b", "billing", 2)
        const committed = (topic: string) =>
          Effect.map(consumers.list(topic), (list) => list.find((c) => c.name === "billing")?.committed)
        expect([yield* committed("a"), yield* committed("b")]).toEqual([2, 2])
        const next = yield* subscriber.subscribeTopics(["a", "b"], { consumer: "billing" })
        const firsts = new Map<string, number>()
        while (firsts.size < 2) {
          const batch = yield* next.pull
          if (!firsts.has(batch.topic)) firsts.set(batch.topic, batch.offset)
        }
        expect(Object.fromEntries(firsts)).toEqual({ a: 2, b: 2 })
      }))

    it.scopedLive("a topic deleted while read: one a pattern matched leaves, one the selection names fails TopicDeleted", () =>
      Effect.gen(function*() {
        const { cluster, subscriber } = yield* impl.make()
        for (const name of ["x.one", "x.two", "y"]) yield* cluster.topics.create({ ...spec, name })
        const a = yield* cluster.appender(0)
        const sequencer = yield* cluster.sequencer()
        for (const name of ["x.one", "x.two", "y"]) yield* appendSimple(a, name, 1, 0, 0, 1)
        yield* drain(sequencer)
        const patterned = yield* subscriber.subscribeTopics(["x.*"])
        const named = yield* subscriber.subscribeTopics(["y", "x.two"])
        // Its deleted topic not the one it read last: found deleted where it looks for the next batch, not as it settles the last.
        const namedOn = yield* subscriber.subscribeTopics(["y", "x.one"])
        for (let i = 0; i < 2; i++) yield* patterned.pull
        for (let i = 0; i < 2; i++) yield* named.pull
        expect([(yield* namedOn.pull).topic, (yield* namedOn.pull).topic]).toEqual(["y", "x.one"])
        yield* cluster.topics.delete("x.two")
        yield* cluster.topics.delete("y")
        yield* appendSimple(a, "x.one", 1, 0, 1, 1)
        yield* drain(sequencer)
        const after = yield* patterned.pull.pipe(
          Effect.timeoutFail({ duration: 10_000, onTimeout: () => new Error("x.one was not read on") })
        )
        expect([after.topic, after.offset]).toEqual(["x.one", 1])
        // While it waits for more, the deleted topic leaves it.
        const waiting = yield* Effect.fork(patterned.pull)
        yield* Effect.repeat(Effect.sync(() => patterned.topics()), {
          until: (topics) => !topics.includes("x.two"),
          schedule: Schedule.spaced("20 millis")
        }).pipe(Effect.timeoutFail({ duration: 10_000, onTimeout: () => new Error("x.two did not leave") }))
        expect(patterned.topics()).toEqual(["x.one"])
        // And it goes on with the others: the pull waiting meanwhile gets x.one's next batch.
        expect(waiting.unsafePoll()).toBeNull()
        yield* appendSimple(a, "x.one", 1, 0, 2, 1)
        yield* drain(sequencer)
        const next = yield* Fiber.join(waiting)
        expect([next.topic, next.offset]).toEqual(["x.one", 2])
        expect(yield* Effect.flip(named.pull)).toMatchObject({ _tag: "TopicDeleted" })
        // y's deletion fails it (x.one's new batches may come first), rather than leaving it to wait on x.one alone.
        const before: Array<number> = []
        const ended = yield* Effect.flip(Effect.forever(Effect.map(namedOn.pull, (b) => before.push(b.offset)))).pipe(
          Effect.timeoutFail({ duration: 10_000, onTimeout: () => new Error("y's deletion was not told") })
        )
        expect(ended).toMatchObject({ _tag: "TopicDeleted", name: "y" })
        expect([1, 2].slice(0, before.length)).toEqual(before)
      }))
  })
}
