/**
 * The sequencer's round, shared by the live layer (Sequencer.ts, the region) and the fake
 * (SequencerMemory.ts, the in-process store): they differ only in where bytes live, which
 * each says through a `TopicStorage` per topic (TopicOrder.ts) and a `LogStorage` for the log.
 *
 * A round is `sequencerRound(state, nowMs)`: plain code over an explicit `SequencerState`,
 * run inside the lease's fence (`fencedRound`, or `roundStep` with discovery). The loop that
 * runs rounds as work comes is SequencerLoop.ts.
 *
 * A batch's walk: `sequencerRound` → `scanTopic` (a broker's PBR positions, oldest first)
 * → `OrderEngine.arrive` → `TopicOrder.order` → `orderBatch` (the GOI entry, then the
 * slot's finish line) → at the end of the round `publishTopic` (session lines, per-broker
 * lines, the committed frontier) → `LogStorage.ring` (everyone waiting for the log).
 */
import { Clock, Effect } from "effect"
import type { SequencerLeaseLost } from "../../services/log/Sequencer.js"
import type { TopicInfo } from "../../services/log/Topics.js"
import { nextTickAfter, TIMER_EARLY_MS } from "../region/Cadence.js"
import { type Backpressure, Verdict } from "./OrderEngine.js"
import { makeTallyMetrics, RoundTally } from "./RoundTally.js"
import type { RoundEntry } from "./SequencerLease.js"
import { dropBatch, fieldsOf, type OrderSettings, type TopicOrder } from "./TopicOrder.js"
import { syncTopic, takeAllSessions } from "./TopicRecovery.js"

/** How often idle sessions and dead registrations are looked for. */
const SESSION_SWEEP_MS = 1_000

/** Where the whole log lives: its topics, the lease, and how waiters are woken. */
export interface LogStorage {
  /**
   * Enters a round's writes (`RoundEntry`: `lost` when this sequencer no longer holds the lease,
   * and it must write nothing; `busy` while another process is inside a round; `recover` when it
   * took the marker over from a process that died inside one). Every write of a round, discovery
   * included, happens between it and `endRound`.
   */
  readonly beginRound: () => RoundEntry
  readonly endRound: () => void
  /** After `recover`: every topic is new again, so the next step takes each on from its storage (`recoverTopic`). */
  readonly forgetTopics: () => void
  readonly leaseLost: () => SequencerLeaseLost
  /** Whether topics appeared that are not ordered yet, or ordered ones were deleted (runs every round). */
  readonly hasNewTopics: () => boolean
  /**
   * A word that moves whenever a writer got a lane of any topic (absent: topics are never parked).
   * Topics no writer has a lane in hold no batch: they wait aside, looked at again only when it moves.
   */
  readonly lanesGranted?: () => number
  /**
   * The topics (ids) granted a lane by this process since the last call, when it is the head:
   * with as many as `lanesGranted` moved, only those are looked at, not every parked topic.
   */
  readonly takeGranted?: () => ReadonlyArray<number>
  /**
   * The topics writers left to the head (TopicMarks.ts; absent: every round looks at every topic).
   * With them a round looks at the marked topics and those its last look left work in.
   */
  readonly marks?: MarkedTopics
  /** The ordered topics deleted since the last call: the round drops them (before it takes any new one on). */
  readonly deleted: () => ReadonlyArray<TopicInfo>
  /** The new topics, recovered from what their storage holds (those that cannot be are logged and left out). */
  readonly discover: Effect.Effect<ReadonlyArray<TopicOrder>>
  /** Wakes who waits for what `round` moved: every reader, and the ACK trackers of the brokers whose batches it ordered. */
  readonly ring: (round: RoundTally) => void
  /**
   * A callback wait for work (as `DoorbellShape.watch`): `onReady` runs from a wake's callback
   * once `hasWork()` holds, or with false when it has not for `everyMs()`; until the returned
   * function is called. The caller checks `hasWork()` once after the call (the re-check).
   */
  readonly watchWork: (
    hasWork: () => boolean,
    onReady: (satisfied: boolean) => void,
    everyMs: () => number
  ) => () => void
}

/** Topic marks as a round reads them (TopicMarks.ts). */
export interface MarkedTopics {
  readonly any: () => boolean
  /** Takes every mark, clearing it, with its topic id. */
  readonly take: (visit: (id: number) => void) => void
  readonly mark: (id: number) => void
}

