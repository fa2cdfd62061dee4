/**
 * Sequencer layers: `layer` orders the region's log (lease in the superblock, state in the
 * log area), `layerMemory` the in-process store. Both drive the same OrderEngine.
 *
 * Per batch the live sequencer writes, in this order: the GOI entry (sequence word last),
 * the PBR slot's finish line (global seq; commit last). Per round: session lines (seqlock),
 * per-broker sequencer lines (consumed-through = the oldest held slot or the scan cursor),
 * then the topic's committed frontier and progress word, then it rings brokers and
 * listeners. Recovery after a crash trusts only what was committed: it replays the GOI
 * past the published frontier, then rescans every PBR from its consumed-through, skipping
 * slots already finished, so no batch is ordered twice or lost.
 */
import { Clock, Effect, Layer, Metric, type Scope } from "effect"
import {
  sequencerBatchesOrdered,
  sequencerDropped,
  sequencerDuplicates,
  sequencerFencedSessions,
  sequencerGoiFullWaits,
  sequencerHeld,
  sequencerMessagesOrdered
} from "../../Metrics.js"
import { CxlMemory } from "../../services/region/CxlMemory.js"
import { Doorbell } from "../../services/region/Doorbell.js"
import {
  defaultSequencerOptions,
  Sequencer,
  SequencerLeaseHeld,
  SequencerLeaseLost,
  type SequencerOptions,
  type SequencerRound,
  type SequencerShape
} from "../../services/log/Sequencer.js"
import { LogCorrupt, type TopicInfo } from "../../services/log/Topics.js"
import type { FlushAudit } from "../region/FlushAudit.js"
import type { LogArea } from "./Layout.js"
import { lowestCursor, type MemoryLogStore, type MemoryTopic } from "./MemoryStore.js"
import { type Backpressure, type DropReason, OrderEngine, type OrderSink, type Session, Verdict } from "./OrderEngine.js"
import { livenessCache, livePid, lowestDurableCursor, newOccurrence, ringEveryone } from "./Participants.js"
import {
  Descriptor,
  DescriptorState,
  Dropped,
  GOI_INVALID,
  GoiEntry,
  goiSeqHi,
  goiSeqLo,
  lapMark,
  LeaseLine,
  OrderLine,
  Participant,
  PbrKind,
  PbrSlot,
  SequencerLine,
  SessionState
} from "./Records.js"
import { isPidAlive } from "../region/ProcessSlot.js"
import { type SessionFields, SessionTable } from "./SessionTable.js"
import { Offsets } from "../region/Superblock.js"
import { readTopic } from "./Topics.js"

export interface SequencerLayerOptions extends SequencerOptions {
  /** Test-only: verify that every GOI entry and PBR finish line is flushed before its commit word. */
  readonly flushAudit?: FlushAudit
  /**
   * `run`: a round that ordered at least this many batches means a busy stream; the next round
   * then waits `busyRoundGapMs`, so rounds carry many batches each (default 4).
   */
  readonly busyRoundBatches?: number
  /**
   * How long `run` waits after a busy round (default 2 ms; 0 = not at all). Every round that
   * moves something wakes every ACK tracker and reader (each then writes ACK frames or reads),
   * so fewer, larger rounds cost far fewer wake-ups per batch across the cluster; a trickle
   * (smaller rounds) is still ordered at once.
   */
  readonly busyRoundGapMs?: number
}

const DEFAULT_BUSY_ROUND_BATCHES = 4
const DEFAULT_BUSY_ROUND_GAP_MS = 2

/** A real-time pause (a plain timer: independent of the TestClock, and nothing rings it). */
const pause = (ms: number) =>
  Effect.async<void>((resume) => {
    const timer = setTimeout(() => resume(Effect.void), ms)
    return Effect.sync(() => clearTimeout(timer))
  })

const DROP_CODE: Record<DropReason, number> = { duplicate: Dropped.duplicate, fenced: Dropped.fenced, refused: Dropped.refused, marker: Dropped.marker }

/** How often idle sessions and dead registrations are looked for. */
const SESSION_SWEEP_MS = 1_000

/** A session's published fields. */
const fieldsOf = (session: Session): SessionFields => ({
  next: session.next,
  orderedMessages: session.orderedMessages,
  duplicates: session.duplicates,
  held: session.held.size,
  lastActivityMs: session.lastActivityMs,
  fenced: session.fenced
})

/** Counts a dropped batch by reason (a close marker is no batch and counts nowhere). */
const countDrop = (reason: DropReason, tally: RoundTally): "duplicates" | "dropped" | undefined => {
  if (reason === "marker") {
    tally.markers++
    return undefined
  }
  if (reason === "duplicate") {
    tally.duplicates++
    return "duplicates"
  }
  tally.dropped++
  return "dropped"
}

/** Per broker counters of one topic, as published in its sequencer line. */
interface BrokerCounters {
  scan: number
  orderedBatches: number
  orderedMessages: number
  duplicates: number
  dropped: number
}

