/**
 * BrokerLog layers. `layerMemory` serves one broker id over a `MemoryLog`: an in-process
 * log shared by every broker created over it, ordering every topic in mode 5 the way the
 * sequencer does — per session (client id, epoch): seq == next → ordered, seq < next →
 * duplicate (dropped, still acknowledged), seq > next → held; a gap open longer than the
 * hold timeout fences the session at its committed frontier and drops what it held.
 * Progress moves on every ordering, fence and dropped duplicate (a duplicate is acknowledged).
 * Sessions are registered in the same SessionTable code as the region's; a batch of an
 * unregistered (or released) session is refused, and a closed session is released once
 * every batch it announced is ordered.
 */
import { Effect, Layer, type Scope } from "effect"
import type { SessionAcks } from "../../services/log/AckTracker.js"
import { type AppendReceipt, type BatchHeader, SessionTableFull } from "../../services/log/Appender.js"
import { type TopicInfo, TopicNotFound } from "../../services/log/Topics.js"
import { BrokerLog, type BrokerLogShape } from "../../services/net/BrokerLog.js"
import { defaultLogConfig } from "../log/Layout.js"
import { memorySessionTable, type SessionTable } from "../log/SessionTable.js"

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
  /** Session lines per topic (a power of two). */
  readonly sessionSlots?: number
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
  /** Batches of sessions that were never registered (or were released): dropped. */
  readonly refused: number
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
  readonly slot: number
  next: number
  /** The batch count its close announced (Infinity until then). */
  closeAt: number
  fenced: boolean
  readonly held: Map<number, HeldBatch>
  gapTimer: ReturnType<typeof setTimeout> | undefined
}

interface TopicState {
  readonly info: TopicInfo
  readonly sessions: Map<string, Session>
  readonly table: SessionTable
  readonly ordered: Array<OrderedBatch>
  nextOrder: number
  progress: number
  readonly waiters: Set<() => void>
  stats: { batches: number; messages: number; bytes: number; duplicates: number; held: number; fencedSessions: number; stale: number; refused: number }
}

const sessionKey = (clientId: number, sessionEpoch: number) => `${clientId}/${sessionEpoch}`

const emptyStats = () => ({ batches: 0, messages: 0, bytes: 0, duplicates: 0, held: 0, fencedSessions: 0, stale: 0, refused: 0 })

