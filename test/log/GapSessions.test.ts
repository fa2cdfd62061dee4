import { describe, expect, it } from "@effect/vitest"
import { Effect, Metric, TestClock } from "effect"
import { makeMemoryDisk } from "../../src/layers/log/durable/SegmentsMemory.js"
import * as SegmentsMemoryLayers from "../../src/layers/log/durable/SegmentsMemory.js"
import { goiEntryOffset, type LogConfig, sessionLineOffset, withBlogBytes } from "../../src/layers/log/Layout.js"
import { findTopic } from "../../src/layers/log/MemoryStore.js"
import { AHEAD_WINDOW, GoiEntry } from "../../src/layers/log/Records.js"
import { SessionLineView } from "../../src/layers/log/RecordViews.js"
import { sessionHash } from "../../src/layers/log/SessionTable.js"
import { sequencerLapsedSessions } from "../../src/Metrics.js"
import type { AppenderShape } from "../../src/services/log/Appender.js"
import type { SequencerShape } from "../../src/services/log/Sequencer.js"
import {
  appendSimple,
  drain,
  type Implementation,
  implementations,
  type LogCluster,
  readAll
} from "../fixtures/log-harness.js"
import { type Recorded, recoverInto, writeStream } from "../fixtures/recovery.js"

/**
 * Orders 0/2/4 order a session's batches above a gap (its batch lost with a broker). Which
 * ones were ordered must survive the head (a restart or a takeover finds them in the session
 * line once the GOI entries are overwritten), and such a session ends only in a way that
 * neither has them replayed nor acknowledges the missing batch (docs/log.md, "Sessions with a gap").
 */

/** A GOI of 16 entries, so a few dozen batches overwrite every entry. */
const config: LogConfig = withBlogBytes({
  maxBrokers: 2,
  pbrSlots: 8,
  goiSlots: 16,
  sessionSlots: 16,
  subscriberSlots: 2,
  listenerSlots: 8,
  maxBatchBytes: 4096
}, 16384)

const spec = (order: 0 | 2 | 4 | 5) => ({ name: "t", order, ackLevel: 1 as const, replicationFactor: 1 })

/** cxlog_sequencer_lapsed_sessions now (a process-wide counter: tests compare it before and after). */
const lapsedCount = Effect.map(Metric.value(sequencerLapsedSessions), (state) => state.count)

/** Client 7's batch 1 (2 messages) is ordered through broker 1; its batch 0 went to a broker that died before appending it. */
const orderAboveGap = (a1: AppenderShape, sequencer: SequencerShape) =>
  Effect.gen(function*() {
    yield* appendSimple(a1, "t", 7, 1, 1, 2)
    expect(yield* sequencer.step).toMatchObject({ ordered: 1 })
  })

/** Another session's `n` batches through broker 0, one round each (the PBR recycles): every GOI entry is overwritten. */
const overwriteGoi = (a0: AppenderShape, sequencer: SequencerShape, n = 3 * config.goiSlots) =>
  Effect.gen(function*() {
    for (let seq = 0; seq < n; seq++) {
      yield* appendSimple(a0, "t", 9, 1, seq, 1)
      yield* sequencer.step
    }
  })

/** Client 7's session line in the region, to write its words as a killed head would have left them. */
const sessionLineOf = (cluster: LogCluster, topicId: number) => {
  const found = cluster.sessions("t").lookup(7, 1)
  if (found === undefined || found === "unsettled") throw new Error("session 7 not found")
  const { memory, area } = cluster.region!
  return { lines: new SessionLineView(memory), line: sessionLineOffset(area, topicId, found.slot) }
}

