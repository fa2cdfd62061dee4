/**
 * AckTracker: the one acknowledgement algorithm (`ackTrackerOver`: a session's frontiers
 * from its session line, the bounded wait for a batch, per-broker counts) over an
 * `AckSource`, and the live layer, whose source is the region: session lines (a seqlock) and
 * broker counters read in any process, parking on the process doorbell, which the sequencer
 * rings after every round that moved something. The fake's source is the in-process store
 * (AckTrackerMemory.ts).
 */
import { Effect, Layer, type Scope } from "effect"
import {
  AckTimeout,
  AckTracker,
  type AckTrackerShape,
  type BrokerCounts,
  type DurableFailure,
  durableFailureOf,
  type SessionAcks,
  SessionFenced,
  type SessionWatch
} from "../../services/log/AckTracker.js"
import { orderPolicy } from "../../services/log/OrderModes.js"
import { type AckLevel, TopicDeleted, type TopicInfo, TopicNotFound } from "../../services/log/Topics.js"
import { CxlMemory, type CxlMemoryShape, LINE_BYTES } from "../../services/region/CxlMemory.js"
import { HolderLinesFull } from "../../services/region/Directory.js"
import { Doorbell } from "../../services/region/Doorbell.js"
import { type LogArea, PBR_SLOT_BYTES } from "./Layout.js"
import {
  lineTaken,
  type ListenerAwait,
  type ListenerWatch,
  type Listening,
  listening,
  listeningForOrdering
} from "./Participants.js"
import { PbrSlot } from "./Records.js"
import { BrokerLineView, OrderLineView, PbrSlotView, SequencerLineView } from "./RecordViews.js"
import { type SessionTable, UNSETTLED } from "./SessionTable.js"
import { readLane } from "./TopicLanes.js"
import { type TopicHold, topicPins } from "./TopicPins.js"
import { regionSessionTables, topicResolver } from "./Topics.js"

/** One topic as the AckTracker reads it, wherever its records live. */
export interface AckTopic {
  readonly info: TopicInfo
  readonly sessions: SessionTable
  readonly brokers: number
  /** Batches broker `b` appended. */
  readonly sent: (b: number) => number
  /** Batches of broker `b` the sequencer finished (ordered or dropped as duplicates). */
  readonly acked: (b: number) => number
  /** Whether a process owns broker slot `b`. */
  readonly owned: (b: number) => boolean
  /** A number that changes whenever a frontier of the topic may have moved. */
  readonly progress: () => number
  /** The total order of the batch at (broker `b`, `pbrSeq`) once ordered (see `AckTrackerShape.totalOrders`). */
  readonly totalOrder: (b: number, pbrSeq: number) => number | undefined
  /** Why the topic's copy on disk stopped, if it did (replication factor 2). */
  readonly durableFailure: () => DurableFailure | undefined
  /** Whether the topic was deleted (its records are not read from then on). */
  readonly deleted: () => boolean
}

export interface AckSource {
  readonly topic: (name: string) => Effect.Effect<AckTopic, TopicNotFound>
  /** True as soon as `condition()` holds, false after `timeoutMs`. */
  readonly await: ListenerAwait
  /** The same wait as a standing callback (see `ListenerWatch`). */
  readonly watch: ListenerWatch
  /**
   * Waits woken only when broker `broker`'s batches are ordered (or when any frontier may have
   * moved otherwise), for ACK trackers in the process owning that broker slot; undefined where
   * the source has no such waits.
   */
  readonly ordering?: (broker: number) => Listening | undefined
}

const UNKNOWN: SessionAcks = { ordered: 0, replicated: 0, fenced: false, known: false, durableFrozen: false }
/** Sessions whose last reading an ACK tracker keeps (a few per connection). */
const LAST_SEEN_LIMIT = 4096

/** A session whose line could not be read yet (its writer preempted mid-write): nothing acked, nothing concluded. */
const NOT_YET_READ: SessionAcks = { ordered: 0, replicated: 0, fenced: false, known: true, durableFrozen: false }