interface RoundTally {
  ordered: number
  messages: number
  duplicates: number
  held: number
  fenced: number
  dropped: number
  /** Close markers handled and sessions released. */
  markers: number
  released: number
  stalled: boolean
  readonly perBroker: Array<{ batches: number; messages: number }>
}

const emptyTally = (brokers: number): RoundTally => ({
  ordered: 0,
  messages: 0,
  duplicates: 0,
  held: 0,
  fenced: 0,
  dropped: 0,
  markers: 0,
  released: 0,
  stalled: false,
  perBroker: Array.from({ length: brokers }, () => ({ batches: 0, messages: 0 }))
})

/** Adds one topic's tally into the round's total (the live and in-memory sequencers both do). */
const addTally = (total: RoundTally, t: RoundTally): void => {
  total.ordered += t.ordered
  total.messages += t.messages
  total.duplicates += t.duplicates
  total.held += t.held
  total.fenced += t.fenced
  total.dropped += t.dropped
  total.markers += t.markers
  total.released += t.released
  total.stalled ||= t.stalled
  for (let b = 0; b < total.perBroker.length; b++) {
    total.perBroker[b]!.batches += t.perBroker[b]!.batches
    total.perBroker[b]!.messages += t.perBroker[b]!.messages
  }
}

/** Records a round's tally in the metrics, without an Effect per update (it runs every round); tagged metrics are made once. */
const makeTallyMetrics = (brokers: number) => {
  const batchesOf = Array.from({ length: brokers }, (_, b) => Metric.tagged(sequencerBatchesOrdered, "broker", String(b)))
  const messagesOf = Array.from({ length: brokers }, (_, b) => Metric.tagged(sequencerMessagesOrdered, "broker", String(b)))
  return (tally: RoundTally, heldNow: number): void => {
    for (let b = 0; b < tally.perBroker.length; b++) {
      const { batches, messages } = tally.perBroker[b]!
      if (batches === 0) continue
      batchesOf[b]!.unsafeUpdate(batches, [])
      messagesOf[b]!.unsafeUpdate(messages, [])
    }
    if (tally.duplicates > 0) sequencerDuplicates.unsafeUpdate(tally.duplicates, [])
    if (tally.fenced > 0) sequencerFencedSessions.unsafeUpdate(tally.fenced, [])
    if (tally.dropped > 0) sequencerDropped.unsafeUpdate(tally.dropped, [])
    if (tally.stalled) sequencerGoiFullWaits.unsafeUpdate(1, [])
    sequencerHeld.unsafeUpdate(heldNow, [])
  }
}

const toRound = (t: RoundTally): SequencerRound => ({
  ordered: t.ordered,
  messages: t.messages,
  duplicates: t.duplicates,
  held: t.held,
  fenced: t.fenced,
  dropped: t.dropped,
  released: t.released,
  stalled: t.stalled
})

const moved = (t: RoundTally) => t.ordered + t.duplicates + t.held + t.fenced + t.dropped + t.markers + t.released > 0

/** Publishes the sessions a round changed; a released one's line was written at its release (and may be reused already). */
const publishDirtySessions = (engine: OrderEngine, table: SessionTable): void => {
  for (const session of engine.dirty) {
    session.dirty = false
    if (!session.released) table.publish(session.slot, session.clientId, session.sessionEpoch, fieldsOf(session))
  }
  engine.dirty.length = 0
}

/** Re-creates the engine's sessions from the table (a restart): active and fenced lines; else names a bad line. */
const restoreSessions = (engine: OrderEngine, table: SessionTable): string | undefined => {
  let problem: string | undefined
  table.forEachSession((slot, clientId, sessionEpoch, state, fields) => {
    if (state !== SessionState.active && state !== SessionState.fenced) return
    if (!Number.isSafeInteger(fields.next) || fields.next < 0) problem ??= `session line ${slot} frontier ${fields.next} is invalid`
    else engine.restore(clientId, sessionEpoch, slot, fields)
  })
  return problem
}