for (const impl of implementations) {
  describe(`Sessions with a gap: ${impl.label}`, () => {
    for (const order of [0, 2, 4] as const) {
      it.scoped(`mode ${order}: a head that restarts after the GOI entries of batches ordered above a gap were overwritten orders none of them again`, () =>
        Effect.gen(function*() {
          const cluster = yield* impl.make(config)
          yield* cluster.topics.create(spec(order))
          const [a0, a1] = yield* Effect.forEach([0, 1], (b) => cluster.appender(b))
          yield* Effect.scoped(Effect.gen(function*() {
            const first = yield* cluster.sequencer()
            yield* orderAboveGap(a1!, first)
            yield* overwriteGoi(a0!, first)
          }))
          expect((yield* readAll(cluster.reader, "t")).some((b) => b.clientId === 7)).toBe(false)
          // The new head; the publisher reconnects and resends what is not acknowledged: batches 0 and 1.
          const second = yield* cluster.sequencer()
          yield* appendSimple(a0!, "t", 7, 1, 0, 1)
          yield* appendSimple(a0!, "t", 7, 1, 1, 2)
          expect(yield* second.step).toMatchObject({ ordered: 1, duplicates: 1 })
          yield* drain(second)
          // Batch 0 once (1 message); batch 1's copy was dropped, not ordered a second time.
          expect(
            (yield* readAll(cluster.reader, "t")).filter((b) => b.clientId === 7).map((
              b
            ) => [b.batchSeq, b.messageCount])
          ).toEqual([[0, 1]])
          expect(yield* cluster.acks.sessionAcks("t", 7, 1)).toMatchObject({ ordered: 2, fenced: false })
        }))

      it.scoped(`mode ${order}: a log recovered from the durable tier keeps what a session ordered above its gap: a resend of it is a duplicate, after the idle bound too`, () =>
        Effect.gen(function*() {
          // The stream: client 7's batch 1 (its batch 0 lost with a broker), then another session's batches, more than the GOI holds.
          const filler = 3 * config.goiSlots
          const records: Array<Recorded> = [
            { globalSeq: 0, totalOrder: 0, clientId: 7, sessionEpoch: 1, batchSeq: 1, sizes: [16, 16] },
            ...Array.from(
              { length: filler },
              (_, i) => ({
                globalSeq: 1 + i,
                totalOrder: 2 + i,
                clientId: 9,
                sessionEpoch: 2,
                batchSeq: i,
                sizes: [16]
              })
            )
          ]
          const disk = makeMemoryDisk()
          yield* writeStream(disk, "t", records)
          const cluster = yield* impl.make(config)
          const topic = yield* cluster.topics.create(spec(order))
          expect(yield* recoverInto(cluster, topic, SegmentsMemoryLayers.layerMemory(disk))).toMatchObject({
            batches: 1 + filler,
            sessions: 2
          })
          // Recovered lines were last active at the wall clock's now.
          yield* TestClock.setTime(Date.now())
          const sequencer = yield* cluster.sequencer({ sessionIdleMs: 5_000, sessionGapIdleMs: 20_000 })
          const a0 = yield* cluster.appender(0, { registered: false })
          yield* appendSimple(a0, "t", 7, 1, 1, 2)
          expect(yield* sequencer.step).toMatchObject({ ordered: 0, duplicates: 1 })
          // Past the idle bound the filler session idles out; the gap session is kept and its publisher resends both.
          yield* TestClock.adjust("6000 millis")
          expect(yield* sequencer.step).toMatchObject({ released: 1 })
          expect(yield* cluster.acks.sessionAcks("t", 7, 1)).toMatchObject({ ordered: 0, known: true })
          yield* appendSimple(a0, "t", 7, 1, 0, 1)
          yield* appendSimple(a0, "t", 7, 1, 1, 2)
          expect(yield* sequencer.step).toMatchObject({ ordered: 1, duplicates: 1 })
          expect(
            (yield* readAll(cluster.reader, "t")).filter((b) => b.clientId === 7).map((
              b
            ) => [b.batchSeq, b.messageCount])
          ).toEqual([[0, 1]])
          expect(yield* cluster.acks.sessionAcks("t", 7, 1)).toMatchObject({ ordered: 2, fenced: false })
        }))

      it.scoped(`mode ${order}: a stream with a batch further above its session's frontier than the sequencer orders is RecoveryFailed, nothing loaded`, () =>
        Effect.gen(function*() {
          const disk = makeMemoryDisk()
          yield* writeStream(disk, "t", [
            { globalSeq: 0, totalOrder: 0, clientId: 7, sessionEpoch: 1, batchSeq: AHEAD_WINDOW, sizes: [16] },
            { globalSeq: 1, totalOrder: 1, clientId: 7, sessionEpoch: 1, batchSeq: AHEAD_WINDOW + 1, sizes: [16] }
          ])
          const cluster = yield* impl.make(config)
          const topic = yield* cluster.topics.create(spec(order))
          const error = yield* Effect.flip(recoverInto(cluster, topic, SegmentsMemoryLayers.layerMemory(disk)))
          expect(error).toMatchObject({ _tag: "RecoveryFailed" })
          expect(error.message).toMatch(
            new RegExp(
              `record 1 is batch ${AHEAD_WINDOW + 1} of session 7/1, more than ${AHEAD_WINDOW} above its frontier 0`
            )
          )
          expect(cluster.sessions("t").lookup(7, 1)).toBeUndefined()
        }))

      it.scoped(`mode ${order}: a gap session outlives the idle bound (a restarted head too) and lapses at the gap bound: unknown to its publisher, its batches refused`, () =>
        Effect.gen(function*() {
          const cluster = yield* impl.make(config)
          yield* cluster.topics.create(spec(order))
          const [a0, a1] = yield* Effect.forEach([0, 1], (b) => cluster.appender(b))
          const bounds = { sessionIdleMs: 5_000, sessionGapIdleMs: 20_000 }
          yield* Effect.scoped(Effect.gen(function*() {
            const first = yield* cluster.sequencer(bounds)
            yield* orderAboveGap(a1!, first)
            yield* overwriteGoi(a0!, first)
          }))
          const sequencer = yield* cluster.sequencer(bounds)
          const sessions = cluster.sessions("t")
          const line = sessions.lookup(7, 1)
          if (line === undefined || line === "unsettled") throw new Error("session 7 has no line")
          yield* TestClock.adjust("6000 millis")
          // The filler session idles out; the gap session is kept (its line still says frontier 0 and known).
          expect(yield* sequencer.step).toMatchObject({ released: 1 })
          expect(sessions.liveCount()).toBe(1)
          expect(yield* cluster.acks.sessionAcks("t", 7, 1)).toEqual({
            ordered: 0,
            replicated: 0,
            fenced: false,
            known: true,
            durableFrozen: false
          })
          yield* TestClock.adjust("13000 millis")
          expect(yield* sequencer.step).toMatchObject({ released: 0, lapsed: 0 })
          yield* TestClock.adjust("2000 millis")
          const lapsedBefore = yield* lapsedCount
          expect(yield* sequencer.step).toMatchObject({ released: 0, lapsed: 1 })
          expect((yield* lapsedCount) - lapsedBefore).toBe(1)
          expect(sessions.liveCount()).toBe(0)
          // Not a frontier to replay from (batch 1 would be ordered twice), nor one past the missing batch 0: unknown.
          expect(yield* cluster.acks.sessionAcks("t", 7, 1)).toEqual({
            ordered: 0,
            replicated: 0,
            fenced: false,
            known: false,
            durableFrozen: false
          })
          // A late resend of the lapsed session is refused, never ordered (through broker 1, whose harness appender does not register it again).
          yield* appendSimple(a1!, "t", 7, 1, 0, 1)
          expect(yield* sequencer.step).toMatchObject({ ordered: 0, dropped: 1 })
          // Its line is free again: a registration whose probe starts there takes it.
          let client = 30
          while (sessionHash(client, 1000, config.sessionSlots) !== line.slot) client++
          expect(sessions.registerAs(client, 1000, 0)).toEqual({ sessionEpoch: 1000, slot: line.slot })
        }))

      it.scoped(`mode ${order}: a batch more than ${AHEAD_WINDOW} past its session's frontier waits until the gap closes; a gap that outlives the hold timeout lapses the session`, () =>
        Effect.gen(function*() {
          const cluster = yield* impl.make(config)
          yield* cluster.topics.create(spec(order))
          const [a0, a1] = yield* Effect.forEach([0, 1], (b) => cluster.appender(b))
          const sequencer = yield* cluster.sequencer({ holdTimeoutMs: 1_000 })
          // Session 7: batch 0 lost; batches AHEAD_WINDOW and AHEAD_WINDOW + 1 fit the line, + 2 does not.
          const far = AHEAD_WINDOW + 1
          yield* appendSimple(a1!, "t", 7, 1, AHEAD_WINDOW, 1)
          yield* appendSimple(a1!, "t", 7, 1, far, 1)
          expect(yield* sequencer.step).toMatchObject({ ordered: 1, held: 1 })
          // Batches 0..AHEAD_WINDOW - 1 arrive: the frontier moves and the held batch is ordered, once.
          for (let seq = 0; seq < AHEAD_WINDOW; seq++) {
            yield* appendSimple(a0!, "t", 7, 1, seq, 1)
            if (seq % 4 === 3) yield* drain(sequencer)
          }
          yield* drain(sequencer)
          // Batches 0..far all ordered, in far + 1 GOI entries: each once.
          expect(yield* cluster.acks.sessionAcks("t", 7, 1)).toMatchObject({ ordered: far + 1, fenced: false })
          expect((yield* readAll(cluster.reader, "t")).at(-1)?.globalSeq).toBe(far)

          // Session 8: the same with its gap never closing. Nothing may be replayed (batch 1 is ordered), so it lapses.
          yield* appendSimple(a1!, "t", 8, 1, 1, 1)
          yield* appendSimple(a1!, "t", 8, 1, AHEAD_WINDOW + 2, 1)
          expect(yield* sequencer.step).toMatchObject({ ordered: 1, held: 1 })
          yield* TestClock.adjust("1000 millis")
          expect(yield* sequencer.step).toMatchObject({ fenced: 0, dropped: 1, released: 0, lapsed: 1 })
          expect(yield* cluster.acks.sessionAcks("t", 8, 1)).toMatchObject({ known: false })
          // Session 9: nothing ordered above the gap: fenced at its frontier, as in mode 5 (its publisher replays from there).
          yield* appendSimple(a1!, "t", 9, 1, AHEAD_WINDOW + 1, 1)
          expect(yield* sequencer.step).toMatchObject({ ordered: 0, held: 1 })
          yield* TestClock.adjust("1000 millis")
          expect(yield* sequencer.step).toMatchObject({ fenced: 1, dropped: 1 })
          expect(yield* cluster.acks.sessionAcks("t", 9, 1)).toEqual({
            ordered: 0,
            replicated: 0,
            fenced: true,
            known: true,
            durableFrozen: false
          })
        }))
    }
  })
}

