import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, type Scope } from "effect"
import * as BrokerLogLayers from "../../src/layers/net/BrokerLogMemory.js"
import * as CxlMemoryMemoryLayers from "../../src/layers/region/CxlMemoryMemory.js"
import type { AckTrackerShape } from "../../src/services/log/AckTracker.js"
import type { AppenderShape, BatchHeader } from "../../src/services/log/Appender.js"
import type { TopicsShape } from "../../src/services/log/Topics.js"
import { drain, regionCluster, smallConfig } from "../fixtures/log-harness.js"

/**
 * Builds a log with `topics` whose sessions are fenced after `holdTimeoutMs`, as brokers use
 * it (an Appender per broker id 0..2, the AckTracker, the topic table), and `settle`, after
 * which everything appended so far has been through the sequencer.
 */
type MakeLog = (
  options: { topics: ReadonlyArray<string>; holdTimeoutMs: number; sessionSlots?: number }
) => Effect.Effect<
  {
    readonly appender: (brokerId: number) => AppenderShape
    readonly acks: AckTrackerShape
    readonly topics: TopicsShape
    readonly settle: Effect.Effect<void>
  },
  unknown,
  Scope.Scope
>

const header = (clientId: number, sessionEpoch: number, batchSeq: number): BatchHeader => ({
  clientId,
  sessionEpoch,
  batchSeq,
  messageCount: 1,
  payloadBytes: 16,
  crc32c: 0
})
const payload = new Uint8Array(16)

/**
 * The log as a broker uses it; the memory log (the log core's fakes with the sequencer
 * running) and the region's layers run the same suite.
 */
