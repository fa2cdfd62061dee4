/**
 * The sequencer's round, shared by the live layer (Sequencer.ts, the region) and the fake
 * (SequencerMemory.ts, the in-process store): they differ only in where bytes live, which
 * each says through a `TopicStorage` per topic and a `LogStorage` for the log.
 *
 * A batch's walk: `sequencerRound` → `scanTopic` (a broker's PBR positions, oldest first)
 * → `OrderEngine.arrive` → `TopicOrder.order` → `orderBatch` (the GOI entry, then the
 * slot's finish line) → at the end of the round `publishTopic` (session lines, per-broker
 * lines, the committed frontier) → `LogStorage.ring` (everyone waiting for the log).
 */
import { Clock, Effect, Metric } from "effect"
import {
  sequencerBatchesOrdered,
  sequencerDropped,
  sequencerDuplicates,
  sequencerFencedSessions,
  sequencerLapsedSessions,
  sequencerGoiFullWaits,
  sequencerHeld,
  sequencerMessagesOrdered,
  sequencerRounds
} from "../../Metrics.js"
import { defaultSequencerOptions, type SequencerLeaseLost, type SequencerOptions, type SequencerRound } from "../../services/log/Sequencer.js"
import type { TopicInfo } from "../../services/log/Topics.js"
import type { LogConfig } from "./Layout.js"
import { type Backpressure, type DropReason, OrderEngine, type OrderSink, type Session, Verdict } from "./OrderEngine.js"
import { AHEAD_WINDOW, Dropped, SessionState } from "./Records.js"
import type { SessionFields, SessionTable } from "./SessionTable.js"

/** What line 1 of a finished PBR slot says for each way a batch leaves without a GOI entry. */
export const DROP_CODE: Record<DropReason, number> = {
  duplicate: Dropped.duplicate,
  fenced: Dropped.fenced,
  refused: Dropped.refused,
  corrupt: Dropped.corrupt,
  marker: Dropped.marker
}

/** How often idle sessions and dead registrations are looked for. */
const SESSION_SWEEP_MS = 1_000

/** The gap bound's default, in idle bounds (an hour at the default 10 minutes). */
export const GAP_IDLE_FACTOR = 6

/**
 * Where one topic's batches, GOI and published state live. The scan reads a broker's PBR
 * positions through a cursor (`seek`, then the header of that position), so a position is
 * located once however many of its fields are read.
 */
export interface TopicStorage {
  /** The topic's session table (the same code over the region or a private buffer). */
  readonly sessions: SessionTable
  /** Whether `broker` has committed position `pbrSeq` (a cheap check for idle waits). */
  readonly committed: (broker: number, pbrSeq: number) => boolean
  /** Points the cursor at `broker`'s position `pbrSeq`; false when it is not committed yet. */
  readonly seek: (broker: number, pbrSeq: number) => boolean
  /** The cursor's slot was finished before (a restart): already accounted for. */
  readonly finished: () => boolean
  /** The cursor's slot is a session's close marker. */
  readonly isClose: () => boolean
  /** The cursor's header can describe a batch (a region slot may be corrupt). */
  readonly sane: () => boolean
  readonly clientId: () => number
  readonly sessionEpoch: () => number
  readonly batchSeq: () => number
  /** Writes the batch at (broker, pbrSeq) as GOI entry `g` starting at `totalOrder`; returns its message count. */
  readonly writeGoi: (g: number, broker: number, pbrSeq: number, totalOrder: number) => number
  /** Finishes the slot: its global seq (or a `Dropped` code) and total order, then the finish word. */
  readonly finish: (broker: number, pbrSeq: number, globalSeq: number, totalOrder: number) => void
  /** The lowest durable subscriber cursor (Infinity when none): GOI entries from it on are still needed. */
  readonly lowestCursor: () => number
  /** Whether a broker's append waits for PBR or Blog room now. */
  readonly roomWaits: () => boolean
  /** Says whether the topic's GOI is full (readers that move their cursor then ring the sequencer). */
  readonly publishStalled: (stalled: boolean) => void
  /** Publishes per-broker lines, the committed frontier and the progress word (session lines are published first). */
  readonly publishFrontier: (topic: TopicOrder) => void
}