/** Sets the batch seq that GOI entry `g` of topic "t" names, as a damaged entry would (the region's words, or the memory store's entry). */
const damageGoiEntry = (cluster: LogCluster, topicId: number, g: number, batchSeq: number) => {
  if (cluster.region !== undefined) {
    const { memory, area } = cluster.region
    memory.f64[(goiEntryOffset(area, topicId, g) + GoiEntry.batchSeq) / 8] = batchSeq
    return
  }
  const topic = findTopic(cluster.store!, "t")!
  topic.goi[g - topic.goiBase] = { ...topic.goi[g - topic.goiBase]!, batchSeq }
}

for (const impl of implementations) {
  describe(`Sessions with a gap, a damaged GOI entry: ${impl.label}`, () => {
    for (const order of [0, 2, 4] as const) {
      it.scoped(`mode ${order}: an entry naming a batch further above its session's frontier than the sequencer orders is LogCorrupt to a restarted head (the topic is not ordered), never a defect`, () =>
        Effect.gen(function*() {
          const cluster = yield* impl.make(config)
          const info = yield* cluster.topics.create(spec(order))
          const [a0, a1] = yield* Effect.forEach([0, 1], (b) => cluster.appender(b))
          yield* Effect.scoped(Effect.gen(function*() {
            yield* orderAboveGap(a1!, yield* cluster.sequencer())
          }))
          damageGoiEntry(cluster, info.id, 0, AHEAD_WINDOW + 1)
          const second = yield* cluster.sequencer()
          yield* appendSimple(a0!, "t", 7, 1, 0, 1)
          expect(yield* second.step).toMatchObject({ ordered: 0 })
        }))
    }
  })
}