export const makeMemoryLog = (options: MemoryLogOptions): Effect.Effect<MemoryLog, never, Scope.Scope> =>
  Effect.gen(function*() {
    const holdTimeoutMs = options.holdTimeoutMs ?? 2_000
    const retain = options.retainOrdered ?? true
    const blog = new Uint8Array(retain ? 0 : options.blogBytes ?? 64 << 20)
    let blogHead = 0
    const topics = new Map<string, TopicState>()
    for (const spec of options.topics) {
      topics.set(spec.name, {
        info: { id: topics.size, name: spec.name, order: 5, ackLevel: spec.ackLevel ?? 1, replicationFactor: 1 },
        sessions: new Map(),
        table: memorySessionTable(options.sessionSlots ?? defaultLogConfig.sessionSlots),
        ordered: [],
        nextOrder: 0,
        progress: 0,
        waiters: new Set(),
        stats: emptyStats()
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

    /** Ends a session whose batches are all ordered after its close (or that was fenced and closed). */
    const releaseIfDone = (topic: TopicState, clientId: number, sessionEpoch: number, session: Session) => {
      if (session.closeAt === Number.POSITIVE_INFINITY || (!session.fenced && (session.next < session.closeAt || session.held.size > 0))) return
      clearTimeout(session.gapTimer)
      topic.sessions.delete(sessionKey(clientId, sessionEpoch))
      topic.table.release(session.slot, clientId, sessionEpoch, {
        next: session.next,
        orderedMessages: 0,
        duplicates: 0,
        held: 0,
        lastActivityMs: Date.now(),
        fenced: session.fenced
      })
      bump(topic)
    }

    const append = (topic: TopicState, broker: number, header: BatchHeader, fill: (dst: Uint8Array) => void) => {
      const key = sessionKey(header.clientId, header.sessionEpoch)
      const session = topic.sessions.get(key)
      if (session === undefined) {
        topic.stats.refused++
        return
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
      releaseIfDone(topic, header.clientId, header.sessionEpoch, session)
    }

    const lookup = (name: string) => {
      const topic = topics.get(name)
      return topic === undefined ? Effect.fail(new TopicNotFound({ name })) : Effect.succeed(topic)
    }

    let appended = 0
    const receipt = (brokerId: number): AppendReceipt => ({ brokerId, pbrSeq: appended++, blogPosition: 0 })

    const forBroker = (brokerId: number): BrokerLogShape => ({
      brokerId,
      topic: (name) => Effect.map(lookup(name), (topic) => topic.info),
      append: (name, header, payload) =>
        Effect.map(lookup(name), (topic) => {
          append(topic, brokerId, header, (dst) => dst.set(payload))
          return receipt(brokerId)
        }),
      appendWith: (name, header, fill) =>
        Effect.map(lookup(name), (topic) => {
          append(topic, brokerId, header, fill)
          return receipt(brokerId)
        }),
      tryAppendWith: (name, header, fill) => {
        const topic = topics.get(name)
        if (topic === undefined) return new TopicNotFound({ name })
        append(topic, brokerId, header, fill)
        return receipt(brokerId)
      },
      registerSession: (name, clientId) =>
        Effect.flatMap(lookup(name), (topic) => {
          const outcome = topic.table.register(clientId, Date.now())
          if ("full" in outcome) return Effect.fail(new SessionTableFull({ topic: name, capacity: outcome.capacity }))
          topic.sessions.set(sessionKey(clientId, outcome.sessionEpoch), {
            slot: outcome.slot,
            next: 0,
            closeAt: Number.POSITIVE_INFINITY,
            fenced: false,
            held: new Map(),
            gapTimer: undefined
          })
          return Effect.succeed(outcome.sessionEpoch)
        }),
      closeSession: (name, clientId, sessionEpoch, batches) =>
        Effect.map(lookup(name), (topic) => {
          const session = topic.sessions.get(sessionKey(clientId, sessionEpoch))
          if (session !== undefined) {
            session.closeAt = Math.min(session.closeAt, batches)
            releaseIfDone(topic, clientId, sessionEpoch, session)
          }
          return receipt(brokerId)
        }),
      sessionAcks: (name, clientId, sessionEpoch) =>
        Effect.map(lookup(name), (topic): SessionAcks => {
          const session = topic.sessions.get(sessionKey(clientId, sessionEpoch))
          if (session !== undefined) return { ordered: session.next, replicated: session.next, fenced: session.fenced, known: true }
          const record = topic.table.lookup(clientId, sessionEpoch)
          return record === undefined
            ? { ordered: 0, replicated: 0, fenced: false, known: false }
            : { ordered: record.next, replicated: record.next, fenced: true, known: true }
        }),
      progress: (name) => Effect.map(lookup(name), (topic) => topic.progress),
      awaitProgress: (name, seen, timeoutMs) =>
        Effect.async<number, TopicNotFound>((resume) => {
          const topic = topics.get(name)
          if (topic === undefined) return resume(Effect.fail(new TopicNotFound({ name })))
          if (topic.progress !== seen) return resume(Effect.succeed(topic.progress))
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
      stats: (name) => ({ ...(topics.get(name)?.stats ?? emptyStats()) })
    }
  })

/** Broker `brokerId`'s view of a shared `MemoryLog` (several brokers in one process share one log). */
export const layerMemory = (log: MemoryLog, brokerId: number): Layer.Layer<BrokerLog> =>
  Layer.succeed(BrokerLog, log.forBroker(brokerId))

/** A private `MemoryLog` served as broker 0: a broker alone, for tests and the bench's broker process. */
export const layerMemoryStandalone = (options: MemoryLogOptions): Layer.Layer<BrokerLog> =>
  Layer.scoped(BrokerLog, Effect.map(makeMemoryLog(options), (log) => log.forBroker(0)))