/** The sequencer's state across rounds. */
export interface SequencerState {
  readonly log: LogStorage
  readonly settings: OrderSettings
  /** The topics it orders, by id, in the order they were taken on (those with a lane: see `parked`). */
  readonly topics: Map<number, TopicOrder>
  /**
   * With `LogStorage.marks`: the topics the last round left work in (batches held, a full GOI,
   * sessions to publish, committed batches beyond its bound) or that were just taken on. The
   * next round looks at them and the marked ones; every topic only at the sweep.
   */
  readonly attention: Set<TopicOrder>
  /** The topics a round looks at (reused). */
  readonly looking: Set<TopicOrder>
  /**
   * Topics no writer has a lane in yet (only with `LogStorage.lanesGranted`): rounds pass them by
   * but for the sweep, so ten thousand topics created and not yet written cost a round nothing.
   */
  readonly parked: Map<number, TopicOrder>
  /** `lanesGranted` when the parked topics were last looked at. */
  grantedSeen: number
  /** What the last round did over every topic (reset by each round). */
  readonly total: RoundTally
  /** Records a round's tally, and the batches held after it, in the metrics. */
  readonly recordTally: (tally: RoundTally, heldNow: number) => void
  /** When the next round sweeps idle sessions and dead registrations. */
  nextSweepMs: number
}

export const makeSequencerState = (log: LogStorage, settings: OrderSettings): SequencerState => ({
  log,
  settings,
  topics: new Map(),
  attention: new Set(),
  looking: new Set(),
  parked: new Map(),
  grantedSeen: Number.NaN,
  total: new RoundTally(settings.maxBrokers),
  recordTally: makeTallyMetrics(settings.maxBrokers),
  nextSweepMs: 0
})