/** Where the whole log lives: its topics, the lease, and how waiters are woken. */
export interface LogStorage {
  /**
   * Enters a round's writes: false when this sequencer no longer holds the lease (it must
   * write nothing). Every write of a round, discovery included, happens between it and `endRound`.
   */
  readonly beginRound: () => boolean
  readonly endRound: () => void
  readonly leaseLost: () => SequencerLeaseLost
  /** Whether topics appeared that are not ordered yet (runs every round). */
  readonly hasNewTopics: () => boolean
  /** The new topics, recovered from what their storage holds (those that cannot be are logged and left out). */
  readonly discover: Effect.Effect<ReadonlyArray<TopicOrder>>
  /** Wakes who waits for what `round` moved: every reader, and the ACK trackers of the brokers whose batches it ordered. */
  readonly ring: (round: RoundTally) => void
  /**
   * A callback wait for work (as `DoorbellShape.watch`): `onReady` runs from a wake's callback
   * once `hasWork()` holds, or with false when it has not for `everyMs()`; until the returned
   * function is called. The caller checks `hasWork()` once after the call (the re-check).
   */
  readonly watchWork: (hasWork: () => boolean, onReady: (satisfied: boolean) => void, everyMs: () => number) => () => void
}

/** What one round did, in one topic or over all of them. */
export class RoundTally {
  ordered = 0
  messages = 0
  duplicates = 0
  held = 0
  fenced = 0
  dropped = 0
  /** Close markers handled. */
  markers = 0
  released = 0
  lapsed = 0
  stalled = false
  /** Per broker. */
  readonly batches: Float64Array
  readonly batchMessages: Float64Array
  constructor(brokers: number) {
    this.batches = new Float64Array(brokers)
    this.batchMessages = new Float64Array(brokers)
  }
  reset(): void {
    this.ordered = this.messages = this.duplicates = this.held = this.fenced = this.dropped = this.markers = this.released = this.lapsed = 0
    this.stalled = false
    this.batches.fill(0)
    this.batchMessages.fill(0)
  }
  add(t: RoundTally): void {
    this.ordered += t.ordered
    this.messages += t.messages
    this.duplicates += t.duplicates
    this.held += t.held
    this.fenced += t.fenced
    this.dropped += t.dropped
    this.markers += t.markers
    this.released += t.released
    this.lapsed += t.lapsed
    this.stalled ||= t.stalled
    for (let b = 0; b < this.batches.length; b++) {
      this.batches[b] += t.batches[b]
      this.batchMessages[b] += t.batchMessages[b]
    }
  }
  /**
   * Whether the round may have moved a session frontier other than by ordering batches (a fence,
   * a release, a drop, a duplicate, a close marker): then every broker's ACK trackers look again,
   * not only those of the brokers in `batches`.
   */
  movedSessions(): boolean {
    return this.duplicates + this.fenced + this.dropped + this.markers + this.released + this.lapsed > 0
  }
  /** Whether the round moved anything (then it is published, and the next round follows at once). */
  moved(): boolean {
    return this.ordered + this.duplicates + this.held + this.fenced + this.dropped + this.markers + this.released + this.lapsed > 0
  }
  toRound(): SequencerRound {
    const { ordered, messages, duplicates, held, fenced, dropped, released, lapsed, stalled } = this
    return { ordered, messages, duplicates, held, fenced, dropped, released, lapsed, stalled }
  }
}

