/**
 * Appenders ordering their own batches (AppenderRounds.ts), one process over a fake region (the
 * live layers' code): with a ready head and nobody inside a round, a batch is in the total order
 * at the end of its append's event-loop turn, with no sequencer step; never while another process
 * holds the round marker (and the head's round waits for it too), never before the head is ready,
 * on an expired lease, on a topic with a copy on disk, or over held batches; rounds of the head
 * and of appenders, interleaved, keep one gap-free order with every batch once.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Metric } from "effect"
import { goiEntryOffset } from "../../src/layers/log/Layout.js"
import { LeaseLine } from "../../src/layers/log/Records.js"
import { GoiEntryView, LeaseLineView, OrderLineView, roundHolder } from "../../src/layers/log/RecordViews.js"
import * as CxlMemoryMemoryLayers from "../../src/layers/region/CxlMemoryMemory.js"
import { Offsets } from "../../src/layers/region/Superblock.js"
import { logAppenderMessagesOrdered } from "../../src/Metrics.js"
import type { CxlMemoryShape } from "../../src/services/region/CxlMemory.js"
import { appendSimple, regionCluster, smallConfig } from "../fixtures/log-harness.js"
import { exitedPid } from "../helpers/Processes.js"

const lease = Offsets.sequencerLease

/** Lets the appender's end-of-turn callback run (it orders there). */
const nextTurns = Effect.promise(() => new Promise<void>((resolve) => setImmediate(() => setImmediate(resolve))))

/** Messages this process's appender rounds have ordered so far (a process-wide counter: compare before and after). */
const appenderMessagesOrdered = Effect.map(Metric.value(logAppenderMessagesOrdered), (state) => Number(state.count))

/** What the head's run loop does once it has taken every topic on: appenders may run rounds. */
const markHeadReady = (memory: CxlMemoryShape) => {
  const lines = new LeaseLineView(memory)
  lines.storeReady(lease, lines.occurrence(lease))
}

/** A region with topic `t` (order 5 unless said), its head (stepped once: the topic taken on) and appenders 0 and 1. */
const setUp = (spec: { order?: 0 | 2 | 4 | 5; rf?: 1 | 2 } = {}) =>
  Effect.gen(function*() {
    const cluster = yield* regionCluster(CxlMemoryMemoryLayers.makeMemory)(smallConfig)
    const { memory, area } = cluster.region!
    const { id: topicId } = yield* cluster.topics.create({
      name: "t",
      order: spec.order ?? 5,
      ackLevel: 1,
      replicationFactor: spec.rf ?? 1
    })
    const head = yield* cluster.sequencer({ leaseMs: 60_000 })
    yield* head.step
    const appenders = [yield* cluster.appender(0), yield* cluster.appender(1)]
    const goi = new GoiEntryView(memory)
    /** GOI entries written so far, counted from 0. */
    const ordered = () => {
      let g = 0
      while (goi.holds(goiEntryOffset(area, topicId, g), g)) g++
      return g
    }
    const committed = () => new OrderLineView(memory).committed(area.orderLine(topicId))
    return { cluster, memory, area, topicId, head, appenders, ordered, committed }
  })