/** Scans each broker's PBR positions once (at most `maxPerBroker` each); stops at a full GOI. */
export function scanTopic(topic: TopicOrder, nowMs: number, maxPerBroker: number): void {
  const { engine, storage, tally } = topic
  topic.lowest = storage.lowestCursor()
  for (const b of storage.lanes()) {
    let s = topic.scan[b]
    for (let n = 0; n < maxPerBroker && storage.seek(b, s); n++, s++) {
      if (storage.finished()) continue
      if (storage.isClose()) {
        const batches = storage.batchSeq()
        engine.close(
          b,
          s,
          storage.clientId(),
          storage.sessionEpoch(),
          Number.isSafeInteger(batches) ? batches : 0,
          nowMs
        )
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
    if (!session.released) {
      topic.storage.sessions.publish(session.slot, session.clientId, session.sessionEpoch, fieldsOf(session))
    }
  }
  engine.dirty.length = 0
  topic.storage.publishFrontier(topic)
}

/**
 * One topic's part of a round: its state taken back from storage if another process's round
 * moved it (`syncTopic`), the scan, the sweep when `sweep` (the head's alone), then what moved
 * published. Whether it published; the topic's `tally` says what it did.
 */
export function orderTopic(topic: TopicOrder, nowMs: number, settings: OrderSettings, sweep: boolean): boolean {
  const { engine, tally } = topic
  tally.reset()
  // No writer has a lane in it, so no batch: only the sweep (sessions registered and never used) has work there.
  if (!sweep && engine.dirty.length === 0 && topic.storage.lanes().length === 0) return false
  if (!syncTopic(topic)) return false
  // Sessions are swept where there are any: ten thousand topics written once cost the sweep a load each.
  const sweepSessions = sweep && (engine.sessionCount > 0 || topic.storage.sessions.liveCount() > 0)
  // The sweep releases idle sessions, so it must know them all, not only those seen since a sync.
  if (sweepSessions && topic.sessionsPartial && takeAllSessions(topic) !== undefined) return false
  scanTopic(topic, nowMs, settings.maxPerBroker)
  if (sweepSessions) {
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
  if (!tally.moved() && engine.dirty.length === 0) return false
  publishTopic(topic)
  return true
}

/**
 * One round over every topic, as plain code (it runs for every few batches): scans, sweeps
 * when due, publishes what moved and rings who waits for it. The caller holds the lease's
 * fence (`LogStorage.beginRound`); `fencedRound` leaves it.
 */
export function sequencerRound(state: SequencerState, nowMs: number): RoundTally {
  unpark(state)
  const { attention, log, settings, total } = state
  total.reset()
  let any = false
  // On the cadence's grid (a timer aimed at it may fire a little early): an idle head's sweep shares its wake.
  const sweep = nowMs >= state.nextSweepMs - TIMER_EARLY_MS
  if (sweep) state.nextSweepMs = nextTickAfter(SESSION_SWEEP_MS, nowMs)
  const looking = lookedAt(state, sweep)
  if (log.marks !== undefined) attention.clear()
  for (const topic of looking) {
    if (orderTopic(topic, nowMs, settings, sweep)) any = true
    total.add(topic.tally)
    total.looked++
    if (log.marks !== undefined && needsLook(topic)) attention.add(topic)
  }
  if (sweep) {
    // Sessions registered on a topic nobody writes yet idle out too.
    for (const topic of state.parked.values()) {
      if (orderTopic(topic, nowMs, settings, sweep)) any = true
      total.add(topic.tally)
    }
  }
  if (any) log.ring(total)
  state.recordTally(total, heldBatches(watched(state)))
  return total
}

/** The topics whose storage may change with no mark: every one without marks, else those the last round left work in. */
const watched = (state: SequencerState): Iterable<TopicOrder> =>
  state.log.marks === undefined ? state.topics.values() : state.attention

const heldBatches = (topics: Iterable<TopicOrder>): number => {
  let held = 0
  for (const topic of topics) for (const b of topic.storage.lanes()) held += topic.engine.heldCount(b)
  return held
}

/**
 * The topics a round looks at: every one at the sweep or without marks; else those the last round
 * left work in and those marked since (a marked topic still parked is taken on: it was written).
 * A mark of a topic not discovered yet is put back while the directory has topics to discover.
 */
const lookedAt = (state: SequencerState, sweep: boolean): Iterable<TopicOrder> => {
  const { log, looking } = state
  const marks = log.marks
  if (marks === undefined) return state.topics.values()
  looking.clear()
  if (!sweep) { for (const topic of state.attention) looking.add(topic) }
  marks.take((id) => {
    const topic = state.topics.get(id) ?? unparkMarked(state, id)
    if (topic !== undefined) looking.add(topic)
    else if (log.hasNewTopics()) marks.mark(id)
  })
  return sweep ? state.topics.values() : looking
}

/** A marked topic that was parked: it holds a batch, so it joins the ordered ones. */
const unparkMarked = (state: SequencerState, id: number): TopicOrder | undefined => {
  const topic = state.parked.get(id)
  if (topic === undefined || parks(state, topic)) return undefined
  state.parked.delete(id)
  takeOn(state, topic)
  return topic
}

/** Whether a topic has work its next look must do with no mark: batches held, a full GOI, sessions to publish, more committed. */
const needsLook = (topic: TopicOrder): boolean =>
  topic.stalled || topic.engine.holds() || topic.engine.dirty.length > 0 || workLeft(topic)

/** Whether a writer's PBR of the topic has a committed slot the last scan did not reach (it stopped at its per-broker bound). */
export const workLeft = (topic: TopicOrder): boolean => {
  for (const b of topic.storage.lanes()) if (topic.storage.committed(b, topic.scan[b])) return true
  return false
}

/** A topic joins the ordered ones, looked at by the next round (what its storage holds may need ordering). */
const takeOn = (state: SequencerState, topic: TopicOrder): void => {
  state.topics.set(topic.info.id, topic)
  if (state.log.marks !== undefined) state.attention.add(topic)
}

/** `sequencerRound` inside the lease's fence, which the caller entered (`beginRound`); a throw (a defect) still leaves it. */
export function fencedRound(state: SequencerState, nowMs: number): RoundTally {
  try {
    return sequencerRound(state, nowMs)
  } finally {
    state.log.endRound()
  }
}

/** Whether a topic has no lane yet and may wait aside (`SequencerState.parked`). */
const parks = (state: SequencerState, topic: TopicOrder): boolean =>
  state.log.lanesGranted !== undefined && topic.storage.lanes().length === 0 && topic.engine.dirty.length === 0

/** The parked topics that got a lane join the ordered ones: looked at only when a lane was granted since the last look. */
const unpark = (state: SequencerState): void => {
  const granted = state.log.lanesGranted?.()
  if (granted === undefined || granted === state.grantedSeen) return
  const moved = (granted - state.grantedSeen) | 0
  // Read before the lanes: a lane granted after this read moves the word past it.
  state.grantedSeen = granted
  const { parked } = state
  const ids = state.log.takeGranted?.() ?? []
  // Every grant named (this process granted them all): only those topics. Otherwise (another process
  // grants, or the count started) every parked topic.
  const candidates = ids.length >= moved && moved > 0 ? ids : parked.keys()
  for (const id of candidates) {
    const topic = parked.get(id)
    if (topic === undefined || parks(state, topic)) continue
    parked.delete(id)
    takeOn(state, topic)
  }
}

/** Drops the deleted topics, then takes in the topics that appeared, recovered from their storage. */
const discoverTopics = (state: SequencerState): Effect.Effect<void> =>
  Effect.suspend(() => {
    // By id and generation: a delete costs its own topic, not a pass over every topic.
    for (const info of state.log.deleted()) {
      for (const held of [state.topics, state.parked]) {
        const topic = held.get(info.id)
        if (topic === undefined || topic.info.generation !== info.generation) continue
        held.delete(info.id)
        state.attention.delete(topic)
      }
    }
    return Effect.map(state.log.discover, (found) => {
      for (const topic of found) {
        if (parks(state, topic)) state.parked.set(topic.info.id, topic)
        else takeOn(state, topic)
      }
    })
  })

/**
 * A round, after taking in new topics (discovery is an Effect, it logs; a round without one
 * stays plain code). Both write, so both run inside `beginRound` … `endRound`.
 */
export const roundStep = (state: SequencerState): Effect.Effect<RoundTally, SequencerLeaseLost> => {
  const { log } = state
  // A discovery that fails (it never does but as a defect or an interruption) leaves the fence too.
  const discover = discoverTopics(state).pipe(
    Effect.onExit((exit) => (exit._tag === "Failure" ? Effect.sync(log.endRound) : Effect.void))
  )
  return Effect.flatMap(
    enterRound(state),
    () =>
      Effect.flatMap(Clock.currentTimeMillis, (nowMs) =>
        log.hasNewTopics()
          ? Effect.zipRight(
            discover,
            Effect.sync(() => fencedRound(state, nowMs))
          )
          : Effect.sync(() => fencedRound(state, nowMs)))
  )
}

/** What a head logs when it takes the round marker over from a process that died inside a round. */
export const DEAD_HOLDER =
  "sequencer: a process died inside a round (its round marker taken over); every topic is taken on again from the region"

/** How long a head waits, at most, before it looks again at a marker another process holds. */
export const BUSY_RETRY_MAX_MS = 16

/**
 * Enters a round, waiting while another process is inside one (its rounds take microseconds:
 * the first look again is at once, then every 1, 2, … up to `BUSY_RETRY_MAX_MS` ms). After
 * `recover` every topic is taken on again by the discovery that follows.
 */
export const enterRound = (state: SequencerState): Effect.Effect<void, SequencerLeaseLost> =>
  Effect.suspend(() => {
    let delayMs = 0
    const attempt: Effect.Effect<void, SequencerLeaseLost> = Effect.suspend(() => {
      const entry = state.log.beginRound()
      if (entry === "lost") return Effect.fail(state.log.leaseLost())
      if (entry === "recover") {
        forgetTopics(state)
        return Effect.logWarning(DEAD_HOLDER)
      }
      if (entry !== "busy") return Effect.void
      const wait = delayMs === 0 ? Effect.yieldNow() : Effect.sleep(delayMs)
      delayMs = Math.min(BUSY_RETRY_MAX_MS, Math.max(1, delayMs * 2))
      return Effect.zipRight(wait, attempt)
    })
    return attempt
  })

/** After taking the marker over from a dead process: every topic is taken on again from its storage (`roundStep`'s discovery). */
export const forgetTopics = (state: SequencerState): void => {
  state.topics.clear()
  state.attention.clear()
  state.parked.clear()
  state.grantedSeen = Number.NaN
  state.log.forgetTopics()
}

/**
 * Something to do: a marked topic, a committed slot at a scan cursor of a watched topic, GOI
 * room for a topic that stalled (a reader moving its cursor rings us), or a new topic.
 */
export function hasWork(state: SequencerState): boolean {
  // A parked topic got a lane: the round takes it on.
  if (state.log.lanesGranted !== undefined && state.log.lanesGranted() !== state.grantedSeen) return true
  if (state.log.marks?.any() === true) return true
  for (const topic of watched(state)) {
    if (topic.stalled) {
      if (topic.storage.lowestCursor() !== topic.lowest) return true
      continue
    }
    for (const b of topic.storage.lanes()) if (topic.storage.committed(b, topic.scan[b])) return true
  }
  return state.log.hasNewTopics()
}

/** The next moment a round has something to do with no one ringing: a hold's deadline or the session sweep. */
export const nextDeadline = (state: SequencerState): number => {
  let deadline = state.nextSweepMs
  // A topic holding batches is watched (`needsLook`).
  for (const topic of watched(state)) deadline = Math.min(deadline, topic.engine.nextDeadline())
  return deadline
}