/** The sequencer's settings that both storages share. */
export interface OrderSettings {
  readonly maxBrokers: number
  readonly goiSlots: number
  readonly holdTimeoutMs: number
  readonly sessionIdleMs: number
  /** How long a session with batches ordered above a gap (orders 0/2/4) is kept without a batch before it lapses. */
  readonly sessionGapIdleMs: number
  /** Positions scanned per broker per round. */
  readonly maxPerBroker: number
}

/** The settings from the layer's options, defaulted, for a log of `config`. */
export const orderSettings = (config: LogConfig, options: SequencerOptions): OrderSettings => {
  const sessionIdleMs = options.sessionIdleMs ?? defaultSequencerOptions.sessionIdleMs
  return {
    maxBrokers: config.maxBrokers,
    goiSlots: config.goiSlots,
    holdTimeoutMs: options.holdTimeoutMs ?? defaultSequencerOptions.holdTimeoutMs,
    sessionIdleMs,
    // One below the idle bound was refused when the layer was made (checkSequencerOptions).
    sessionGapIdleMs: options.sessionGapIdleMs ?? GAP_IDLE_FACTOR * sessionIdleMs,
    maxPerBroker: options.maxBatchesPerBroker ?? defaultSequencerOptions.maxBatchesPerBroker
  }
}

/** A session's published fields. */
const fieldsOf = (session: Session): SessionFields => ({
  next: session.next,
  orderedMessages: session.orderedMessages,
  duplicates: session.duplicates,
  held: session.held.size,
  lastActivityMs: session.lastActivityMs,
  fenced: session.fenced,
  ahead: session.ahead
})

/**
 * One topic under the sequencer: its engine, scan cursors, counters and frontier. It is
 * the engine's sink: the engine decides, `order` / `drop` / `releaseSession` store.
 */
export class TopicOrder implements OrderSink {
  readonly engine: OrderEngine
  /** Per broker: the next position to scan. */
  readonly scan: Float64Array
  /** Per broker, as published in its sequencer line. */
  readonly orderedBatches: Float64Array
  readonly orderedMessages: Float64Array
  readonly duplicates: Float64Array
  readonly dropped: Float64Array
  /** The next global seq and total order. */
  goiNext = 0
  totalNext = 0
  /** Lowest durable subscriber cursor, refreshed each round. */
  lowest = Infinity
  /** What the storage says of the GOI being full now. */
  stalled = false
  readonly tally: RoundTally

  constructor(readonly info: TopicInfo, readonly storage: TopicStorage, private readonly settings: OrderSettings) {
    const brokers = settings.maxBrokers
    this.scan = new Float64Array(brokers)
    this.orderedBatches = new Float64Array(brokers)
    this.orderedMessages = new Float64Array(brokers)
    this.duplicates = new Float64Array(brokers)
    this.dropped = new Float64Array(brokers)
    this.tally = new RoundTally(brokers)
    this.engine = new OrderEngine(info.order, settings.holdTimeoutMs, brokers, this)
  }

  /** GOI entries that can be written now: durable subscribers hold the ring from their cursor on. */
  room(): number {
    const slots = this.settings.goiSlots
    return this.lowest === Infinity ? slots : slots - (this.goiNext - this.lowest)
  }

  order(broker: number, pbrSeq: number): number {
    return orderBatch(this, broker, pbrSeq)
  }

  drop(broker: number, pbrSeq: number, reason: DropReason): void {
    dropBatch(this, broker, pbrSeq, reason)
  }

  adoptSession(clientId: number, sessionEpoch: number): number {
    return this.storage.sessions.adopt(clientId, sessionEpoch)
  }

  releaseSession(session: Session): void {
    releaseSession(this, session)
  }

  lapseSession(session: Session): void {
    this.storage.sessions.lapse(session.slot, session.clientId, session.sessionEpoch, fieldsOf(session))
    this.tally.lapsed++
  }

  publishSession(session: Session): void {
    this.storage.sessions.publish(session.slot, session.clientId, session.sessionEpoch, fieldsOf(session))
  }

