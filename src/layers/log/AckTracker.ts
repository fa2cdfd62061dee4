/**
 * AckTracker layers: `layer` reads session lines (a seqlock) and broker counters from the
 * region in any process and parks on the process doorbell, which the sequencer rings after
 * every round that moved something; `layerMemory` reads the in-process store.
 */
import { Effect, Layer, type Scope } from "effect"
import { AckTimeout, AckTracker, type AckTrackerShape, type BrokerCounts, type SessionAcks, SessionFenced } from "../../services/log/AckTracker.js"
import { CxlMemory } from "../../services/region/CxlMemory.js"
import { Doorbell } from "../../services/region/Doorbell.js"
import { type AckLevel, LogCorrupt, type TopicInfo, TopicNotFound } from "../../services/log/Topics.js"
import type { LogArea } from "./Layout.js"
import type { MemoryLogStore, MemoryTopic } from "./MemoryStore.js"
import { listen } from "./Participants.js"
import { BrokerLine, OrderLine, Participant, SequencerLine } from "./Records.js"
import { type SessionRecord, SessionTable } from "./SessionTable.js"
import { topicResolver } from "./Topics.js"

const UNKNOWN: SessionAcks = { ordered: 0, replicated: 0, fenced: false, known: false }

/** What the session's line says, as ACK frontiers (a released session is over like a fenced one). */
const acksOf = (record: SessionRecord | undefined): SessionAcks =>
  record === undefined ? UNKNOWN : { ordered: record.next, replicated: record.next, fenced: record.state !== "active", known: true }

/** The frontier at `level`: level 2 equals level 1 while replication factor is 1 (creating RF > 1 is refused). */
const ackedAt = (acks: SessionAcks, level: AckLevel) => (level === 2 ? acks.replicated : acks.ordered)

/** The shared wait: until batch `batchSeq` is acknowledged at `level`, the session is fenced, or the timeout. */
const awaitAckedWith = (
  topic: TopicInfo,
  clientId: number,
  sessionEpoch: number,
  batchSeq: number,
  options: { readonly timeoutMs: number; readonly level?: AckLevel },
  read: () => SessionAcks | LogCorrupt,
  wait: (condition: () => boolean, timeoutMs: number) => Effect.Effect<boolean>,
  counts: () => ReadonlyArray<BrokerCounts>
): Effect.Effect<SessionAcks, AckTimeout | SessionFenced | LogCorrupt> =>
  Effect.gen(function*() {
    const level = options.level ?? topic.ackLevel
    let last: SessionAcks | LogCorrupt = UNKNOWN
    const done = () => {
      last = read()
      return last instanceof LogCorrupt || level === 0 || last.fenced || ackedAt(last, level) > batchSeq
    }
    const started = performance.now()
    yield* wait(done, options.timeoutMs)
    const acks: SessionAcks | LogCorrupt = last
    if (acks instanceof LogCorrupt) return yield* acks
    if (level === 0 || ackedAt(acks, level) > batchSeq) return acks
    if (acks.fenced) return yield* new SessionFenced({ topic: topic.name, clientId, sessionEpoch, committed: acks.ordered })
    return yield* new AckTimeout({
      topic: topic.name,
      clientId,
      sessionEpoch,
      batchSeq,
      level,
      acked: ackedAt(acks, level),
      waitedMs: Math.round(performance.now() - started),
      brokers: counts()
    })
  })