const brokerLogContract = (label: string, makeLog: MakeLog) =>
  describe(`BrokerLog contract: ${label}`, () => {
    it.scopedLive("an unknown topic is a typed error everywhere", () =>
      Effect.gen(function*() {
        const { acks, appender, topics } = yield* makeLog({ topics: ["t"], holdTimeoutMs: 1000 })
        const log = appender(0)
        expect((yield* Effect.flip(topics.lookup("nope")))._tag).toBe("TopicNotFound")
        expect((yield* Effect.flip(log.append("nope", header(1, 0, 0), payload)))._tag).toBe("TopicNotFound")
        expect((yield* Effect.flip(log.appendWith("nope", header(1, 0, 0), (dst) => dst.set(payload))))._tag).toBe(
          "TopicNotFound"
        )
        // The fast path says so, or declines (it only appends to topics this broker has set up) and leaves it to appendWith.
        const fast = log.tryAppendWith("nope", header(1, 0, 0), (dst) => dst.set(payload))
        if (fast !== "wait") expect(fast).toMatchObject({ _tag: "TopicNotFound" })
        expect((yield* Effect.flip(acks.sessionAcks("nope", 1, 0)))._tag).toBe("TopicNotFound")
        expect((yield* topics.lookup("t")).name).toBe("t")
      }))

    it.scopedLive("mode 5: next → ordered, duplicate → dropped but acknowledged, ahead → held until the gap closes", () =>
      Effect.gen(function*() {
        const { acks, appender, settle } = yield* makeLog({ topics: ["t"], holdTimeoutMs: 5_000 })
        const b0 = appender(0)
        const b1 = appender(1)
        const e = yield* b0.registerSession("t", 1)
        expect(yield* acks.sessionAcks("t", 1, e)).toEqual({
          ordered: 0,
          replicated: 0,
          fenced: false,
          known: true,
          durableFrozen: false
        })
        yield* b0.append("t", header(1, e, 0), payload)
        yield* settle
        expect((yield* acks.sessionAcks("t", 1, e)).ordered).toBe(1)
        const before = yield* acks.progress("t")
        yield* b1.append("t", header(1, e, 0), payload)
        yield* settle
        expect(yield* acks.progress("t")).not.toBe(before)
        expect((yield* acks.sessionAcks("t", 1, e)).ordered).toBe(1)
        yield* b1.appendWith("t", header(1, e, 2), (dst) => dst.set(payload))
        expect(b1.tryAppendWith("t", header(1, e, 3), (dst) => dst.set(payload))).toMatchObject({ brokerId: 1 })
        yield* settle
        expect((yield* acks.sessionAcks("t", 1, e)).ordered).toBe(1)
        yield* b0.append("t", header(1, e, 1), payload)
        yield* settle
        expect(yield* acks.sessionAcks("t", 1, e)).toEqual({
          ordered: 4,
          replicated: 4,
          fenced: false,
          known: true,
          durableFrozen: false
        })
      }))

    it.scopedLive("sessions are the log's: a client id registered again is a new session, and unregistered batches are refused", () =>
      Effect.gen(function*() {
        const { acks, appender, settle } = yield* makeLog({ topics: ["t"], holdTimeoutMs: 5_000 })
        const log = appender(0)
        // A stranger sends batches under a session the log never handed out: nothing is ordered.
        const strangerEpoch = 4242
        for (let seq = 0; seq < 3; seq++) yield* log.append("t", header(7, strangerEpoch, seq), payload)
        yield* settle
        expect(yield* acks.sessionAcks("t", 7, strangerEpoch)).toEqual({
          ordered: 0,
          replicated: 0,
          fenced: false,
          known: false,
          durableFrozen: false
        })
        // A publisher with client id 7 runs, closes, and runs again: each run is its own session.
        const first = yield* log.registerSession("t", 7)
        for (let seq = 0; seq < 3; seq++) yield* log.append("t", header(7, first, seq), payload)
        yield* settle
        const second = yield* log.registerSession("t", 7)
        expect(second).not.toBe(first)
        for (let seq = 0; seq < 3; seq++) yield* log.append("t", header(7, second, seq), payload)
        yield* settle
        expect((yield* acks.sessionAcks("t", 7, first)).ordered).toBe(3)
        expect((yield* acks.sessionAcks("t", 7, second)).ordered).toBe(3)
      }))

    it.scopedLive("a closed session is released once its batches are ordered, freeing its line; a full table is SessionTableFull", () =>
      Effect.gen(function*() {
        // 8 lines hold at most 7 live sessions.
        const { acks, appender, settle } = yield* makeLog({ topics: ["t"], holdTimeoutMs: 5_000, sessionSlots: 8 })
        const log = appender(0)
        const epochs: Array<number> = []
        for (let client = 0; client < 7; client++) epochs.push(yield* log.registerSession("t", client))
        expect(yield* Effect.flip(log.registerSession("t", 99))).toMatchObject({
          _tag: "SessionTableFull",
          capacity: 7
        })
        // Client 0 sent batches 0 and 2, then closes announcing 3: it stays until batch 1 is ordered.
        yield* log.append("t", header(0, epochs[0]!, 0), payload)
        yield* log.append("t", header(0, epochs[0]!, 2), payload)
        yield* log.closeSession("t", 0, epochs[0]!, 3)
        yield* settle
        expect(yield* acks.sessionAcks("t", 0, epochs[0]!)).toMatchObject({ ordered: 1, fenced: false })
        expect(yield* Effect.flip(log.registerSession("t", 99))).toMatchObject({ _tag: "SessionTableFull" })
        yield* log.append("t", header(0, epochs[0]!, 1), payload)
        yield* settle
        // Released with its final frontier; a late batch of it is refused, and its line is free for a new session.
        expect(yield* acks.sessionAcks("t", 0, epochs[0]!)).toEqual({
          ordered: 3,
          replicated: 3,
          fenced: true,
          known: true,
          durableFrozen: false
        })
        yield* log.append("t", header(0, epochs[0]!, 3), payload)
        yield* settle
        expect((yield* acks.sessionAcks("t", 0, epochs[0]!)).ordered).toBe(3)
        const fresh = yield* log.registerSession("t", 99)
        yield* log.append("t", header(99, fresh, 0), payload)
        yield* settle
        expect((yield* acks.sessionAcks("t", 99, fresh)).ordered).toBe(1)
      }))

    it.scopedLive("a gap open past the hold timeout fences the session at its committed frontier", () =>
      Effect.gen(function*() {
        const { acks, appender, settle } = yield* makeLog({ topics: ["t"], holdTimeoutMs: 50 })
        const log = appender(0)
        const e = yield* log.registerSession("t", 2)
        yield* log.append("t", header(2, e, 0), payload)
        yield* log.append("t", header(2, e, 1), payload)
        yield* log.append("t", header(2, e, 3), payload)
        let seen = yield* acks.progress("t")
        for (;;) {
          yield* settle
          if ((yield* acks.sessionAcks("t", 2, e)).fenced) break
          seen = yield* acks.awaitProgress("t", seen, 20)
        }
        const fencedAt = { ordered: 2, replicated: 2, fenced: true, known: true, durableFrozen: false }
        expect(yield* acks.sessionAcks("t", 2, e)).toEqual(fencedAt)
        yield* log.append("t", header(2, e, 2), payload)
        yield* settle
        expect(yield* acks.sessionAcks("t", 2, e)).toEqual(fencedAt)
      }))

    it.scopedLive("awaitProgress resolves when a frontier moves and times out otherwise", () =>
      Effect.gen(function*() {
        const { acks, appender, settle } = yield* makeLog({ topics: ["t"], holdTimeoutMs: 1000 })
        const log = appender(0)
        const seen = yield* acks.progress("t")
        expect(yield* acks.awaitProgress("t", seen, 20)).toBe(seen)
        const e = yield* log.registerSession("t", 3)
        const waiting = yield* Effect.fork(acks.awaitProgress("t", seen, 5_000))
        // A window, not a wait: with no frontier moved the wait must not end in it.
        yield* Effect.sleep("10 millis")
        expect(waiting.unsafePoll()).toBeNull()
        yield* log.append("t", header(3, e, 0), payload)
        yield* settle
        expect(yield* Fiber.join(waiting)).not.toBe(seen)
      }))

    it.scopedLive("appendWith and tryAppendWith take the payload from a fill function", () =>
      Effect.gen(function*() {
        const { acks, appender, settle } = yield* makeLog({ topics: ["t"], holdTimeoutMs: 1000 })
        const log = appender(2)
        const sizes: Array<number> = []
        const fill = (n: number) => (dst: Uint8Array) => {
          sizes.push(dst.length)
          dst.fill(n)
        }
        const e = yield* log.registerSession("t", 4)
        // The fast path may decline (the region's appender sets a topic up on its first append): then appendWith waits.
        if (log.tryAppendWith("t", header(4, e, 0), fill(1)) === "wait") {
          yield* log.appendWith("t", header(4, e, 0), fill(1))
        }
        yield* log.appendWith("t", header(4, e, 1), fill(2))
        expect(log.tryAppendWith("t", header(4, e, 2), fill(3))).toMatchObject({ brokerId: 2 })
        yield* settle
        expect(sizes.every((n) => n === 16)).toBe(true)
        expect((yield* acks.sessionAcks("t", 4, e)).ordered).toBe(3)
      }))
  })