/** The frontier at `level`: level 2 is the durable frontier with replication factor 2, and equals level 1 with 1. */
const ackedAt = (acks: SessionAcks, level: AckLevel) => (level === 2 ? acks.replicated : acks.ordered)

/** Each broker's acked/sent counts, leaving out slots that never appended and have no owner. */
const brokerCounts = (t: AckTopic): ReadonlyArray<BrokerCounts> => {
  const result: Array<BrokerCounts> = []
  for (let b = 0; b < t.brokers; b++) {
    const sent = t.sent(b)
    if (sent === 0 && !t.owned(b)) continue
    result.push({ brokerId: b, acked: t.acked(b), sent })
  }
  return result
}

/** The AckTracker service over a source: every acknowledgement, wherever its records live, runs this code. */
export const ackTrackerOver = (source: AckSource): AckTrackerShape => {
  /**
   * Where each session was last found and what it said (lines are reused, so the table checks
   * the key again). Only a shortcut and a fallback, so it is dropped whole when it grows large:
   * sessions that ended are never asked about again and would otherwise stay forever.
   */
  const lastSeen = new Map<string, { readonly slot: number; readonly acks: SessionAcks }>()

  /** acknowledge: what the session's line says, as ACK frontiers (a released session is over like a fenced one). */
  const acknowledge = (
    t: AckTopic,
    clientId: number,
    sessionEpoch: number,
    key = `${t.info.id}/${clientId}/${sessionEpoch}`
  ): SessionAcks => {
    const seen = lastSeen.get(key)
    // A deleted topic's lines may be another object's soon: its frontiers stay where they were last read.
    if (t.deleted()) return seen?.acks ?? NOT_YET_READ
    const record = t.sessions.lookup(clientId, sessionEpoch, seen?.slot)
    // Frontiers only grow, so the last reading stands until the line can be read again.
    if (record === UNSETTLED) return seen?.acks ?? NOT_YET_READ
    if (record === undefined) {
      lastSeen.delete(key)
      return UNKNOWN
    }
    // Replication factor 2 keeps a copy on disk: level 2 is the durable frontier the head's durable tier publishes.
    const durable = t.info.replicationFactor >= 2
    const replicated = durable ? Math.min(record.durable, record.next) : record.next
    const acks = {
      ordered: record.next,
      replicated,
      fenced: record.state !== "active",
      known: true,
      durableFrozen: durable && record.durableFrozen
    }
    if (lastSeen.size >= LAST_SEEN_LIMIT && !lastSeen.has(key)) lastSeen.clear()
    lastSeen.set(key, { slot: record.slot, acks })
    return acks
  }

  /** Until batch `batchSeq` is acknowledged at `level`, the session is fenced, its topic deleted, or the timeout. */
  const awaitAcked = (
    t: AckTopic,
    clientId: number,
    sessionEpoch: number,
    batchSeq: number,
    options: { readonly timeoutMs: number; readonly level?: AckLevel }
  ): Effect.Effect<SessionAcks, AckTimeout | SessionFenced | TopicDeleted> =>
    Effect.gen(function*() {
      const level = options.level ?? t.info.ackLevel
      let acks = UNKNOWN
      const done = () => {
        acks = acknowledge(t, clientId, sessionEpoch)
        return level === 0 || acks.fenced || ackedAt(acks, level) > batchSeq || t.deleted()
      }
      const started = performance.now()
      yield* source.await(done, options.timeoutMs)
      if (level === 0 || ackedAt(acks, level) > batchSeq) return acks
      if (t.deleted()) return yield* new TopicDeleted({ name: t.info.name })
      if (acks.fenced) {
        return yield* new SessionFenced({ topic: t.info.name, clientId, sessionEpoch, committed: acks.ordered })
      }
      return yield* new AckTimeout({
        topic: t.info.name,
        clientId,
        sessionEpoch,
        batchSeq,
        level,
        acked: ackedAt(acks, level),
        waitedMs: Math.round(performance.now() - started),
        brokers: brokerCounts(t)
      })
    })

  /** The topic's progress once it differs from `seen`: at once when it already does (no wait, no listener count). */
  const awaitProgress = (
    t: AckTopic,
    seen: number,
    timeoutMs: number,
    wait: ListenerAwait = source.await
  ): Effect.Effect<number> => {
    const moved = () => t.progress() !== seen
    return moved() ? Effect.sync(t.progress) : Effect.map(wait(moved, timeoutMs), () => t.progress())
  }

  const watch = (t: AckTopic, clientId: number, sessionEpoch: number, carrier: number | undefined): SessionWatch => {
    const key = `${t.info.id}/${clientId}/${sessionEpoch}`
    // In sequence a session's frontier passes a batch in the round that orders it (its
    // predecessors are ordered by then), so its carrier's tracker need only wake for its own
    // broker's batches. Otherwise the frontier may move with another broker's batch.
    const waits =
      (carrier !== undefined && orderPolicy(t.info.order).sessionInSequence ? source.ordering?.(carrier) : undefined) ??
        source
    return {
      acks: () => acknowledge(t, clientId, sessionEpoch, key),
      progress: t.progress,
      awaitProgress: (seen, timeoutMs) => awaitProgress(t, seen, timeoutMs, waits.await),
      standing: waits.watch,
      durableFailure: t.durableFailure,
      deleted: t.deleted
    }
  }

  return {
    watch: (topic, clientId, sessionEpoch, carrier) =>
      Effect.map(source.topic(topic), (t) => watch(t, clientId, sessionEpoch, carrier)),
    sessionAcks: (topic, clientId, sessionEpoch) =>
      Effect.map(source.topic(topic), (t) => acknowledge(t, clientId, sessionEpoch)),
    brokerCounts: (topic) => Effect.map(source.topic(topic), brokerCounts),
    totalOrders: (topic) => Effect.map(source.topic(topic), (t) => t.totalOrder),
    progress: (topic) => Effect.map(source.topic(topic), (t) => t.progress()),
    awaitProgress: (topic, seen, timeoutMs) =>
      Effect.flatMap(source.topic(topic), (t) => awaitProgress(t, seen, timeoutMs)),
    awaitAcked: (topic, clientId, sessionEpoch, batchSeq, options) =>
      Effect.flatMap(source.topic(topic), (t) => awaitAcked(t, clientId, sessionEpoch, batchSeq, options))
  }
}

