/**
 * BrokerLog layers. `layerMemory` serves one broker id over a `MemoryLog`: an in-process
 * log shared by every broker created over it, ordering every topic in mode 5 the way the
 * sequencer does — per session (client id, epoch): seq == next → ordered, seq < next →
 * duplicate (dropped, still acknowledged), seq > next → held; a gap open longer than the
 * hold timeout fences the session at its committed frontier and drops what it held.
 * Progress moves on every ordering, fence and dropped duplicate (a duplicate is acknowledged).
 */
import { Effect, Layer, type Scope } from "effect"
import {
  type BatchHeader,
  BrokerLog,
  type BrokerLogShape,
  type SessionAcks,
  type TopicInfo,
  UnknownTopic
} from "../services/BrokerLog.js"

export interface MemoryLogOptions {
  readonly topics: ReadonlyArray<{ readonly name: string; readonly ackLevel?: 0 | 1 | 2 }>
  /** How long a gap in a session may stay open before the session is fenced. */
  readonly holdTimeoutMs?: number
  /**
   * Keep every ordered batch (with a copy of its payload) for `ordered()`, as tests' audits
   * need; otherwise payloads are copied into a ring of `blogBytes` (the cost of the copy
   * into the region) and forgotten.
   */
  readonly retainOrdered?: boolean
  readonly blogBytes?: number
}

export interface OrderedBatch {
  readonly broker: number
  readonly clientId: number
  readonly sessionEpoch: number
  readonly batchSeq: number
  readonly messageCount: number
  /** Total order of the batch's first message; message i has `firstOrder + i`. */
  readonly firstOrder: number
  /** Empty unless the log retains payloads. */
  readonly payload: Uint8Array
}

export interface MemoryLogStats {
  readonly batches: number
  readonly messages: number
  readonly bytes: number
  readonly duplicates: number
  readonly held: number
  readonly fencedSessions: number
  /** Batches of fenced sessions that arrived after the fence and were dropped. */
  readonly stale: number
}

export interface MemoryLog {
  /** The BrokerLog of broker `brokerId` over this log. */
  readonly forBroker: (brokerId: number) => BrokerLogShape
  /** The topic's total order so far (batches, in order). */
  readonly ordered: (topic: string) => ReadonlyArray<OrderedBatch>
  readonly stats: (topic: string) => MemoryLogStats
}

interface HeldBatch {
  readonly broker: number
  readonly header: BatchHeader
  readonly payload: Uint8Array
}

interface Session {
  next: number
  fenced: boolean
  readonly held: Map<number, HeldBatch>
  gapTimer: ReturnType<typeof setTimeout> | undefined
}

interface TopicState {
  readonly info: TopicInfo
  readonly sessions: Map<string, Session>
  readonly ordered: Array<OrderedBatch>
  nextOrder: number
  progress: number
  readonly waiters: Set<() => void>
  stats: { batches: number; messages: number; bytes: number; duplicates: number; held: number; fencedSessions: number; stale: number }
}

const sessionKey = (clientId: number, sessionEpoch: number) => `${clientId}/${sessionEpoch}`