  /** Whether the engine has a session of this key (made once: the sweep calls it per active line). */
  readonly isKnown = (clientId: number, sessionEpoch: number): boolean => this.engine.session(clientId, sessionEpoch) !== undefined

  /** Where the broker's consumed-through stands: its oldest held position, else the scan cursor. */
  consumedThrough(broker: number): number {
    return Math.min(this.engine.lowestHeld(broker), this.scan[broker])
  }
}

/** Puts the batch at (broker, pbrSeq) next in the topic's total order: its GOI entry, then its slot's finish line. */
export function orderBatch(topic: TopicOrder, broker: number, pbrSeq: number): number {
  const g = topic.goiNext
  const totalOrder = topic.totalNext
  const count = topic.storage.writeGoi(g, broker, pbrSeq, totalOrder)
  topic.storage.finish(broker, pbrSeq, g, totalOrder)
  topic.goiNext = g + 1
  topic.totalNext = totalOrder + count
  topic.orderedBatches[broker]++
  topic.orderedMessages[broker] += count
  const tally = topic.tally
  tally.ordered++
  tally.messages += count
  tally.batches[broker]++
  tally.batchMessages[broker] += count
  return count
}

/** Finishes a slot that gets no GOI entry and counts it by reason (a close marker is no batch and counts nowhere). */
export function dropBatch(topic: TopicOrder, broker: number, pbrSeq: number, reason: DropReason): void {
  topic.storage.finish(broker, pbrSeq, DROP_CODE[reason], 0)
  const tally = topic.tally
  if (reason === "marker") {
    tally.markers++
  } else if (reason === "duplicate") {
    tally.duplicates++
    topic.duplicates[broker]++
  } else {
    tally.dropped++
    topic.dropped[broker]++
  }
}

/** The session is over (closed, idle or fenced and done): its line keeps the final frontier and leaves the live count. */
export function releaseSession(topic: TopicOrder, session: Session): void {
  topic.storage.sessions.release(session.slot, session.clientId, session.sessionEpoch, fieldsOf(session))
  topic.tally.released++
}

/**
 * Re-creates the engine's sessions from the table (a restart): active and fenced lines; else
 * names a bad line. A line torn by a killed writer lapses in orders 0/2/4 when its bitmap reads
 * non-empty: frontier and bitmap may come from two writes, and either way a batch would be
 * acknowledged without being ordered or ordered twice. One that reads empty is whole enough:
 * `write` stores each bitmap word's final value in ascending order and a moved frontier only
 * shifts bits to lower words, so an empty read means nothing was ordered above the frontier
 * before that write, and what that write's round ordered is in the GOI, which the restart
 * replays. In order 5 the frontier alone counts, one word, whole either way.
 */
export const restoreSessions = (topic: TopicOrder): string | undefined => {
  let problem: string | undefined
  const { sessions } = topic.storage
  sessions.forEachSession((slot, clientId, sessionEpoch, state, fields, torn) => {
    if (state !== SessionState.active && state !== SessionState.fenced) return
    if (torn && topic.info.order !== 5 && fields.ahead !== undefined && fields.ahead.size > 0) {
      sessions.lapse(slot, clientId, sessionEpoch, fields)
      // Before any round (whose tally would count it), so counted here.
      sequencerLapsedSessions.unsafeUpdate(1, [])
      return
    }
    if (!Number.isSafeInteger(fields.next) || fields.next < 0) problem ??= `session line ${slot} frontier ${fields.next} is invalid`
    else topic.engine.restore(clientId, sessionEpoch, slot, fields)
  })
  return problem
}

/**
 * A batch found in the GOI at a restart: its session (if not released) counts it as ordered. Names
 * the entry's problem instead when it is further above the session's frontier than a sequencer
 * orders (orders 0/2/4), which only a damaged entry can be.
 */