export const make = (area: LogArea): Effect.Effect<AckTrackerShape, never, CxlMemory | Doorbell | Scope.Scope> =>
  Effect.gen(function*() {
    const region = yield* CxlMemory
    const doorbell = yield* Doorbell
    yield* listen(region, area, doorbell)
    const { config } = area
    const { f64, i32 } = region
    const resolve = topicResolver(region, area)
    const tables = new Map<number, SessionTable>()
    /** Where each session was last found (lines are reused, so the table checks the key again). */
    const hints = new Map<string, number>()

    const read = (t: number, clientId: number, sessionEpoch: number): SessionAcks => {
      let table = tables.get(t)
      if (table === undefined) {
        table = new SessionTable(region, area.sessions(t), area.registryLine(t), config.sessionSlots)
        tables.set(t, table)
      }
      const key = `${t}/${clientId}/${sessionEpoch}`
      const record = table.lookup(clientId, sessionEpoch, hints.get(key))
      if (record !== undefined) hints.set(key, record.slot)
      return acksOf(record)
    }

    const counts = (t: number): ReadonlyArray<BrokerCounts> => {
      const result: Array<BrokerCounts> = []
      for (let b = 0; b < config.maxBrokers; b++) {
        const sent = f64[(area.brokerLine(t, b) + BrokerLine.pbrHead) / 8]!
        const owned = Atomics.load(i32, (area.brokerOwner(b) + Participant.occurrence) / 4) !== 0
        if (sent === 0 && !owned) continue
        result.push({ brokerId: b, acked: f64[(area.sequencerLine(t, b) + SequencerLine.consumedThrough) / 8]!, sent })
      }
      return result
    }

    const progressOf = (t: number) => {
      const line = area.orderLine(t)
      region.invalidate(line, 64)
      return Atomics.load(i32, (line + OrderLine.progress) / 4)
    }

    return {
      sessionAcks: (topic, clientId, sessionEpoch) =>
        Effect.map(resolve(topic), (info) => read(info.id, clientId, sessionEpoch)),
      brokerCounts: (topic) => Effect.map(resolve(topic), (info) => counts(info.id)),
      progress: (topic) => Effect.map(resolve(topic), (info) => progressOf(info.id)),
      awaitProgress: (topic, seen, timeoutMs) =>
        Effect.flatMap(resolve(topic), (info) =>
          Effect.map(doorbell.await(() => progressOf(info.id) !== seen, timeoutMs), () => progressOf(info.id))),
      awaitAcked: (topic, clientId, sessionEpoch, batchSeq, options) =>
        Effect.flatMap(resolve(topic), (info) =>
          awaitAckedWith(info, clientId, sessionEpoch, batchSeq, options, () => read(info.id, clientId, sessionEpoch), doorbell.await, () =>
            counts(info.id)))
    }
  })

export const layer = (area: LogArea): Layer.Layer<AckTracker, never, CxlMemory | Doorbell> => Layer.scoped(AckTracker, make(area))

export const makeMemory = (store: MemoryLogStore): AckTrackerShape => {
  const topicOf = (name: string): Effect.Effect<MemoryTopic, TopicNotFound> => {
    const topic = store.topics.find((t) => t.info.name === name)
    return topic === undefined ? Effect.fail(new TopicNotFound({ name })) : Effect.succeed(topic)
  }
  const read = (topic: MemoryTopic, clientId: number, sessionEpoch: number): SessionAcks => acksOf(topic.sessions.lookup(clientId, sessionEpoch))
  const counts = (topic: MemoryTopic): ReadonlyArray<BrokerCounts> =>
    topic.brokers.flatMap((b, brokerId) =>
      b.head === 0 && !store.owners.has(brokerId) ? [] : [{ brokerId, acked: b.consumedThrough, sent: b.head }]
    )
  return {
    sessionAcks: (name, clientId, sessionEpoch) => Effect.map(topicOf(name), (topic) => read(topic, clientId, sessionEpoch)),
    brokerCounts: (name) => Effect.map(topicOf(name), counts),
    progress: (name) => Effect.map(topicOf(name), (topic) => topic.progress),
    awaitProgress: (name, seen, timeoutMs) =>
      Effect.flatMap(topicOf(name), (topic) => Effect.map(store.signal.await(() => topic.progress !== seen, timeoutMs), () => topic.progress)),
    awaitAcked: (name, clientId, sessionEpoch, batchSeq, options) =>
      Effect.flatMap(topicOf(name), (topic) =>
        awaitAckedWith(topic.info, clientId, sessionEpoch, batchSeq, options, () => read(topic, clientId, sessionEpoch), store.signal.await, () =>
          counts(topic)))
  }
}

export const layerMemory = (store: MemoryLogStore): Layer.Layer<AckTracker> => Layer.succeed(AckTracker, makeMemory(store))