describe("appenders ordering their own batches (fake region)", () => {
  it.scopedLive("with a ready head and nobody in a round, a batch is ordered at the end of its append's turn: no sequencer step", () =>
    Effect.gen(function*() {
      const { cluster, memory, appenders, ordered, committed } = yield* setUp()
      markHeadReady(memory)
      for (let seq = 0; seq < 3; seq++) yield* appendSimple(appenders[0]!, "t", 7, 1, seq)
      yield* nextTurns
      expect(ordered()).toBe(3)
      expect(committed()).toBe(3)
      expect(yield* cluster.acks.sessionAcks("t", 7, 1)).toMatchObject({ ordered: 3, fenced: false })
      // The marker is free again.
      expect(new LeaseLineView(memory).round(lease)).toBe(0n)
    }))

  it.scopedLive("while another live process holds the round marker the appender orders nothing, and the head's round waits for the marker", () =>
    Effect.gen(function*() {
      const { memory, head, appenders, ordered } = yield* setUp()
      markHeadReady(memory)
      const lines = new LeaseLineView(memory)
      // A process inside a round: our parent (alive), tag unknown (the pid alone decides).
      const holder = roundHolder(process.ppid, 0)
      expect(lines.exchangeRound(lease, 0n, holder)).toBe(0n)
      yield* appendSimple(appenders[0]!, "t", 7, 1, 0)
      yield* nextTurns
      expect(ordered()).toBe(0)
      expect(lines.round(lease)).toBe(holder)
      const stepping = yield* Effect.fork(head.step)
      // A window, not a wait: the head tries the marker again after 1, 2, … 16 ms; none of those tries may get in.
      yield* Effect.sleep("100 millis")
      expect(stepping.unsafePoll()).toBe(null)
      expect(ordered()).toBe(0)
      // The holder's round ends: the head's goes on and orders the batch.
      expect(lines.exchangeRound(lease, holder, 0n)).toBe(holder)
      const round = yield* Fiber.join(stepping)
      expect(round.ordered).toBe(1)
      expect(ordered()).toBe(1)
    }))

  it.scopedLive("a marker left by a process that died inside a round: the head takes it over, takes the topic on again and orders; the marker is free after", () =>
    Effect.gen(function*() {
      const { memory, head, appenders, ordered, committed } = yield* setUp()
      yield* appendSimple(appenders[0]!, "t", 7, 1, 0)
      expect((yield* head.step).ordered).toBe(1)
      const lines = new LeaseLineView(memory)
      expect(lines.exchangeRound(lease, 0n, roundHolder(yield* exitedPid, 0))).toBe(0n)
      yield* appendSimple(appenders[0]!, "t", 7, 1, 1)
      yield* appendSimple(appenders[1]!, "t", 8, 1, 0)
      yield* head.step
      expect(ordered()).toBe(3)
      expect(committed()).toBe(3)
      expect(lines.round(lease)).toBe(0n)
    }))

  it.scopedLive("left to the head: before the head is ready, on an expired lease, on a topic with a copy on disk, over held batches", () =>
    Effect.gen(function*() {
      // Not ready: a head that has not taken every topic on (a standby mid-takeover).
      const notReady = yield* setUp()
      yield* appendSimple(notReady.appenders[0]!, "t", 7, 1, 0)
      yield* nextTurns
      expect(notReady.ordered()).toBe(0)
      expect((yield* notReady.head.step).ordered).toBe(1)

      // Expired: the head stopped renewing (stopped or dead): it keeps fencing and takeover to itself.
      const expired = yield* setUp()
      markHeadReady(expired.memory)
      new LeaseLineView(expired.memory).setExpiresAtMs(lease, Date.now() - 1)
      yield* appendSimple(expired.appenders[0]!, "t", 7, 1, 0)
      yield* nextTurns
      expect(expired.ordered()).toBe(0)

      // Replication factor 2: the head's durable tier writes the sessions' durable words.
      const durable = yield* setUp({ rf: 2 })
      markHeadReady(durable.memory)
      yield* appendSimple(durable.appenders[0]!, "t", 7, 1, 0)
      yield* nextTurns
      expect(durable.ordered()).toBe(0)

      // Held: batch 1 before batch 0 (order 5) is held by the head; the appender then leaves the topic to it.
      const held = yield* setUp()
      yield* appendSimple(held.appenders[0]!, "t", 7, 1, 1)
      expect((yield* held.head.step).held).toBe(1)
      markHeadReady(held.memory)
      yield* appendSimple(held.appenders[1]!, "t", 8, 1, 0)
      yield* nextTurns
      expect(held.ordered()).toBe(0)
      // The head orders both the other session's batch and, once batch 0 comes, the held one.
      yield* appendSimple(held.appenders[0]!, "t", 7, 1, 0)
      expect((yield* held.head.step).ordered).toBe(3)
    }))

  for (const order of [5, 4, 2, 0] as const) {
    it.scopedLive(`order ${order}: rounds of the head and of two appenders, interleaved, keep one gap-free order with every batch once`, () =>
      Effect.gen(function*() {
        const { area, appenders, cluster, head, memory, ordered, topicId } = yield* setUp({ order })
        const lines = new LeaseLineView(memory)
        const next = [0, 0]
        const sessionOf = (a: number) => ({ clientId: 10 + a, epoch: 1 })
        // Batches the appenders' own rounds put in the order (no head step in their turns).
        let orderedByAppenders = 0
        const messagesOrderedBefore = yield* appenderMessagesOrdered
        for (let turn = 0; turn < 40; turn++) {
          const orderedBefore = ordered()
          // Some turns the head orders (appenders not allowed), others the appenders do.
          const headTurn = turn % 3 === 0
          lines.storeReady(lease, headTurn ? 0 : lines.occurrence(lease))
          for (let a = 0; a < 2; a++) {
            const { clientId, epoch } = sessionOf(a)
            for (let k = 0; k <= (turn + a) % 3; k++) {
              yield* appendSimple(appenders[a]!, "t", clientId, epoch, next[a]!++)
            }
          }
          // A resend of an ordered batch: dropped as a duplicate by whoever orders it.
          if (turn % 7 === 6) {
            yield* appendSimple(appenders[1]!, "t", sessionOf(0).clientId, sessionOf(0).epoch, next[0]! - 1)
          }
          yield* nextTurns
          if (headTurn) yield* head.step
          else {
            // The appenders' rounds ordered the turn's batches at its end: all appended so far, no head step.
            orderedByAppenders += ordered() - orderedBefore
            expect(ordered()).toBe(next[0]! + next[1]!)
          }
        }
        expect(orderedByAppenders).toBeGreaterThan(0)
        expect((yield* appenderMessagesOrdered) - messagesOrderedBefore).toBeGreaterThan(0)
        lines.storeReady(lease, 0)
        yield* head.step
        const total = next[0]! + next[1]!
        expect(ordered()).toBe(total)
        expect(new OrderLineView(memory).committed(area.orderLine(topicId))).toBe(total)
        // Every batch once, each session's in its own order, the total order contiguous.
        const goi = new GoiEntryView(memory)
        const seen = [new Array<number>(), new Array<number>()]
        let offset = 0
        for (let g = 0; g < total; g++) {
          const e = goiEntryOffset(area, topicId, g)
          expect(goi.totalOrder(e)).toBe(offset)
          offset += goi.messageCount(e)
          seen[goi.clientId(e) - 10]!.push(goi.batchSeq(e))
        }
        for (let a = 0; a < 2; a++) {
          const sorted = [...seen[a]!].sort((x, y) => x - y)
          expect(sorted).toEqual(Array.from({ length: next[a]! }, (_, i) => i))
          if (order === 5) expect(seen[a]).toEqual(sorted)
          expect(yield* cluster.acks.sessionAcks("t", sessionOf(a).clientId, sessionOf(a).epoch)).toMatchObject({
            ordered: next[a]
          })
        }
        expect(Atomics.load(memory.i32, (lease + LeaseLine.round) / 4)).toBe(0)
      }))
  }
})