export const make = (area: LogArea, options: SequencerLayerOptions = {}): Effect.Effect<SequencerShape, SequencerLeaseHeld, CxlMemory | Doorbell | Scope.Scope> =>
  Effect.gen(function*() {
    const region = yield* CxlMemory
    const doorbell = yield* Doorbell
    const { config } = area
    const { f64, u32, i32 } = region
    const holdTimeoutMs = options.holdTimeoutMs ?? defaultSequencerOptions.holdTimeoutMs
    const sessionIdleMs = options.sessionIdleMs ?? defaultSequencerOptions.sessionIdleMs
    const leaseMs = options.leaseMs ?? defaultSequencerOptions.leaseMs
    const maxPerBroker = options.maxBatchesPerBroker ?? defaultSequencerOptions.maxBatchesPerBroker
    const audit = options.flushAudit
    const { pbrSlots, goiSlots, blogBytes, maxBrokers } = config
    const lease = Offsets.sequencerLease
    const occurrence = newOccurrence()
    const alive = livenessCache()

    // ---- lease ----------------------------------------------------------------------
    const tryAcquire = (): number | SequencerLeaseHeld => {
      const word = (lease + LeaseLine.occurrence) / 4
      const current = Atomics.load(i32, word)
      const pid = Atomics.load(i32, (lease + LeaseLine.pid) / 4)
      const expiresAtMs = f64[(lease + LeaseLine.expiresAtMs) / 8]!
      const free = current === 0 || Date.now() > expiresAtMs || (pid > 0 && !isPidAlive(pid))
      if (!free || Atomics.compareExchange(i32, word, current, occurrence) !== current) return new SequencerLeaseHeld({ pid, expiresAtMs })
      const epoch = i32[(lease + LeaseLine.epoch) / 4]! + 1
      i32[(lease + LeaseLine.epoch) / 4] = epoch
      i32[(lease + LeaseLine.doorbell) / 4] = doorbell.offset
      f64[(lease + LeaseLine.expiresAtMs) / 8] = Date.now() + leaseMs
      region.publish(lease, 64)
      Atomics.store(i32, (lease + LeaseLine.pid) / 4, process.pid)
      return epoch
    }
    const acquire = Effect.gen(function*() {
      const deadline = Date.now() + (options.waitForLeaseMs ?? defaultSequencerOptions.waitForLeaseMs)
      for (;;) {
        const outcome = tryAcquire()
        if (typeof outcome === "number") return outcome
        if (Date.now() >= deadline) return yield* outcome
        yield* Effect.sleep(Math.min(50, Math.max(1, deadline - Date.now())))
      }
    })
    const epoch = yield* Effect.acquireRelease(acquire, () =>
      Effect.sync(() => {
        if (Atomics.load(i32, (lease + LeaseLine.occurrence) / 4) !== occurrence) return
        Atomics.store(i32, (lease + LeaseLine.pid) / 4, 0)
        i32[(lease + LeaseLine.doorbell) / 4] = 0
        f64[(lease + LeaseLine.expiresAtMs) / 8] = 0
        Atomics.compareExchange(i32, (lease + LeaseLine.occurrence) / 4, occurrence, 0)
        region.publish(lease, 64)
      }))
    const leaseLost = () => new SequencerLeaseLost({ epoch, holderPid: Atomics.load(i32, (lease + LeaseLine.pid) / 4) })
    const holdsLease = () => Atomics.load(i32, (lease + LeaseLine.occurrence) / 4) === occurrence
    const renew = Effect.suspend(() => {
      if (!holdsLease()) return Effect.fail(leaseLost())
      f64[(lease + LeaseLine.expiresAtMs) / 8] = Date.now() + leaseMs
      region.publish(lease + LeaseLine.expiresAtMs, 8)
      return Effect.void
    })

    // ---- one topic ------------------------------------------------------------------
    interface TopicState {
      readonly info: TopicInfo
      readonly engine: OrderEngine
      readonly orderLine: number
      readonly goi: number
      readonly sessions: SessionTable
      readonly brokers: Array<BrokerCounters>
      goiNext: number
      totalNext: number
      /** Lowest durable subscriber cursor, refreshed each round. */
      lowest: number
      tally: RoundTally
      /** What the order line's `stalled` word says now. */
      stalled: boolean
    }

    const pbrSlotAt = (t: number, b: number, pbrSeq: number) => area.pbr(t, b) + (pbrSeq % pbrSlots) * 128

    const finish = (slot: number, pbrSeq: number, globalSeq: number, totalOrder: number) => {
      f64[(slot + PbrSlot.globalSeq) / 8] = globalSeq
      f64[(slot + PbrSlot.totalOrder) / 8] = totalOrder
      region.publish(slot + 64, 64)
      audit?.beforeCommit(`PBR finish ${pbrSeq}`, [slot + 64, PbrSlot.finish - 64])
      Atomics.store(i32, (slot + PbrSlot.finish) / 4, lapMark(pbrSeq, pbrSlots))
      region.publish(slot + PbrSlot.finish, 4)
    }

    const writeGoi = (st: TopicState, g: number, slot: number, broker: number, pbrSeq: number, totalOrder: number) => {
      const e = st.goi + (g % goiSlots) * 64
      // Invalidate first: a reader validating an older entry of this slot then sees a mismatch.
      Atomics.store(i32, (e + GoiEntry.seqLo) / 4, GOI_INVALID)
      f64[(e + GoiEntry.totalOrder) / 8] = totalOrder
      f64[(e + GoiEntry.blogPosition) / 8] = f64[(slot + PbrSlot.blogPosition) / 8]!
      f64[(e + GoiEntry.pbrSeq) / 8] = pbrSeq
      f64[(e + GoiEntry.batchSeq) / 8] = f64[(slot + PbrSlot.batchSeq) / 8]!
      u32[(e + GoiEntry.brokerId) / 4] = broker
      u32[(e + GoiEntry.payloadBytes) / 4] = u32[(slot + PbrSlot.payloadBytes) / 4]!
      u32[(e + GoiEntry.messageCount) / 4] = u32[(slot + PbrSlot.messageCount) / 4]!
      u32[(e + GoiEntry.clientId) / 4] = u32[(slot + PbrSlot.clientId) / 4]!
      u32[(e + GoiEntry.sessionEpoch) / 4] = u32[(slot + PbrSlot.sessionEpoch) / 4]!
      u32[(e + GoiEntry.crc32c) / 4] = u32[(slot + PbrSlot.crc32c) / 4]!
      i32[(e + GoiEntry.seqHi) / 4] = goiSeqHi(g)
      region.publish(e, 64)
      audit?.beforeCommit(`GOI ${g}`, [e, GoiEntry.seqLo])
      Atomics.store(i32, (e + GoiEntry.seqLo) / 4, goiSeqLo(g))
      region.publish(e + GoiEntry.seqLo, 4)
    }

    const makeSink = (st: () => TopicState, t: number): OrderSink => ({
      room: () => {
        const s = st()
        return s.lowest === Infinity ? goiSlots : goiSlots - (s.goiNext - s.lowest)
      },
      order: (broker, pbrSeq) => {
        const s = st()
        const slot = pbrSlotAt(t, broker, pbrSeq)
        const count = u32[(slot + PbrSlot.messageCount) / 4]!
        const g = s.goiNext
        writeGoi(s, g, slot, broker, pbrSeq, s.totalNext)
        finish(slot, pbrSeq, g, s.totalNext)
        s.goiNext = g + 1
        s.totalNext += count
        const counters = s.brokers[broker]!
        counters.orderedBatches++
        counters.orderedMessages += count
        s.tally.ordered++
        s.tally.messages += count
        s.tally.perBroker[broker]!.batches++
        s.tally.perBroker[broker]!.messages += count
        return count
      },
      drop: (broker, pbrSeq, reason) => {
        const s = st()
        finish(pbrSlotAt(t, broker, pbrSeq), pbrSeq, DROP_CODE[reason], 0)
        const counter = countDrop(reason, s.tally)
        if (counter !== undefined) s.brokers[broker]![counter]++
      },
      adoptSession: (clientId, sessionEpoch) => st().sessions.adopt(clientId, sessionEpoch),
      releaseSession: (session) => {
        const s = st()
        s.sessions.release(session.slot, session.clientId, session.sessionEpoch, fieldsOf(session))
        s.tally.released++
      }
    })

    /** Publishes what the round changed: sessions, per-broker lines, then the frontier and progress word. */
    const publishTopic = (st: TopicState) => {
      const { engine } = st
      publishDirtySessions(engine, st.sessions)
      for (let b = 0; b < maxBrokers; b++) {
        const c = st.brokers[b]!
        const line = area.sequencerLine(st.info.id, b)
        f64[(line + SequencerLine.consumedThrough) / 8] = Math.min(engine.lowestHeld(b), c.scan)
        f64[(line + SequencerLine.orderedBatches) / 8] = c.orderedBatches
        f64[(line + SequencerLine.orderedMessages) / 8] = c.orderedMessages
        f64[(line + SequencerLine.duplicates) / 8] = c.duplicates
        f64[(line + SequencerLine.dropped) / 8] = c.dropped
        f64[(line + SequencerLine.held) / 8] = engine.heldCount(b)
        region.publish(line, 64)
      }
      f64[(st.orderLine + OrderLine.committed) / 8] = st.goiNext
      f64[(st.orderLine + OrderLine.totalOrder) / 8] = st.totalNext
      i32[(st.orderLine + OrderLine.epoch) / 4] = epoch
      f64[(st.orderLine + OrderLine.fencedSessions) / 8] = engine.fencedSessions
      f64[(st.orderLine + OrderLine.sessions) / 8] = st.sessions.liveCount()
      region.publish(st.orderLine, 64)
      Atomics.add(i32, (st.orderLine + OrderLine.progress) / 4, 1)
      region.publish(st.orderLine + OrderLine.progress, 4)
    }

    const corrupt = (info: TopicInfo, reason: string) => new LogCorrupt({ reason: `topic ${info.name}: ${reason}` })

    /** Rebuilds a topic's state from the region alone (first sight of the topic, or restart). */
    const recover = (info: TopicInfo): Effect.Effect<TopicState, LogCorrupt> =>
      Effect.suspend(() => {
        const t = info.id
        const orderLine = area.orderLine(t)
        let state: TopicState | undefined
        const engine = new OrderEngine(info.order, holdTimeoutMs, maxBrokers, makeSink(() => state!, t))
        const committed = f64[(orderLine + OrderLine.committed) / 8]!
        const totalOrder = f64[(orderLine + OrderLine.totalOrder) / 8]!
        if (!Number.isSafeInteger(committed) || committed < 0 || !Number.isSafeInteger(totalOrder) || totalOrder < committed) {
          return Effect.fail(corrupt(info, `order line frontier ${committed} / ${totalOrder} is invalid`))
        }
        const brokers: Array<BrokerCounters> = []
        for (let b = 0; b < maxBrokers; b++) {
          const line = area.sequencerLine(t, b)
          const consumed = f64[(line + SequencerLine.consumedThrough) / 8]!
          if (!Number.isSafeInteger(consumed) || consumed < 0) return Effect.fail(corrupt(info, `broker ${b} consumed-through ${consumed} is invalid`))
          brokers.push({
            scan: consumed,
            orderedBatches: f64[(line + SequencerLine.orderedBatches) / 8]!,
            orderedMessages: f64[(line + SequencerLine.orderedMessages) / 8]!,
            duplicates: f64[(line + SequencerLine.duplicates) / 8]!,
            dropped: f64[(line + SequencerLine.dropped) / 8]!
          })
        }
        const st: TopicState = {
          info,
          engine,
          orderLine,
          goi: area.goi(t),
          sessions: new SessionTable(region, area.sessions(t), area.registryLine(t), config.sessionSlots),
          brokers,
          goiNext: committed,
          totalNext: totalOrder,
          lowest: lowestDurableCursor(region, area, t, alive),
          tally: emptyTally(maxBrokers),
          stalled: false
        }
        state = st
        const badLine = restoreSessions(engine, st.sessions)
        if (badLine !== undefined) return Effect.fail(corrupt(info, badLine))
        // Every retained GOI entry, and the tail past the published frontier that a killed
        // sequencer committed: frontiers and duplicate detection must account for them all.
        for (let g = Math.max(0, committed - goiSlots); ; g++) {
          const e = st.goi + (g % goiSlots) * 64
          const valid = Atomics.load(i32, (e + GoiEntry.seqLo) / 4) === goiSeqLo(g) && i32[(e + GoiEntry.seqHi) / 4] === goiSeqHi(g)
          if (!valid) {
            if (g < committed) continue
            break
          }
          const broker = u32[(e + GoiEntry.brokerId) / 4]!
          const pbrSeq = f64[(e + GoiEntry.pbrSeq) / 8]!
          const count = u32[(e + GoiEntry.messageCount) / 4]!
          if (broker >= maxBrokers || !Number.isSafeInteger(pbrSeq) || pbrSeq < 0) return Effect.fail(corrupt(info, `GOI entry ${g} is invalid`))
          // Released sessions are over: their lines hold final frontiers.
          const session = engine.session(u32[(e + GoiEntry.clientId) / 4]!, u32[(e + GoiEntry.sessionEpoch) / 4]!)
          if (session !== undefined) engine.recoverOrdered(session, f64[(e + GoiEntry.batchSeq) / 8]!)
          if (g < committed) continue
          if (f64[(e + GoiEntry.totalOrder) / 8] !== st.totalNext) return Effect.fail(corrupt(info, `GOI entry ${g} breaks the total order`))
          const slot = pbrSlotAt(t, broker, pbrSeq)
          if (Atomics.load(i32, (slot + PbrSlot.finish) / 4) !== lapMark(pbrSeq, pbrSlots)) finish(slot, pbrSeq, g, st.totalNext)
          st.goiNext = g + 1
          st.totalNext += count
        }
        publishTopic(st)
        return Effect.succeed(st)
      })

    /** Scans the topic's PBRs once; returns false when its GOI stalled. */
    const scanTopic = (st: TopicState, nowMs: number) => {
      const t = st.info.id
      const { engine } = st
      st.lowest = lowestDurableCursor(region, area, t, alive)
      for (let b = 0; b < maxBrokers; b++) {
        const counters = st.brokers[b]!
        let s = counters.scan
        for (let n = 0; n < maxPerBroker; n++) {
          const slot = pbrSlotAt(t, b, s)
          region.invalidate(slot, 128)
          const lap = lapMark(s, pbrSlots)
          if (Atomics.load(i32, (slot + PbrSlot.commit) / 4) !== lap) break
          // Finished before a restart (a slot after a held one): already accounted for.
          if (Atomics.load(i32, (slot + PbrSlot.finish) / 4) === lap) {
            s++
            continue
          }
          if (u32[(slot + PbrSlot.kind) / 4] === PbrKind.close && f64[(slot + PbrSlot.pbrSeq) / 8] === s) {
            const batches = f64[(slot + PbrSlot.batchSeq) / 8]!
            engine.close(b, s, u32[(slot + PbrSlot.clientId) / 4]!, u32[(slot + PbrSlot.sessionEpoch) / 4]!, Number.isSafeInteger(batches) ? batches : 0, nowMs)
            s++
            continue
          }
          const bytes = u32[(slot + PbrSlot.payloadBytes) / 4]!
          const count = u32[(slot + PbrSlot.messageCount) / 4]!
          const position = f64[(slot + PbrSlot.blogPosition) / 8]!
          const batchSeq = f64[(slot + PbrSlot.batchSeq) / 8]!
          const sane = count >= 1 && bytes % 8 === 0 && bytes >= 8 * count && bytes <= config.maxBatchBytes &&
            Number.isSafeInteger(position) && position >= 0 && position % 64 === 0 && (position % blogBytes) + bytes <= blogBytes &&
            Number.isSafeInteger(batchSeq) && batchSeq >= 0 && f64[(slot + PbrSlot.pbrSeq) / 8] === s
          if (!sane) {
            finish(slot, s, Dropped.corrupt, 0)
            counters.dropped++
            st.tally.dropped++
            s++
            continue
          }
          const verdict = engine.arrive(b, s, u32[(slot + PbrSlot.clientId) / 4]!, u32[(slot + PbrSlot.sessionEpoch) / 4]!, batchSeq, nowMs)
          if (verdict === Verdict.stall) {
            st.tally.stalled = true
            break
          }
          if (verdict === Verdict.held) st.tally.held++
          s++
        }
        counters.scan = s
        if (st.tally.stalled) break
      }
      st.tally.fenced += engine.expire(nowMs, backpressure(st.tally.stalled))
    }

    /** Brokers (live owners) with appends waiting for PBR or Blog room; the line does not say which topic. */
    const backpressure = (stalled: boolean): Backpressure => {
      if (stalled) return "stalled"
      for (let b = 0; b < maxBrokers; b++) {
        const owner = area.brokerOwner(b)
        region.invalidate(owner, 64)
        if (Atomics.load(i32, (owner + Participant.roomWaits) / 4) > 0 && livePid(region, owner) !== 0) return "room"
      }
      return "none"
    }

    const topics: Array<TopicState> = []
    const known = new Set<number>()

    /** Table slots whose descriptor became ready since we last looked (one atomic load per unknown slot). */
    const newTopics = (): Array<number> => {
      const fresh: Array<number> = []
      if (known.size === config.maxTopics) return fresh
      for (let t = 0; t < config.maxTopics; t++) {
        if (known.has(t)) continue
        const at = area.descriptor(t)
        region.invalidate(at, 64)
        if (Atomics.load(i32, (at + Descriptor.state) / 4) === DescriptorState.ready) fresh.push(t)
      }
      return fresh
    }

    const discover = () =>
      Effect.forEach(newTopics(), (t) => {
        known.add(t)
        const info = readTopic(region, area, t)
        if (info === undefined) return Effect.logError(`sequencer: topic table slot ${t} holds an invalid descriptor; it is not ordered`)
        return recover(info).pipe(
          Effect.map((st) => topics.push(st)),
          Effect.catchAll((e) => Effect.logError(`sequencer: ${e.message}; topic ${info.name} is not ordered`))
        )
      }, { discard: true })

    const tallyMetrics = makeTallyMetrics(maxBrokers)
    let nextSweepMs = 0

    /** One round over every known topic, as plain code (it runs for every few batches). */
    const round = (nowMs: number): SequencerRound => {
      const total = emptyTally(maxBrokers)
      let heldNow = 0
      let any = false
      const sweep = nowMs >= nextSweepMs
      if (sweep) nextSweepMs = nowMs + SESSION_SWEEP_MS
      for (const st of topics) {
        st.tally = emptyTally(maxBrokers)
        scanTopic(st, nowMs)
        if (sweep) {
          st.engine.evictIdle(nowMs, sessionIdleMs)
          st.tally.released += st.sessions.releaseDeadClaims()
        }
        const t = st.tally
        if (t.stalled !== st.stalled) {
          // Set before the sequencer waits for GOI room, so readers moving their cursors ring it (see LogReader).
          st.stalled = t.stalled
          Atomics.store(i32, (st.orderLine + OrderLine.stalled) / 4, t.stalled ? 1 : 0)
          region.publish(st.orderLine + OrderLine.stalled, 4)
        }
        if (moved(t) || st.engine.dirty.length > 0) {
          publishTopic(st)
          any = true
        }
        addTally(total, t)
        for (let b = 0; b < maxBrokers; b++) heldNow += st.engine.heldCount(b)
      }
      if (any) ringEveryone(region, area, doorbell)
      tallyMetrics(total, heldNow)
      return toRound(total)
    }

    const step: Effect.Effect<SequencerRound, SequencerLeaseLost> = Effect.flatMap(Clock.currentTimeMillis, (nowMs) => {
      if (!holdsLease()) return Effect.fail(leaseLost())
      // Discovery is an Effect (it logs); a round without a new topic stays plain code.
      return newTopics().length > 0
        ? Effect.zipRight(discover(), Effect.sync(() => round(nowMs)))
        : Effect.succeed(round(nowMs))
    })

    /** Something to scan: a committed slot at a scan cursor, a new topic, or GOI room for a stalled topic. */
    const hasWork = (): boolean => {
      for (const st of topics) {
        for (let b = 0; b < maxBrokers; b++) {
          const s = st.brokers[b]!.scan
          const slot = pbrSlotAt(st.info.id, b, s)
          region.invalidate(slot, 64)
          if (Atomics.load(i32, (slot + PbrSlot.commit) / 4) === lapMark(s, pbrSlots)) return true
        }
      }
      return newTopics().length > 0
    }

    const nextDeadline = () => topics.reduce((d, st) => Math.min(d, st.engine.nextDeadline()), Infinity)

    /**
     * Waits on the doorbell for `hasWork`, with the lease line's `waiting` word set meanwhile
     * (appenders ring only then). Set before `hasWork` is first checked: an appender commits,
     * then reads the word, so either it sees 1 and rings, or the check sees its commit.
     */
    const markWaiting = (waiting: 0 | 1) =>
      Effect.sync(() => {
        Atomics.store(i32, (lease + LeaseLine.waiting) / 4, waiting)
        region.publish(lease + LeaseLine.waiting, 4)
      })
    const awaitWork = (timeoutMs: number) => Effect.acquireUseRelease(markWaiting(1), () => doorbell.await(hasWork, timeoutMs), () => markWaiting(0))

    const busyBatches = options.busyRoundBatches ?? DEFAULT_BUSY_ROUND_BATCHES
    const busyGapMs = options.busyRoundGapMs ?? DEFAULT_BUSY_ROUND_GAP_MS

    const run: Effect.Effect<never, SequencerLeaseLost> = Effect.gen(function*() {
      let renewedAt = 0
      for (;;) {
        if (Date.now() - renewedAt >= leaseMs / 3) {
          yield* renew
          renewedAt = Date.now()
        }
        const round = yield* step
        if (round.ordered + round.duplicates + round.held + round.fenced + round.dropped > 0 && !round.stalled) {
          yield* busyGapMs > 0 && round.ordered >= busyBatches ? pause(busyGapMs) : Effect.yieldNow()
          continue
        }
        const nowMs = yield* Clock.currentTimeMillis
        const idleMs = Math.max(1, Math.min(round.stalled ? 5 : 100, leaseMs / 3, nextDeadline() - nowMs))
        yield* awaitWork(idleMs)
      }
    })

    return { epoch, step, run }
  })