export const makeMemoryLog = (options: MemoryLogOptions): Effect.Effect<MemoryLog, never, Scope.Scope> =>
  Effect.gen(function*() {
    const holdTimeoutMs = options.holdTimeoutMs ?? 2_000
    const retain = options.retainOrdered ?? true
    const blog = new Uint8Array(retain ? 0 : options.blogBytes ?? 64 << 20)
    let blogHead = 0
    const topics = new Map<string, TopicState>()
    for (const spec of options.topics) {
      topics.set(spec.name, {
        info: { name: spec.name, order: 5, ackLevel: spec.ackLevel ?? 1 },
        sessions: new Map(),
        ordered: [],
        nextOrder: 0,
        progress: 0,
        waiters: new Set(),
        stats: { batches: 0, messages: 0, bytes: 0, duplicates: 0, held: 0, fencedSessions: 0, stale: 0 }
      })
    }
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        for (const topic of topics.values()) {
          for (const session of topic.sessions.values()) clearTimeout(session.gapTimer)
          for (const wake of topic.waiters) wake()
        }
      })
    )

    const bump = (topic: TopicState) => {
      topic.progress++
      const waiters = [...topic.waiters]
      topic.waiters.clear()
      for (const wake of waiters) wake()
    }

    /** A copy of the payload `fill` writes. */
    const copied = (bytes: number, fill: (dst: Uint8Array) => void): Uint8Array => {
      const payload = new Uint8Array(bytes)
      fill(payload)
      return payload
    }

    /** The one copy into "the region": retained for audits, or into the blog ring. */
    const store = (bytes: number, fill: (dst: Uint8Array) => void): Uint8Array => {
      if (retain) return copied(bytes, fill)
      if (bytes > blog.length) return new Uint8Array(0)
      if (blogHead + bytes > blog.length) blogHead = 0
      fill(blog.subarray(blogHead, blogHead + bytes))
      blogHead += bytes
      return new Uint8Array(0)
    }

    const order = (topic: TopicState, broker: number, header: BatchHeader, payload: Uint8Array) => {
      if (retain) {
        topic.ordered.push({
          broker,
          clientId: header.clientId,
          sessionEpoch: header.sessionEpoch,
          batchSeq: header.batchSeq,
          messageCount: header.messageCount,
          firstOrder: topic.nextOrder,
          payload
        })
      }
      topic.nextOrder += header.messageCount
      topic.stats.batches++
      topic.stats.messages += header.messageCount
      topic.stats.bytes += header.payloadBytes
    }

    const armGapTimer = (topic: TopicState, session: Session) => {
      clearTimeout(session.gapTimer)
      session.gapTimer = undefined
      if (session.held.size === 0 || session.fenced) return
      session.gapTimer = setTimeout(() => {
        session.gapTimer = undefined
        if (session.held.size === 0 || session.fenced) return
        session.fenced = true
        topic.stats.held -= session.held.size
        session.held.clear()
        topic.stats.fencedSessions++
        bump(topic)
      }, holdTimeoutMs)
      session.gapTimer.unref()
    }

    const append = (topic: TopicState, broker: number, header: BatchHeader, fill: (dst: Uint8Array) => void) => {
      const key = sessionKey(header.clientId, header.sessionEpoch)
      let session = topic.sessions.get(key)
      if (session === undefined) {
        session = { next: 0, fenced: false, held: new Map(), gapTimer: undefined }
        topic.sessions.set(key, session)
      }
      if (session.fenced) {
        topic.stats.stale++
        return
      }
      if (header.batchSeq < session.next || session.held.has(header.batchSeq)) {
        topic.stats.duplicates++
        bump(topic)
        return
      }
      if (header.batchSeq > session.next) {
        session.held.set(header.batchSeq, { broker, header, payload: copied(header.payloadBytes, fill) })
        topic.stats.held++
        if (session.gapTimer === undefined) armGapTimer(topic, session)
        return
      }
      order(topic, broker, header, store(header.payloadBytes, fill))
      session.next++
      for (let held = session.held.get(session.next); held !== undefined; held = session.held.get(session.next)) {
        session.held.delete(session.next)
        topic.stats.held--
        order(topic, held.broker, held.header, retain ? held.payload : store(held.payload.length, (dst) => dst.set(held.payload)))
        session.next++
      }
      armGapTimer(topic, session)
      bump(topic)
    }

    const lookup = (name: string) => {
      const topic = topics.get(name)
      return topic === undefined ? Effect.fail(new UnknownTopic({ topic: name })) : Effect.succeed(topic)
    }

    const forBroker = (brokerId: number): BrokerLogShape => ({
      brokerId,
      topic: (name) => Effect.map(lookup(name), (topic) => topic.info),
      append: (name, header, payload) => Effect.map(lookup(name), (topic) => append(topic, brokerId, header, (dst) => dst.set(payload))),
      appendWith: (name, header, fill) => Effect.map(lookup(name), (topic) => append(topic, brokerId, header, fill)),
      tryAppendWith: (name, header, fill) => {
        const topic = topics.get(name)
        if (topic === undefined) return new UnknownTopic({ topic: name })
        append(topic, brokerId, header, fill)
        return true
      },
      sessionAcks: (name, clientId, sessionEpoch) =>
        Effect.map(lookup(name), (topic): SessionAcks => {
          const session = topic.sessions.get(sessionKey(clientId, sessionEpoch))
          const ordered = session?.next ?? 0
          return { ordered, replicated: ordered, fenced: session?.fenced ?? false }
        }),
      progress: (name) => topics.get(name)?.progress ?? 0,
      awaitProgress: (name, seen, timeoutMs) =>
        Effect.async<number>((resume) => {
          const topic = topics.get(name)
          if (topic === undefined || topic.progress !== seen) return resume(Effect.succeed(topic?.progress ?? seen))
          const wake = () => {
            clearTimeout(timer)
            topic.waiters.delete(wake)
            resume(Effect.succeed(topic.progress))
          }
          const timer = setTimeout(wake, timeoutMs)
          topic.waiters.add(wake)
          return Effect.sync(() => {
            clearTimeout(timer)
            topic.waiters.delete(wake)
          })
        })
    })

    return {
      forBroker,
      ordered: (name) => topics.get(name)?.ordered ?? [],
      stats: (name) => ({ ...(topics.get(name)?.stats ?? { batches: 0, messages: 0, bytes: 0, duplicates: 0, held: 0, fencedSessions: 0, stale: 0 }) })
    }
  })

/** Broker `brokerId`'s view of a shared `MemoryLog` (several brokers in one process share one log). */
export const layerMemory = (log: MemoryLog, brokerId: number): Layer.Layer<BrokerLog> =>
  Layer.succeed(BrokerLog, log.forBroker(brokerId))

/** A private `MemoryLog` served as broker 0: a broker alone, for tests and the bench's broker process. */
export const layerMemoryStandalone = (options: MemoryLogOptions): Layer.Layer<BrokerLog> =>
  Layer.scoped(BrokerLog, Effect.map(makeMemoryLog(options), (log) => log.forBroker(0)))