brokerLogContract(
  "layerMemory (the log core's fakes, the sequencer running)",
  ({ holdTimeoutMs, sessionSlots, topics }) =>
    BrokerLogLayers.makeMemoryLog({
      topics: topics.map((name) => ({ name })),
      holdTimeoutMs,
      ...(sessionSlots === undefined ? {} : { sessionSlots })
    })
)

brokerLogContract(
  "the region's layers (fake region)",
  ({ holdTimeoutMs, sessionSlots, topics }) =>
    Effect.gen(function*() {
      const cluster = yield* regionCluster(CxlMemoryMemoryLayers.makeMemory)(
        sessionSlots === undefined ? smallConfig : { ...smallConfig, sessionSlots }
      )
      for (const name of topics) yield* cluster.topics.create({ name, order: 5, ackLevel: 1, replicationFactor: 1 })
      const sequencer = yield* cluster.sequencer({ holdTimeoutMs })
      const appenders: Array<AppenderShape> = []
      for (const id of [0, 1, 2]) appenders.push(yield* cluster.appender(id, { registered: false }))
      return {
        appender: (id: number) => appenders[id]!,
        acks: cluster.acks,
        topics: cluster.topics,
        settle: Effect.orDie(drain(sequencer))
      }
    })
)

describe("MemoryLog", () => {
  it.scopedLive("records the total order with contiguous message orders and its own copy of each payload", () =>
    Effect.gen(function*() {
      const log = yield* BrokerLogLayers.makeMemoryLog({ topics: [{ name: "t" }] })
      // Room for three message headers: the log refuses a batch whose count cannot fit its payload.
      const bytes = new Uint8Array(24).fill(1)
      const e = yield* log.appender(0).registerSession("t", 5)
      yield* log.appender(1).append("t", { ...header(5, e, 1), messageCount: 3, payloadBytes: 24 }, bytes)
      yield* log.appender(0).append("t", { ...header(5, e, 0), messageCount: 2, payloadBytes: 24 }, bytes)
      bytes.fill(9)
      yield* log.settle
      const ordered = log.ordered("t")
      expect(ordered.map((b) => [b.batchSeq, b.broker, b.totalOrder])).toEqual([[0, 0, 0], [1, 1, 2]])
      expect([...ordered[0]!.payload]).toEqual(new Array(24).fill(1))
      expect(log.stats("t")).toMatchObject({ batches: 2, messages: 5, held: 0, duplicates: 0 })
    }))
})
