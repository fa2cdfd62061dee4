import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, type Scope } from "effect"
import * as BrokerLogLayers from "../src/layers/BrokerLog.js"
import type { BatchHeader, BrokerLogShape } from "../src/services/BrokerLog.js"

/** Builds a log with `topics` whose sessions are fenced after `holdTimeoutMs`; returns broker views. */
type MakeLog = (options: { topics: ReadonlyArray<string>; holdTimeoutMs: number }) => Effect.Effect<(brokerId: number) => BrokerLogShape, unknown, Scope.Scope>

const header = (clientId: number, sessionEpoch: number, batchSeq: number): BatchHeader => ({
  clientId,
  sessionEpoch,
  batchSeq,
  messageCount: 1,
  payloadBytes: 16,
  crc32c: 0
})
const payload = new Uint8Array(16)

/** The BrokerLog contract; the live adapter over the log core runs the same suite. */
const brokerLogContract = (label: string, makeLog: MakeLog) =>
  describe(`BrokerLog contract: ${label}`, () => {
    it.scopedLive("an unknown topic is a typed error everywhere", () =>
      Effect.gen(function*() {
        const log = (yield* makeLog({ topics: ["t"], holdTimeoutMs: 1000 }))(0)
        expect((yield* Effect.flip(log.topic("nope")))._tag).toBe("UnknownTopic")
        expect((yield* Effect.flip(log.append("nope", header(1, 0, 0), payload)))._tag).toBe("UnknownTopic")
        expect((yield* Effect.flip(log.sessionAcks("nope", 1, 0)))._tag).toBe("UnknownTopic")
        expect((yield* log.topic("t")).name).toBe("t")
      }))

    it.scopedLive("mode 5: next → ordered, duplicate → dropped but acknowledged, ahead → held until the gap closes", () =>
      Effect.gen(function*() {
        const broker = yield* makeLog({ topics: ["t"], holdTimeoutMs: 5_000 })
        const b0 = broker(0)
        const b1 = broker(1)
        expect(yield* b0.sessionAcks("t", 1, 0)).toEqual({ ordered: 0, replicated: 0, fenced: false })
        yield* b0.append("t", header(1, 0, 0), payload)
        expect((yield* b1.sessionAcks("t", 1, 0)).ordered).toBe(1)
        const before = b0.progress("t")
        yield* b1.append("t", header(1, 0, 0), payload)
        expect(b0.progress("t")).not.toBe(before)
        expect((yield* b0.sessionAcks("t", 1, 0)).ordered).toBe(1)
        yield* b1.append("t", header(1, 0, 2), payload)
        yield* b1.append("t", header(1, 0, 3), payload)
        expect((yield* b0.sessionAcks("t", 1, 0)).ordered).toBe(1)
        yield* b0.append("t", header(1, 0, 1), payload)
        expect(yield* b1.sessionAcks("t", 1, 0)).toEqual({ ordered: 4, replicated: 4, fenced: false })
        // Another epoch of the same client is another session.
        expect((yield* b0.sessionAcks("t", 1, 1)).ordered).toBe(0)
      }))

    it.scopedLive("a gap open past the hold timeout fences the session at its committed frontier", () =>
      Effect.gen(function*() {
        const log = (yield* makeLog({ topics: ["t"], holdTimeoutMs: 50 }))(0)
        yield* log.append("t", header(2, 0, 0), payload)
        yield* log.append("t", header(2, 0, 1), payload)
        yield* log.append("t", header(2, 0, 3), payload)
        let seen = log.progress("t")
        while (!(yield* log.sessionAcks("t", 2, 0)).fenced) seen = yield* log.awaitProgress("t", seen, 1_000)
        expect(yield* log.sessionAcks("t", 2, 0)).toEqual({ ordered: 2, replicated: 2, fenced: true })
        yield* log.append("t", header(2, 0, 2), payload)
        expect(yield* log.sessionAcks("t", 2, 0)).toEqual({ ordered: 2, replicated: 2, fenced: true })
      }))

    it.scopedLive("awaitProgress resolves when a frontier moves and times out otherwise", () =>
      Effect.gen(function*() {
        const log = (yield* makeLog({ topics: ["t"], holdTimeoutMs: 1000 }))(0)
        const seen = log.progress("t")
        expect(yield* log.awaitProgress("t", seen, 20)).toBe(seen)
        const waiting = yield* Effect.fork(log.awaitProgress("t", seen, 5_000))
        yield* Effect.sleep("10 millis")
        yield* log.append("t", header(3, 0, 0), payload)
        expect(yield* Fiber.join(waiting)).not.toBe(seen)
      }))
  })

brokerLogContract("layerMemory", ({ holdTimeoutMs, topics }) =>
  Effect.map(BrokerLogLayers.makeMemoryLog({ topics: topics.map((name) => ({ name })), holdTimeoutMs }), (log) => log.forBroker))

describe("MemoryLog", () => {
  it.scopedLive("records the total order with contiguous message orders and its own copy of each payload", () =>
    Effect.gen(function*() {
      const log = yield* BrokerLogLayers.makeMemoryLog({ topics: [{ name: "t" }] })
      const bytes = new Uint8Array(16).fill(1)
      yield* log.forBroker(1).append("t", { ...header(5, 0, 1), messageCount: 3 }, bytes)
      yield* log.forBroker(0).append("t", { ...header(5, 0, 0), messageCount: 2 }, bytes)
      bytes.fill(9)
      const ordered = log.ordered("t")
      expect(ordered.map((b) => [b.batchSeq, b.broker, b.firstOrder])).toEqual([[0, 0, 0], [1, 1, 2]])
      expect([...ordered[0]!.payload]).toEqual(new Array(16).fill(1))
      expect(log.stats("t")).toMatchObject({ batches: 2, messages: 5, held: 0, duplicates: 0 })
    }))
})
