import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Schedule } from "effect"
import { BrokerLineView, ParticipantLineView } from "../../src/layers/log/RecordViews.js"
import {
  appendSimple,
  drain,
  header,
  implementations,
  makeBatch,
  readAll,
  SMALL_BLOG_BYTES,
  smallConfig
} from "../fixtures/log-harness.js"

const spec = { name: "t", order: 2 as const, ackLevel: 1 as const, replicationFactor: 1 }

for (const impl of implementations) {
  describe(`Appender contract: ${impl.label}`, () => {
    it.scopedLive("a full PBR is backpressure: it waits, fails with AppendTimeout, and drops nothing", () =>
      Effect.gen(function*() {
        const cluster = yield* impl.make()
        yield* cluster.topics.create(spec)
        const a = yield* cluster.appender(0, { timeoutMs: 30 })
        const cursor = yield* cluster.reader.subscribe("t", { durable: true })
        const seen: Array<number> = []
        for (let seq = 0; seq < smallConfig.pbrSlots; seq++) yield* appendSimple(a, "t", 1, 0, seq)
        const error = yield* Effect.flip(appendSimple(a, "t", 1, 0, smallConfig.pbrSlots))
        expect(error).toMatchObject({ _tag: "AppendTimeout", brokerId: 0, full: "pbr" })
        expect(error.message).toContain("PBR stayed full")
        const sequencer = yield* cluster.sequencer()
        yield* drain(sequencer)
        // Ordered but not yet read by the durable subscriber: still no room.
        expect(yield* Effect.flip(appendSimple(a, "t", 1, 0, smallConfig.pbrSlots))).toMatchObject({
          _tag: "AppendTimeout"
        })
        yield* cursor.pollBatches((b) => seen.push(b.batchSeq))
        yield* appendSimple(a, "t", 1, 0, smallConfig.pbrSlots)
        yield* drain(sequencer)
        yield* cursor.pollBatches((b) => seen.push(b.batchSeq))
        expect(seen).toEqual(Array.from({ length: smallConfig.pbrSlots + 1 }, (_, i) => i))
      }))

    it.scopedLive("a full Blog is backpressure too; a waiting append resumes when the sequencer frees room", () =>
      Effect.gen(function*() {
        const cluster = yield* impl.make()
        yield* cluster.topics.create(spec)
        const a = yield* cluster.appender(1, { timeoutMs: 30 })
        const big = makeBatch([smallConfig.maxBatchBytes - 8])
        const fits = Math.floor(SMALL_BLOG_BYTES / big.payload.length)
        for (let seq = 0; seq < fits; seq++) yield* a.append("t", header(2, 0, seq, big), big.payload)
        expect(yield* Effect.flip(a.append("t", header(2, 0, fits, big), big.payload))).toMatchObject({
          _tag: "AppendTimeout",
          full: "blog"
        })
        const patient = yield* cluster.appender(2, { timeoutMs: 10_000 })
        for (let seq = 0; seq < fits; seq++) yield* patient.append("t", header(3, 0, seq, big), big.payload)
        const waiting = yield* Effect.fork(patient.append("t", header(3, 0, fits, big), big.payload))
        // A window, not a wait: nothing frees room until the sequencer steps, so the append must not end in it.
        yield* Effect.sleep("20 millis")
        expect(waiting.unsafePoll()).toBeNull()
        const sequencer = yield* cluster.sequencer()
        yield* sequencer.step
        const receipt = yield* Fiber.join(waiting)
        expect(receipt).toMatchObject({ brokerId: 2, pbrSeq: fits })
      }))

    it.scoped("invalid batches are refused with typed errors", () =>
      Effect.gen(function*() {
        const cluster = yield* impl.make()
        yield* cluster.topics.create(spec)
        const a = yield* cluster.appender(0)
        const batch = makeBatch([10, 20])
        expect(yield* Effect.flip(a.append("nope", header(1, 0, 0, batch), batch.payload))).toMatchObject({
          _tag: "TopicNotFound"
        })
        expect(yield* Effect.flip(a.append("t", header(1, 0, 0, batch), batch.payload.subarray(8)))).toMatchObject({
          _tag: "BatchRejected"
        })
        expect(yield* Effect.flip(a.append("t", { ...header(1, 0, 0, batch), messageCount: 100 }, batch.payload)))
          .toMatchObject({
            _tag: "BatchRejected"
          })
        expect(yield* Effect.flip(a.append("t", { ...header(1, 0, 0, batch), batchSeq: -1 }, batch.payload)))
          .toMatchObject({ _tag: "BatchRejected" })
        const huge = makeBatch([smallConfig.maxBatchBytes])
        const tooLarge = yield* Effect.flip(a.append("t", header(1, 0, 0, huge), huge.payload))
        expect(tooLarge).toMatchObject({ _tag: "BatchRejected" })
        // Over the topic's limit: what the limit is and what raises it.
        expect(tooLarge.message).toMatch(/over the topic's limit of \d+/)
        expect(tooLarge.message).toContain("cxlog publish --batch-bytes")
        const thrown = yield* Effect.flip(a.appendWith("t", header(1, 0, 0, batch), () => {
          throw new Error("socket went away")
        }))
        expect(thrown).toMatchObject({ _tag: "BatchRejected" })
        expect(thrown.message).toContain("socket went away")
        // Nothing of the refused batches reached the log.
        yield* drain(yield* cluster.sequencer())
        expect(yield* readAll(cluster.reader, "t")).toEqual([])
      }))

    it.scoped("a broker slot belongs to one appender at a time", () =>
      Effect.gen(function*() {
        const cluster = yield* impl.make()
        yield* Effect.scoped(Effect.gen(function*() {
          yield* cluster.appender(3)
          const taken = yield* Effect.flip(cluster.appender(3))
          expect(taken).toMatchObject({ _tag: "BrokerSlotTaken", brokerId: 3 })
          // What a second `cxlog broker` without --broker-id meets: it says how to start it.
          expect((taken as Error).message).toMatch(
            /^broker slot 3 is owned by live process \d+ .*another id \(--broker-id/
          )
        }))
        expect((yield* cluster.appender(3)).brokerId).toBe(3)
        expect(yield* Effect.flip(cluster.appender(smallConfig.maxBrokers))).toMatchObject({ _tag: "LogConfigInvalid" })
      }))

    it.scoped("tryAppendWith appends without waiting or an Effect; when it cannot now it says \"wait\" and appends nothing", () =>
      Effect.gen(function*() {
        const cluster = yield* impl.make()
        yield* cluster.topics.create(spec)
        const a = yield* cluster.appender(0, { timeoutMs: 30 })
        const batch = makeBatch([16])
        const fill = (dst: Uint8Array) => dst.set(batch.payload)
        // A topic this appender has not set up yet (a region appender does that on the waiting path) is "wait".
        const unknown = a.tryAppendWith("nope", header(1, 0, 0, batch), fill)
        if (unknown === "wait") {
          expect(yield* Effect.flip(a.appendWith("nope", header(1, 0, 0, batch), fill))).toMatchObject({
            _tag: "TopicNotFound"
          })
        } else expect(unknown).toMatchObject({ _tag: "TopicNotFound" })
        if (typeof a.tryAppendWith("t", header(1, 0, 0, batch), fill) !== "object") {
          yield* a.appendWith("t", header(1, 0, 0, batch), fill)
        }
        for (let seq = 1; seq < smallConfig.pbrSlots; seq++) {
          expect(a.tryAppendWith("t", header(1, 0, seq, batch), fill)).toMatchObject({ pbrSeq: seq })
        }
        expect(a.tryAppendWith("t", header(1, 0, smallConfig.pbrSlots, batch), fill)).toBe("wait")
        expect(a.tryAppendWith("t", { ...header(1, 0, 99, batch), payloadBytes: 12 }, fill)).toMatchObject({
          _tag: "BatchRejected"
        })
        yield* drain(yield* cluster.sequencer())
        expect((yield* readAll(cluster.reader, "t")).map((b) => b.batchSeq)).toEqual(
          Array.from({ length: smallConfig.pbrSlots }, (_, i) => i)
        )
        expect(a.tryAppendWith("t", header(1, 0, smallConfig.pbrSlots, batch), fill)).toMatchObject({
          pbrSeq: smallConfig.pbrSlots
        })
      }))

    it.scoped("appendWith lets the caller write the payload in place", () =>
      Effect.gen(function*() {
        const cluster = yield* impl.make()
        yield* cluster.topics.create(spec)
        const a = yield* cluster.appender(0)
        const batch = makeBatch([100, 3])
        let target: Uint8Array | undefined
        yield* a.appendWith("t", header(1, 0, 0, batch), (dst) => {
          target = dst
          dst.set(batch.payload)
        })
        expect(target!.length).toBe(batch.payload.length)
        if (cluster.region !== undefined) expect(target!.buffer).toBe(cluster.region.memory.buffer)
        yield* drain(yield* cluster.sequencer())
        expect(yield* readAll(cluster.reader, "t")).toMatchObject([{ batchSeq: 0, messageCount: 2, crcOk: true }])
      }))
  })
}

describe("Appender over the region", () => {
  it.scopedLive("an append waiting for room is counted in its owner line while it waits, so room frees ring only waiting brokers", () =>
    Effect.gen(function*() {
      const cluster = yield* implementations[1]!.make()
      yield* cluster.topics.create(spec)
      const { memory, area } = cluster.region!
      const roomWaits = () => new ParticipantLineView(memory).roomWaits(area.brokerOwner(0))
      const a = yield* cluster.appender(0, { timeoutMs: 10_000 })
      const cursor = yield* cluster.reader.subscribe("t", { durable: true })
      for (let seq = 0; seq < smallConfig.pbrSlots; seq++) yield* appendSimple(a, "t", 1, 0, seq)
      expect(roomWaits()).toBe(0)
      const waiting = yield* Effect.fork(appendSimple(a, "t", 1, 0, smallConfig.pbrSlots))
      // Counted once the forked append has found no room (bounded: never counted fails the test).
      yield* Effect.repeat(Effect.sync(roomWaits), { until: (n) => n > 0, schedule: Schedule.spaced("2 millis") }).pipe(
        Effect.timeout("5 seconds")
      )
      expect(roomWaits()).toBe(1)
      const sequencer = yield* cluster.sequencer()
      yield* drain(sequencer)
      // Ordered, but the durable subscriber has not read it: still waiting. Its read frees the room.
      expect(roomWaits()).toBe(1)
      yield* cursor.pollBatches(() => {})
      expect((yield* Fiber.join(waiting)).pbrSeq).toBe(smallConfig.pbrSlots)
      expect(roomWaits()).toBe(0)
    }))

  it.scoped("a restarted broker adopts the slots its predecessor committed but did not publish", () =>
    Effect.gen(function*() {
      const cluster = yield* implementations[1]!.make()
      const { id: topicId } = yield* cluster.topics.create(spec)
      const { memory, area } = cluster.region!
      yield* Effect.scoped(Effect.gen(function*() {
        const a = yield* cluster.appender(0)
        for (let seq = 0; seq < 3; seq++) yield* appendSimple(a, "t", 1, 0, seq)
      }))
      // As if killed after committing slots 1 and 2 but before publishing its line.
      const brokerLines = new BrokerLineView(memory)
      brokerLines.setPbrHead(area.brokerLine(topicId, 0), 1)
      brokerLines.setBlogHead(area.brokerLine(topicId, 0), 64)
      const a = yield* cluster.appender(0)
      expect((yield* appendSimple(a, "t", 1, 0, 3)).pbrSeq).toBe(3)
      yield* drain(yield* cluster.sequencer())
      expect((yield* readAll(cluster.reader, "t")).map((b) => b.batchSeq)).toEqual([0, 1, 2, 3])
    }))
})