/**
 * Topic "t" in `order` with client 7's batches 0 and 1 ordered through broker 1 (with `aboveGap`,
 * batch 1 alone, above its gap), then every GOI entry overwritten, by a head since gone.
 */
const orderedThenOverwritten = (impl: Implementation, order: 0 | 2 | 4 | 5, aboveGap: boolean) =>
  Effect.gen(function*() {
    const cluster = yield* impl.make(config)
    const info = yield* cluster.topics.create(spec(order))
    const [a0, a1] = yield* Effect.forEach([0, 1], (b) => cluster.appender(b))
    yield* Effect.scoped(Effect.gen(function*() {
      const first = yield* cluster.sequencer()
      if (aboveGap) {
        yield* orderAboveGap(a1!, first)
      } else {
        yield* appendSimple(a1!, "t", 7, 1, 0, 1)
        yield* appendSimple(a1!, "t", 7, 1, 1, 2)
        yield* drain(first)
      }
      yield* overwriteGoi(a0!, first)
    }))
    return { cluster, info, a1: a1! }
  })

/** Region implementations only: the test writes a session line's words directly. */
for (const impl of implementations.filter((i) => i.label !== "layerMemory")) {
  describe(`Sessions with a gap, a head killed inside a session line's write: ${impl.label}`, () => {
    for (const order of [0, 2, 4, 5] as const) {
      it.scoped(`mode ${order}: the restarted head ${order === 5 ? "restores the line (its frontier is one word)" : "lapses the torn line: no batch its bitmap may misstate is acknowledged or ordered"}`, () =>
        Effect.gen(function*() {
          const { cluster, info, a1 } = yield* orderedThenOverwritten(impl, order, order !== 5)
          // Orders 0/2/4: the line says frontier 0, batch 1 ordered above it (bit 0). The head resent batch 0 its way,
          // ordered it and was killed writing the line: frontier 2 stored, the bitmap not yet cleared, so it reads as batch 3.
          const { lines, line } = sessionLineOf(cluster, info.id)
          expect(lines.aheadWord(line, 0)).toBe(order === 5 ? 0 : 1)
          lines.storeVersion(line, lines.version(line) + 1)
          lines.setNext(line, 2)
          const lapsedBefore = yield* lapsedCount
          const second = yield* cluster.sequencer()
          yield* appendSimple(a1, "t", 7, 1, 3, 1)
          if (order === 5) {
            // A frontier written whole: batch 2 is next, batch 3 waits for it.
            expect(yield* second.step).toMatchObject({ ordered: 0, held: 1 })
            expect(yield* cluster.acks.sessionAcks("t", 7, 1)).toMatchObject({ ordered: 2, known: true })
          } else {
            // Not a duplicate (it was never ordered, and would be acknowledged as one): refused, its session unknown.
            expect(yield* second.step).toMatchObject({ ordered: 0, duplicates: 0, dropped: 1 })
            expect(yield* cluster.acks.sessionAcks("t", 7, 1)).toMatchObject({ ordered: 0, known: false })
            expect(cluster.sessions("t").liveCount()).toBe(1)
          }
          // Counted when the head found it (its first round).
          expect((yield* lapsedCount) - lapsedBefore).toBe(order === 5 ? 0 : 1)
        }))
    }
    for (const order of [0, 2, 4] as const) {
      it.scoped(`mode ${order}: a torn line whose bitmap reads empty is restored (nothing was ordered above its frontier before that write), and its session goes on`, () =>
        Effect.gen(function*() {
          const { cluster, info, a1 } = yield* orderedThenOverwritten(impl, order, false)
          // No gap: the bitmap is empty, and a head killed inside the line's next write leaves it odd.
          const { lines, line } = sessionLineOf(cluster, info.id)
          expect(lines.aheadWord(line, 0)).toBe(0)
          lines.storeVersion(line, lines.version(line) + 1)
          const lapsedBefore = yield* lapsedCount
          const second = yield* cluster.sequencer()
          yield* appendSimple(a1, "t", 7, 1, 2, 1)
          expect(yield* second.step).toMatchObject({ ordered: 1, dropped: 0 })
          expect(yield* cluster.acks.sessionAcks("t", 7, 1)).toMatchObject({ ordered: 3, known: true })
          expect((yield* lapsedCount) - lapsedBefore).toBe(0)
        }))
    }
  })
}