export const replayOrdered = (topic: TopicOrder, clientId: number, sessionEpoch: number, batchSeq: number): string | undefined => {
  const session = topic.engine.session(clientId, sessionEpoch)
  if (session === undefined) return undefined
  if (topic.info.order !== 5 && !(batchSeq - session.next <= AHEAD_WINDOW)) {
    return `batch ${batchSeq} of session ${clientId}/${sessionEpoch} is more than ${AHEAD_WINDOW} above its frontier ${session.next}`
  }
  topic.engine.recoverOrdered(session, batchSeq)
  return undefined
}

/** Scans each broker's PBR positions once (at most `maxPerBroker` each); stops at a full GOI. */
export function scanTopic(topic: TopicOrder, nowMs: number, maxPerBroker: number): void {
  const { engine, storage, tally } = topic
  topic.lowest = storage.lowestCursor()
  for (let b = 0; b < topic.scan.length; b++) {
    let s = topic.scan[b]
    for (let n = 0; n < maxPerBroker && storage.seek(b, s); n++, s++) {
      if (storage.finished()) continue
      if (storage.isClose()) {
        const batches = storage.batchSeq()
        engine.close(b, s, storage.clientId(), storage.sessionEpoch(), Number.isSafeInteger(batches) ? batches : 0, nowMs)
        continue
      }
      if (!storage.sane()) {
        dropBatch(topic, b, s, "corrupt")
        continue
      }
      const verdict = engine.arrive(b, s, storage.clientId(), storage.sessionEpoch(), storage.batchSeq(), nowMs)
      if (verdict === Verdict.stall) {
        tally.stalled = true
        break
      }
      if (verdict === Verdict.held) tally.held++
    }
    topic.scan[b] = s
    if (tally.stalled) break
  }
  const backpressure: Backpressure = tally.stalled ? "stalled" : storage.roomWaits() ? "room" : "none"
  tally.fenced += engine.expire(nowMs, backpressure)
}

/** Publishes what the round changed: session lines (seqlock), then per-broker lines and the frontier. */
export function publishTopic(topic: TopicOrder): void {
  const { engine } = topic
  for (const session of engine.dirty) {
    session.dirty = false
    // A released session's line was written at its release (and may be reused already).
    if (!session.released) topic.storage.sessions.publish(session.slot, session.clientId, session.sessionEpoch, fieldsOf(session))
  }
  engine.dirty.length = 0
  topic.storage.publishFrontier(topic)
}

/** Records a round's tally in the metrics, without an Effect per update (it runs every round); tagged metrics are made once. */
const makeTallyMetrics = (brokers: number) => {
  const batchesOf = Array.from({ length: brokers }, (_, b) => Metric.tagged(sequencerBatchesOrdered, "broker", String(b)))
  const messagesOf = Array.from({ length: brokers }, (_, b) => Metric.tagged(sequencerMessagesOrdered, "broker", String(b)))
  return (tally: RoundTally, heldNow: number): void => {
    for (let b = 0; b < brokers; b++) {
      if (tally.batches[b] === 0) continue
      batchesOf[b].unsafeUpdate(tally.batches[b], [])
      messagesOf[b].unsafeUpdate(tally.batchMessages[b], [])
    }
    if (tally.duplicates > 0) sequencerDuplicates.unsafeUpdate(tally.duplicates, [])
    if (tally.fenced > 0) sequencerFencedSessions.unsafeUpdate(tally.fenced, [])
    if (tally.lapsed > 0) sequencerLapsedSessions.unsafeUpdate(tally.lapsed, [])
    if (tally.dropped > 0) sequencerDropped.unsafeUpdate(tally.dropped, [])
    if (tally.stalled) sequencerGoiFullWaits.unsafeUpdate(1, [])
    sequencerHeld.unsafeUpdate(heldNow, [])
    sequencerRounds.unsafeUpdate(1, [])
  }
}