// ---- the region ---------------------------------------------------------------------

/**
 * A topic's session lines, broker lines and order line in the region, at the offsets it had when
 * it was set up (a later topic in its slot has others). Read while `hold` keeps it; once the hold
 * is let go (the topic was deleted), nothing of it is read again.
 */
const regionTopic = (
  region: CxlMemoryShape,
  area: LogArea,
  sessions: SessionTable,
  info: TopicInfo,
  hold: TopicHold,
  released: () => boolean
): AckTopic => {
  const t = info.id
  const brokerLines = new BrokerLineView(region)
  const sequencerLines = new SequencerLineView(region)
  const orderLines = new OrderLineView(region)
  const orderLine = area.orderLine(t)
  const slots = area.placeOf(t).shape.pbrSlots
  /** Each writer slot's lane lines, once it has a lane here (a lane never moves while the topic lives). */
  const lanes = new Array<{ readonly line: number; readonly sequencer: number; readonly pbr: number } | undefined>(
    area.config.maxBrokers
  )
  const laneOf = (b: number) => {
    const known = lanes[b]
    if (known !== undefined || readLane(region, area, t, b) <= 0) return known
    return lanes[b] = { line: area.brokerLine(t, b), sequencer: area.sequencerLine(t, b), pbr: area.pbr(t, b) }
  }
  const pbr = new PbrSlotView(region)
  return {
    info,
    sessions,
    brokers: area.config.maxBrokers,
    sent: (b) => {
      const lane = released() ? undefined : laneOf(b)
      return lane === undefined ? 0 : brokerLines.pbrHead(lane.line)
    },
    acked: (b) => {
      const lane = released() ? undefined : laneOf(b)
      return lane === undefined ? 0 : sequencerLines.consumedThrough(lane.sequencer)
    },
    owned: (b) => lineTaken(region, area.brokerOwner(b)),
    progress: () => {
      if (released()) return -1
      region.invalidate(orderLine, LINE_BYTES)
      return orderLines.progress(orderLine)
    },
    durableFailure: () => {
      if (released()) return undefined
      region.invalidate(orderLine, LINE_BYTES)
      return durableFailureOf(orderLines.durableFailure(orderLine))
    },
    deleted: () => released() || hold.deleted(),
    totalOrder: (b, pbrSeq) => {
      const lane = released() ? undefined : laneOf(b)
      if (lane === undefined) return undefined
      // Until the broker appends at pbrSeq + slots the slot's sequencer line is this batch's.
      if (brokerLines.pbrHead(lane.line) - pbrSeq > slots) return undefined
      const slot = lane.pbr + (pbrSeq % slots) * PBR_SLOT_BYTES
      region.invalidate(slot + PbrSlot.sequencerLine, LINE_BYTES)
      if (!pbr.finished(slot, pbrSeq) || pbr.globalSeq(slot) < 0) return undefined
      return pbr.totalOrder(slot)
    }
  }
}

