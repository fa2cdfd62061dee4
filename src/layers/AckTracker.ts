/**
 * AckTracker layers: `layer` reads session lines (a seqlock) and broker counters from the
 * region in any process and parks on the process doorbell, which the sequencer rings after
 * every round that moved something; `layerMemory` reads the in-process store.
 */
import { Effect, Layer, type Scope } from "effect"
import { AckTimeout, AckTracker, type AckTrackerShape, type BrokerCounts, type SessionAcks, SessionFenced } from "../services/AckTracker.js"
import { CxlMemory } from "../services/CxlMemory.js"
import { Doorbell } from "../services/Doorbell.js"
import { type AckLevel, LogCorrupt, type TopicInfo, TopicNotFound } from "../services/Topics.js"
import type { LogArea } from "./LogLayout.js"
import { type MemoryLogStore, type MemoryTopic, sessionKey } from "./LogMemory.js"
import { listen } from "./LogParticipants.js"
import { BrokerLine, OrderLine, Participant, SequencerLine, SessionLine, SessionState } from "./LogRecords.js"
import { sessionHash } from "./Sequencer.js"
import { topicResolver } from "./Topics.js"

const UNKNOWN: SessionAcks = { ordered: 0, replicated: 0, fenced: false, known: false }

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
    const { f64, u32, i32 } = region
    const resolve = topicResolver(region, area)
    /** Session line index by topic and session, once found (sessions never move). */
    const lines = new Map<string, number>()

    const findLine = (t: number, clientId: number, sessionEpoch: number): number => {
      const key = `${t}/${clientId}/${sessionEpoch}`
      const cached = lines.get(key)
      if (cached !== undefined) return cached
      const table = area.sessions(t)
      let i = sessionHash(clientId, sessionEpoch, config.sessionSlots)
      for (let probes = 0; probes < config.sessionSlots; probes++, i = (i + 1) & (config.sessionSlots - 1)) {
        const line = table + i * 64
        region.invalidate(line, 64)
        if (Atomics.load(i32, (line + SessionLine.state) / 4) === SessionState.empty) return -1
        if (u32[(line + SessionLine.clientId) / 4] === clientId && u32[(line + SessionLine.sessionEpoch) / 4] === sessionEpoch) {
          lines.set(key, line)
          return line
        }
      }
      return -1
    }

    const read = (t: number, clientId: number, sessionEpoch: number): SessionAcks | LogCorrupt => {
      const line = findLine(t, clientId, sessionEpoch)
      if (line < 0) return UNKNOWN
      for (let attempt = 0; attempt < 10_000; attempt++) {
        region.invalidate(line, 64)
        const before = Atomics.load(i32, (line + SessionLine.version) / 4)
        if ((before & 1) !== 0) continue
        const next = f64[(line + SessionLine.next) / 8]!
        const fenced = Atomics.load(i32, (line + SessionLine.state) / 4) === SessionState.fenced
        if (Atomics.load(i32, (line + SessionLine.version) / 4) !== before) continue
        if (!Number.isSafeInteger(next) || next < 0) return new LogCorrupt({ reason: `session ${clientId}/${sessionEpoch}: frontier ${next} is invalid` })
        return { ordered: next, replicated: next, fenced, known: true }
      }
      return new LogCorrupt({ reason: `session ${clientId}/${sessionEpoch}: its line never became stable` })
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
        Effect.flatMap(resolve(topic), (info) => {
          const acks = read(info.id, clientId, sessionEpoch)
          return acks instanceof LogCorrupt ? Effect.fail(acks) : Effect.succeed(acks)
        }),
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
  const read = (topic: MemoryTopic, clientId: number, sessionEpoch: number): SessionAcks => {
    const record = topic.sessions.get(sessionKey(clientId, sessionEpoch))
    return record === undefined ? UNKNOWN : { ordered: record.next, replicated: record.next, fenced: record.fenced, known: true }
  }
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