/** How `runRounds` paces itself. */
export interface RunSettings {
  /** The longest idle wait (the live layer renews its lease within it); session sweeps and hold deadlines bound it too. */
  readonly maxIdleMs: number
  /** Runs before a round once `renewEveryMs` passed since it last ran (the lease). */
  readonly renew: Effect.Effect<void, SequencerLeaseLost>
  readonly renewEveryMs: number
  /** Called once, with the time, after the first round that wrote a GOI entry (a takeover's end). */
  readonly onFirstOrdered?: (atMs: number) => void
}

/** The sequencer over a storage: its topics, one round, and the loop that runs rounds. */
export interface SequencerCore {
  readonly step: Effect.Effect<SequencerRound, SequencerLeaseLost>
  readonly run: (settings: RunSettings) => Effect.Effect<never, SequencerLeaseLost>
}

export const makeSequencerCore = (log: LogStorage, settings: OrderSettings): SequencerCore => {
  const topics: Array<TopicOrder> = []
  const total = new RoundTally(settings.maxBrokers)
  const tallyMetrics = makeTallyMetrics(settings.maxBrokers)
  let nextSweepMs = 0

  /** One round over every topic, as plain code (it runs for every few batches). */
  const sequencerRound = (nowMs: number): RoundTally => {
    total.reset()
    let heldNow = 0
    let any = false
    const sweep = nowMs >= nextSweepMs
    if (sweep) nextSweepMs = nowMs + SESSION_SWEEP_MS
    for (const topic of topics) {
      const { engine, tally } = topic
      tally.reset()
      scanTopic(topic, nowMs, settings.maxPerBroker)
      if (sweep) {
        engine.evictIdle(nowMs, settings.sessionIdleMs, settings.sessionGapIdleMs)
        // Registered sessions that never sent a batch idle out too (the engine has never seen them).
        tally.released += topic.storage.sessions.releaseUnadopted(nowMs, settings.sessionIdleMs, topic.isKnown)
        tally.released += topic.storage.sessions.releaseDeadClaims()
      }
      if (tally.stalled !== topic.stalled) {
        // Said before the sequencer waits for GOI room, so readers moving their cursors ring it (see LogReader).
        topic.stalled = tally.stalled
        topic.storage.publishStalled(tally.stalled)
      }
      if (tally.moved() || engine.dirty.length > 0) {
        publishTopic(topic)
        any = true
      }
      total.add(tally)
      for (let b = 0; b < settings.maxBrokers; b++) heldNow += engine.heldCount(b)
    }
    if (any) log.ring(total)
    tallyMetrics(total, heldNow)
    return total
  }

  const discoverTopics = Effect.map(log.discover, (found) => {
    topics.push(...found)
  })

  /** A round inside the lease's fence; a throw (a defect) still leaves the fence. */
  const fencedRound = (nowMs: number): RoundTally => {
    try {
      return sequencerRound(nowMs)
    } finally {
      log.endRound()
    }
  }

  /**
   * A round, after taking in new topics (discovery is an Effect, it logs; a round without one
   * stays plain code). Both write, so both run inside `beginRound` … `endRound`.
   */
  const tallyStep: Effect.Effect<RoundTally, SequencerLeaseLost> = Effect.flatMap(Clock.currentTimeMillis, (nowMs) => {
    if (!log.beginRound()) return Effect.fail(log.leaseLost())
    return log.hasNewTopics()
      ? Effect.zipRight(discoverTopics.pipe(Effect.onExit((exit) => (exit._tag === "Failure" ? Effect.sync(log.endRound) : Effect.void))), Effect.sync(() => fencedRound(nowMs)))
      : Effect.sync(() => fencedRound(nowMs))
  })

  /**
   * Something to do: a committed slot at a scan cursor, GOI room for a topic that stalled (a
   * reader moving its cursor rings us), or a new topic.
   */
  const hasWork = (): boolean => {
    for (const topic of topics) {
      if (topic.stalled) {
        if (topic.storage.lowestCursor() !== topic.lowest) return true
        continue
      }
      for (let b = 0; b < topic.scan.length; b++) if (topic.storage.committed(b, topic.scan[b])) return true
    }
    return log.hasNewTopics()
  }

  /** The next moment a round has something to do with no one ringing: a hold's deadline or the session sweep. */
  const nextDeadline = () => topics.reduce((d, topic) => Math.min(d, topic.engine.nextDeadline()), nextSweepMs)

  // Self-clocking: a round takes every batch committed since the last one. After a round that
  // moved something, the loop yields to the event loop (a macrotask, after pending I/O and
  // timers, so the process's other work runs) and goes on at once if more is committed;
  // otherwise it waits on the doorbell (appenders ring it while it waits), so an idle sequencer
  // wakes only for its lease, a deadline or a sweep. The rounds run from callbacks (the wake's,
  // the yield's), with no fiber step per round; the loop returns to Effects only for what needs
  // them: renewing the lease and discovering topics.
  const runRounds = (run: RunSettings): Effect.Effect<never, SequencerLeaseLost> =>
    Effect.gen(function*() {
      const clock = yield* Effect.clock
      const now = () => clock.unsafeCurrentTimeMillis()
      let renewedAt = Number.NEGATIVE_INFINITY
      let first = run.onFirstOrdered
      const noteFirst = (round: RoundTally) => {
        if (first !== undefined && round.ordered > 0) {
          first(now())
          first = undefined
        }
      }
      const renewDue = () => now() - renewedAt >= run.renewEveryMs
      /** Rounds from callbacks until the lease is due for renewal or topics appeared (then resumes) or it is lost (then fails). */
      const rounds = Effect.async<void, SequencerLeaseLost>((resume) => {
        let over = false
        let stopWatch: (() => void) | undefined
        let turn: ReturnType<typeof setImmediate> | undefined
        const stop = () => {
          over = true
          stopWatch?.()
          stopWatch = undefined
          if (turn !== undefined) clearImmediate(turn)
          turn = undefined
        }
        const finish = (outcome: Effect.Effect<void, SequencerLeaseLost>) => {
          if (over) return
          stop()
          resume(outcome)
        }
        const guarded = (f: () => void) => () => {
          try {
            f()
          } catch (defect) {
            finish(Effect.die(defect))
          }
        }
        const round = () => {
          if (over) return
          if (renewDue() || log.hasNewTopics()) return finish(Effect.void)
          if (!log.beginRound()) return finish(Effect.fail(log.leaseLost()))
          const tally = fencedRound(now())
          noteFirst(tally)
          if (tally.moved()) turn = setImmediate(afterTurn)
          else wait()
        }
        const afterTurn = guarded(() => {
          turn = undefined
          // Committed meanwhile (a busy stream): the next round at once, without the wait's bookkeeping in between.
          if (hasWork()) round()
          else wait()
        })
        const woken = guarded(() => {
          stopWatch?.()
          stopWatch = undefined
          round()
        })
        const wait = () => {
          const nowMs = now()
          const boundMs = Math.max(1, Math.min(run.maxIdleMs, renewedAt + run.renewEveryMs - nowMs, nextDeadline() - nowMs))
          stopWatch = log.watchWork(hasWork, woken, () => boundMs)
          if (!hasWork()) return
          // Work that came before the watch: the next turn, not a nested call (a round that moved
          // nothing while work stays would otherwise recurse here without yielding).
          stopWatch()
          stopWatch = undefined
          turn = setImmediate(afterTurn)
        }
        guarded(round)()
        return Effect.sync(stop)
      })
      for (;;) {
        if (renewDue()) {
          yield* run.renew
          renewedAt = now()
        }
        if (log.hasNewTopics()) noteFirst(yield* tallyStep)
        yield* rounds
      }
    })

  return { step: Effect.map(tallyStep, (t) => t.toRound()), run: runRounds }
}