/** Each topic the tracker reads, held (TopicPins.ts) until it is deleted: then it is dropped and let go. */
const regionTopics = (region: CxlMemoryShape, area: LogArea) => {
  const pins = topicPins(region, area)
  const sessionTable = regionSessionTables(region, area)
  const topics = new Map<number, { readonly topic: AckTopic; readonly hold: TopicHold }>()
  const drop = (id: number, hold: TopicHold) => {
    if (topics.get(id)?.hold !== hold) return
    topics.delete(id)
    hold.release()
  }
  const topicOf = (info: TopicInfo): Effect.Effect<AckTopic, TopicDeleted | HolderLinesFull> =>
    Effect.suspend(() => {
      const known = topics.get(info.id)
      if (known !== undefined && known.hold.info.generation === info.generation) return Effect.succeed(known.topic)
      if (known !== undefined) drop(info.id, known.hold)
      let released = false
      const hold = pins.hold(info, () => {
        released = true
        drop(info.id, hold as TopicHold)
      })
      if (hold instanceof TopicDeleted || hold instanceof HolderLinesFull) return Effect.fail(hold)
      const topic = regionTopic(region, area, sessionTable(info), info, hold, () => released)
      topics.set(info.id, { topic, hold })
      return Effect.succeed(topic)
    })
  const releaseAll = () => {
    for (const { hold } of topics.values()) hold.release()
    topics.clear()
  }
  return { topicOf, releaseAll }
}

export const make = (area: LogArea): Effect.Effect<AckTrackerShape, never, CxlMemory | Doorbell | Scope.Scope> =>
  Effect.gen(function*() {
    const region = yield* CxlMemory
    const doorbell = yield* Doorbell
    const listener = yield* listening(region, area, doorbell)
    const resolve = topicResolver(region, area)
    const topics = regionTopics(region, area)
    yield* Effect.addFinalizer(() => Effect.sync(topics.releaseAll))
    return ackTrackerOver({
      // A topic deleted as it is set up is one not found; the few holder lines all taken is a defect of the region's shape.
      topic: (name) =>
        Effect.flatMap(resolve(name), (info) =>
          topics.topicOf(info).pipe(
            Effect.catchTags({
              TopicDeleted: () => Effect.fail(new TopicNotFound({ name })),
              HolderLinesFull: (e) => Effect.die(e)
            })
          )),
      await: listener.await,
      watch: listener.watch,
      ordering: (broker) => listeningForOrdering(region, area, doorbell, broker)
    })
  })

export const layer = (area: LogArea): Layer.Layer<AckTracker, never, CxlMemory | Doorbell> =>
  Layer.scoped(AckTracker, make(area))