export const layer = (area: LogArea, options: SequencerLayerOptions = {}): Layer.Layer<Sequencer, SequencerLeaseHeld, CxlMemory | Doorbell> =>
  Layer.scoped(Sequencer, make(area, options))

// ---- in-memory ----------------------------------------------------------------------

export const makeMemory = (store: MemoryLogStore, options: SequencerOptions = {}): Effect.Effect<SequencerShape, SequencerLeaseHeld, Scope.Scope> =>
  Effect.gen(function*() {
    const holdTimeoutMs = options.holdTimeoutMs ?? defaultSequencerOptions.holdTimeoutMs
    const sessionIdleMs = options.sessionIdleMs ?? defaultSequencerOptions.sessionIdleMs
    const maxPerBroker = options.maxBatchesPerBroker ?? defaultSequencerOptions.maxBatchesPerBroker
    const { config } = store
    const occurrence = newOccurrence()
    yield* Effect.acquireRelease(
      Effect.suspend(() => {
        if (store.sequencer !== 0) return Effect.fail(new SequencerLeaseHeld({ pid: process.pid, expiresAtMs: Infinity }))
        store.sequencer = occurrence
        store.epoch++
        return Effect.void
      }),
      () => Effect.sync(() => store.sequencer === occurrence && (store.sequencer = 0))
    )
    const epoch = store.epoch

    interface MemoryState {
      readonly topic: MemoryTopic
      readonly engine: OrderEngine
      readonly scan: Array<number>
      tally: RoundTally
    }

    const batchAt = (topic: MemoryTopic, broker: number, pbrSeq: number) => {
      const b = topic.brokers[broker]!
      return b.pbr[pbrSeq - b.reclaimed]!
    }

    const makeState = (topic: MemoryTopic): MemoryState => {
      let state: MemoryState | undefined
      const sink: OrderSink = {
        room: () => {
          const lowest = lowestCursor(topic)
          const next = topic.goiBase + topic.goi.length
          return lowest === Infinity ? config.goiSlots : config.goiSlots - (next - lowest)
        },
        order: (broker, pbrSeq) => {
          const batch = batchAt(topic, broker, pbrSeq)
          batch.globalSeq = topic.goiBase + topic.goi.length
          batch.totalOrder = topic.totalOrder
          batch.finished = true
          topic.goi.push(batch)
          if (topic.goi.length > config.goiSlots) {
            topic.goi.shift()
            topic.goiBase++
          }
          topic.totalOrder += batch.messageCount
          const b = topic.brokers[broker]!
          b.orderedBatches++
          b.orderedMessages += batch.messageCount
          const tally = state!.tally
          tally.ordered++
          tally.messages += batch.messageCount
          tally.perBroker[broker]!.batches++
          tally.perBroker[broker]!.messages += batch.messageCount
          return batch.messageCount
        },
        drop: (broker, pbrSeq, reason) => {
          const batch = batchAt(topic, broker, pbrSeq)
          batch.finished = true
          batch.globalSeq = DROP_CODE[reason]
          const counter = countDrop(reason, state!.tally)
          if (counter !== undefined) topic.brokers[broker]![counter]++
        },
        adoptSession: (clientId, sessionEpoch) => topic.sessions.adopt(clientId, sessionEpoch),
        releaseSession: (session) => {
          topic.sessions.release(session.slot, session.clientId, session.sessionEpoch, fieldsOf(session))
          state!.tally.released++
        }
      }
      const engine = new OrderEngine(topic.info.order, holdTimeoutMs, config.maxBrokers, sink)
      state = { topic, engine, scan: topic.brokers.map((b) => b.consumedThrough), tally: emptyTally(config.maxBrokers) }
      // A restarted sequencer: sessions from the table, duplicates from the retained GOI.
      restoreSessions(engine, topic.sessions)
      for (const batch of topic.goi) {
        const session = engine.session(batch.clientId, batch.sessionEpoch)
        if (session !== undefined) engine.recoverOrdered(session, batch.batchSeq)
      }
      return state
    }

    const states = new Map<MemoryTopic, MemoryState>()
    const tallyMetrics = makeTallyMetrics(config.maxBrokers)
    let nextSweepMs = 0

    const step: Effect.Effect<SequencerRound, SequencerLeaseLost> = Effect.gen(function*() {
      if (store.sequencer !== occurrence) return yield* new SequencerLeaseLost({ epoch, holderPid: process.pid })
      const nowMs = yield* Clock.currentTimeMillis
      const total = emptyTally(config.maxBrokers)
      let heldNow = 0
      const sweep = nowMs >= nextSweepMs
      if (sweep) nextSweepMs = nowMs + SESSION_SWEEP_MS
      yield* Effect.sync(() => {
        let any = false
        for (const topic of store.topics) {
          let st = states.get(topic)
          if (st === undefined) {
            st = makeState(topic)
            states.set(topic, st)
          }
          st.tally = emptyTally(config.maxBrokers)
          for (let b = 0; b < config.maxBrokers && !st.tally.stalled; b++) {
            const broker = topic.brokers[b]!
            let s = st.scan[b]!
            for (let n = 0; n < maxPerBroker && s < broker.head; n++) {
              const batch = batchAt(topic, b, s)
              if (batch.finished) {
                s++
                continue
              }
              if (batch.kind === PbrKind.close) {
                st.engine.close(b, s, batch.clientId, batch.sessionEpoch, batch.batchSeq, nowMs)
                s++
                continue
              }
              const verdict = st.engine.arrive(b, s, batch.clientId, batch.sessionEpoch, batch.batchSeq, nowMs)
              if (verdict === Verdict.stall) {
                st.tally.stalled = true
                break
              }
              if (verdict === Verdict.held) st.tally.held++
              s++
            }
            st.scan[b] = s
          }
          const roomWaits = topic.brokers.some((b) => b.roomWaits > 0)
          st.tally.fenced += st.engine.expire(nowMs, st.tally.stalled ? "stalled" : roomWaits ? "room" : "none")
          if (sweep) st.engine.evictIdle(nowMs, sessionIdleMs)
          const t = st.tally
          if (moved(t) || st.engine.dirty.length > 0) {
            publishDirtySessions(st.engine, topic.sessions)
            for (let b = 0; b < config.maxBrokers; b++) {
              topic.brokers[b]!.consumedThrough = Math.min(st.engine.lowestHeld(b), st.scan[b]!)
              topic.brokers[b]!.held = st.engine.heldCount(b)
            }
            topic.progress++
            any = true
          }
          addTally(total, t)
          for (let b = 0; b < config.maxBrokers; b++) heldNow += st.engine.heldCount(b)
        }
        if (any) store.signal.notify()
      })
      tallyMetrics(total, heldNow)
      return toRound(total)
    })

    const hasWork = () =>
      store.topics.some((topic) => {
        const st = states.get(topic)
        return st === undefined || topic.brokers.some((b, i) => st.scan[i]! < b.head)
      })

    const run: Effect.Effect<never, SequencerLeaseLost> = Effect.gen(function*() {
      for (;;) {
        const round = yield* step
        if (round.ordered + round.duplicates + round.held + round.fenced + round.dropped > 0 && !round.stalled) {
          yield* Effect.yieldNow()
          continue
        }
        const nowMs = yield* Clock.currentTimeMillis
        let deadline = Infinity
        for (const st of states.values()) deadline = Math.min(deadline, st.engine.nextDeadline())
        yield* store.signal.await(hasWork, Math.max(1, Math.min(round.stalled ? 5 : 100, deadline - nowMs)))
      }
    })

    return { epoch, step, run }
  })

export const layerMemory = (store: MemoryLogStore, options: SequencerOptions = {}): Layer.Layer<Sequencer, SequencerLeaseHeld> =>
  Layer.scoped(Sequencer, makeMemory(store, options))
