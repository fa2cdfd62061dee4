/**
 * The one append algorithm (`appenderOver`: header checks, room, commit, backpressure,
 * sessions) over an `AppendBacking`: the live layer's backing is this broker slot's PBR + Blog
 * in the region (Appender.ts, AppendRegion.ts), the fake's the in-process store
 * (AppenderMemory.ts). Room is AppendRoom.ts. An append waits for room (backpressure) and fails
 * with `AppendTimeout` after `timeoutMs`.
 *
 * A named consumer's hold has a bound: once appends of a topic have waited for room that named
 * consumers hold for `consumerHoldMs`, with none getting through and the holders' cursor not
 * moving, the broker cuts those consumers off (services/log/Consumers.ts) and the appends go on.
 */
import { Effect } from "effect"
import { logAppendBatches, logAppendBytes, logConsumerCutOffs, logRingFullWaits } from "../../Metrics.js"
import {
  type AppendError,
  type AppenderShape,
  type AppendReceipt,
  AppendTimeout,
  type BatchHeader,
  BatchRejected,
  SessionTableFull,
  type TopicLimits
} from "../../services/log/Appender.js"
import { DEFAULT_CONSUMER_HOLD_MS } from "../../services/log/Consumers.js"
import type { SequencerOptions } from "../../services/log/Sequencer.js"
import { TopicDeleted, TopicNotFound } from "../../services/log/Topics.js"
import { CADENCE_MS } from "../region/Cadence.js"
import type { FlushAudit } from "../region/FlushAudit.js"
import type { AppendBacking, AppendTarget } from "./AppendBacking.js"
import { type Full, reserve } from "./AppendRoom.js"
import { type LogConfig, LogConfigInvalid } from "./Layout.js"
import { alignLine, PbrKind, type PbrKindCode } from "./Records.js"

export interface AppenderOptions {
  readonly brokerId: number
  /** How long an append waits for room before `AppendTimeout`. */
  readonly timeoutMs?: number
  /** How long appends may wait for room a named consumer holds before it is cut off (default 30 s). */
  readonly consumerHoldMs?: number
  /** Test-only: verify that every PBR record is flushed before its commit word (non-coherent regions). */
  readonly flushAudit?: FlushAudit
  /** The ordering settings of the rounds this appender runs itself (AppenderRounds.ts); the head's defaults when absent. */
  readonly sequencer?: SequencerOptions
}

const DEFAULT_TIMEOUT_MS = 10_000

/** Why a header cannot be appended, or undefined. */
export const headerProblem = (header: BatchHeader, maxBatchBytes: number): string | undefined => {
  const { clientId, sessionEpoch, batchSeq, messageCount, payloadBytes, crc32c } = header
  if (!(clientId >= 0 && clientId <= 0xffffffff && Number.isInteger(clientId))) {
    return `client id ${clientId} is not a u32`
  }
  if (!(sessionEpoch >= 0 && sessionEpoch <= 0xffffffff && Number.isInteger(sessionEpoch))) {
    return `session epoch ${sessionEpoch} is not a u32`
  }
  if (!(crc32c >= 0 && crc32c <= 0xffffffff && Number.isInteger(crc32c))) return `crc32c ${crc32c} is not a u32`
  if (!(Number.isSafeInteger(batchSeq) && batchSeq >= 0)) return `batch seq ${batchSeq} is not a non-negative integer`
  if (!(Number.isInteger(payloadBytes) && payloadBytes > 0 && payloadBytes % 8 === 0)) {
    return `payload of ${payloadBytes} bytes is not a positive multiple of 8`
  }
  if (payloadBytes > maxBatchBytes) return `payload of ${payloadBytes} bytes exceeds maxBatchBytes ${maxBatchBytes}`
  if (!(Number.isInteger(messageCount) && messageCount >= 1 && messageCount * 8 <= payloadBytes)) {
    return `message count ${messageCount} does not fit a ${payloadBytes}-byte payload`
  }
  return undefined
}

/** The broker id is one of the log's broker slots. */
export const checkBrokerId = (config: LogConfig, brokerId: number): Effect.Effect<void, LogConfigInvalid> =>
  Number.isInteger(brokerId) && brokerId >= 0 && brokerId < config.maxBrokers
    ? Effect.void
    : Effect.fail(
      new LogConfigInvalid({
        problems: [`broker id ${brokerId} is not in [0, maxBrokers=${config.maxBrokers})`],
        config
      })
    )

/** The close marker's header: no payload; `batchSeq` carries the batch count. */
const closeHeader = (clientId: number, sessionEpoch: number, batches: number): BatchHeader => ({
  clientId,
  sessionEpoch,
  batchSeq: batches,
  messageCount: 0,
  payloadBytes: 0,
  crc32c: 0
})

const noPayload = (): void => {}

/** Counts an appended batch (plain metric updates: this is per batch). */
const counted = (receipt: AppendReceipt, payloadBytes: number): AppendReceipt => {
  logAppendBatches.unsafeUpdate(1, [])
  logAppendBytes.unsafeUpdate(payloadBytes, [])
  return receipt
}

/** What `appenderOver` works with: the backing, its settings, and per target what outlives one append. */
interface AppenderState {
  readonly backing: AppendBacking
  readonly brokerId: number
  readonly timeoutMs: number
  /** Infinity: never cut off (a consumer holds retention for as long as it exists). */
  readonly consumerHoldMs: number
  /** Per target, the `revoked` callback of the space `tryReserve` handed out last (until the next append). */
  readonly reserved: Map<AppendTarget, () => void>
  /**
   * Per target, since when its appends have waited for room named consumers hold: the clock
   * starts again when an append gets through (the PBR head moves) or the holders' cursor moves,
   * and it runs on across appends that time out (a publisher retrying still waits for the same hold).
   */
  readonly holds: Map<AppendTarget, { since: number; cursor: number; head: number }>
}

/** Where a batch of `bytes` starts in the Blog, reclaiming first when full; or what stays full. */
const roomFor = (t: AppendTarget, bytes: number): number | Full => {
  const first = reserve(t.cursors, bytes, t.pbrSlots, t.blogBytes)
  if (typeof first === "number") return first
  t.reclaim(bytes)
  return reserve(t.cursors, bytes, t.pbrSlots, t.blogBytes)
}

const revokeReserved = (s: AppenderState, t: AppendTarget): void => {
  const revoked = s.reserved.get(t)
  if (revoked === undefined) return
  s.reserved.delete(t)
  revoked()
}

/** append: payload → PBR slot → commit word; then the cursors move past the batch and the sequencer is rung. */
const appendBatch = (
  s: AppenderState,
  t: AppendTarget,
  header: BatchHeader,
  position: number,
  fill: (dst: Uint8Array) => void,
  kind: PbrKindCode
): AppendReceipt => {
  const c = t.cursors
  const pbrSeq = c.head
  // Whoever received into this space (if it is not this very batch) copies its bytes out before they are overwritten.
  revokeReserved(s, t)
  t.write(header, pbrSeq, position, fill, kind)
  c.head = pbrSeq + 1
  c.blogHead = position + alignLine(header.payloadBytes)
  c.appendedMessages += header.messageCount
  t.published()
  return { brokerId: s.brokerId, pbrSeq, blogPosition: position }
}

/** One try: a receipt, what is full, or the batch rejected because `fill` threw (no Effect: the hot path). */
const attempt = (
  s: AppenderState,
  t: AppendTarget,
  header: BatchHeader,
  fill: (dst: Uint8Array) => void,
  kind: PbrKindCode
): AppendReceipt | Full | BatchRejected => {
  try {
    const position = roomFor(t, alignLine(header.payloadBytes))
    return typeof position === "number" ? appendBatch(s, t, header, position, fill, kind) : position
  } catch (error) {
    return new BatchRejected({ topic: t.topic, reason: `filling the payload failed: ${String(error)}` })
  }
}

const limitsOf = (t: AppendTarget): TopicLimits => ({
  maxBatchBytes: t.maxBatchBytes,
  maxMessageBytes: t.maxMessageBytes
})

/** A batch over the topic's limit: what the limit is, where it comes from, and what raises it. */
const tooLargeFor = (topic: string, bytes: number, maxBatchBytes: number) =>
  new BatchRejected({
    topic,
    maxBatchBytes,
    reason:
      `a batch of ${bytes} bytes is over the topic's limit of ${maxBatchBytes} (half of a writer's lane: its memory / writers): ` +
      `publish to it with batchBytes of at most ${maxBatchBytes} (cxlog publish --batch-bytes), or give the topic more memory or fewer writers ` +
      `(cxlog topics describe ${topic} shows its largest message)`
  })

/** One try of a batch without waiting: a counted receipt, what is full, or why not. */
const tryOnce = (
  s: AppenderState,
  t: AppendTarget,
  header: BatchHeader,
  fill: (dst: Uint8Array) => void
): AppendReceipt | Full | BatchRejected => {
  if (header.payloadBytes > t.maxBatchBytes && Number.isSafeInteger(header.payloadBytes)) {
    return tooLargeFor(t.topic, header.payloadBytes, t.maxBatchBytes)
  }
  const problem = headerProblem(header, t.maxBatchBytes)
  if (problem !== undefined) return new BatchRejected({ topic: t.topic, reason: problem })
  const outcome = attempt(s, t, header, fill, PbrKind.batch)
  return typeof outcome === "string" || outcome instanceof BatchRejected
    ? outcome
    : counted(outcome, header.payloadBytes)
}

/** When the consumers holding `t`'s room are to be cut off (Infinity when none holds it). */
const cutOffAt = (s: AppenderState, t: AppendTarget, now: number): number => {
  const cursor = t.consumerHold()
  if (cursor === undefined) {
    s.holds.delete(t)
    return Infinity
  }
  let hold = s.holds.get(t)
  if (hold === undefined || hold.cursor !== cursor || hold.head !== t.cursors.head) {
    s.holds.set(t, hold = { since: now, cursor, head: t.cursors.head })
  }
  return hold.since + s.consumerHoldMs
}

/** Cuts off the consumers whose hold kept `t`'s appends waiting past the bound, and says so. */
const cutOff = (s: AppenderState, t: AppendTarget): Effect.Effect<void> =>
  Effect.suspend(() => {
    const hold = s.holds.get(t)
    s.holds.delete(t)
    if (hold === undefined) return Effect.void
    const waitedMs = Math.round(performance.now() - hold.since)
    const cut = t.cutOffConsumers(hold.cursor)
    if (cut === 0) return Effect.void
    logConsumerCutOffs.unsafeUpdate(cut, [])
    return Effect.logWarning(
      `topic ${t.topic}: cut off ${cut} named consumer(s) whose committed offset kept broker ${s.brokerId}'s appends waiting for room ${waitedMs} ms ` +
        `(CXLOG_CONSUMER_HOLD_MS ${s.consumerHoldMs}); their members get ConsumerCutOff`
    )
  })

/**
 * Backpressure: after a try found `first` full, waits for room and retries until a receipt,
 * `AppendTimeout`, or `TopicDeleted` (within a tick of the delete).
 */
const appendWhenRoom = (
  s: AppenderState,
  t: AppendTarget,
  header: BatchHeader,
  fill: (dst: Uint8Array) => void,
  kind: PbrKindCode,
  first: Full
) => {
  const bytes = alignLine(header.payloadBytes)
  const hasRoom = () => typeof roomFor(t, bytes) === "number"
  const retry = Effect.gen(function*() {
    const started = performance.now()
    let full = first
    for (;;) {
      const now = performance.now()
      const remaining = s.timeoutMs - (now - started)
      const cutAt = cutOffAt(s, t, now)
      if (remaining > 0 && cutAt <= now) {
        yield* cutOff(s, t)
        if (!hasRoom()) continue
      } else if (remaining <= 0 || !(yield* s.backing.await(hasRoom, Math.min(remaining, cutAt - now, CADENCE_MS)))) {
        // Nothing wakes this wait when its topic is deleted (no room ever comes then): it looks
        // each tick, so a blocked publisher learns it within one, as every other user of the
        // topic does. Any other answer than this target means its topic went (Topics.delete).
        if (s.backing.known(t.topic) !== t) return yield* new TopicDeleted({ name: t.topic })
        if (performance.now() - started < s.timeoutMs) continue
        return yield* new AppendTimeout({
          topic: t.topic,
          brokerId: s.brokerId,
          waitedMs: Math.round(performance.now() - started),
          full
        })
      }
      const next = attempt(s, t, header, fill, kind)
      if (next instanceof BatchRejected) return yield* next
      if (typeof next !== "string") return next
      full = next
    }
  })
  // Counted as waiting before the first re-check, so whoever frees room after it wakes us (see ringRoomWaiters).
  const startWaiting = Effect.sync(() => {
    t.cursors.ringFullWaits++
    t.waiting(1)
    logRingFullWaits.unsafeUpdate(1, [])
  })
  return Effect.acquireUseRelease(startWaiting, () => retry, () => Effect.sync(() => t.waiting(-1)))
}

const appendTo = (
  s: AppenderState,
  t: AppendTarget,
  header: BatchHeader,
  fill: (dst: Uint8Array) => void,
  kind: PbrKindCode
): Effect.Effect<AppendReceipt, AppendError> => {
  const first = kind === PbrKind.batch ? tryOnce(s, t, header, fill) : attempt(s, t, header, fill, kind)
  if (first instanceof BatchRejected) return Effect.fail(first)
  if (typeof first !== "string") return Effect.succeed(first)
  const waited = appendWhenRoom(s, t, header, fill, kind, first)
  return kind === PbrKind.batch ? Effect.map(waited, (receipt) => counted(receipt, header.payloadBytes)) : waited
}

/** Appends to the topic's target, set up from the backing on first use (no closure per batch once it is). */
const appendToTopic = (
  s: AppenderState,
  topic: string,
  header: BatchHeader,
  fill: (dst: Uint8Array) => void,
  kind: PbrKindCode
) =>
  Effect.suspend(() => {
    const known = s.backing.known(topic)
    if (known === undefined) return Effect.flatMap(s.backing.target(topic), (t) => appendTo(s, t, header, fill, kind))
    return known instanceof TopicNotFound || known instanceof TopicDeleted
      ? Effect.fail(known)
      : appendTo(s, known, header, fill, kind)
  })

/** Space in the Blog to receive a payload into, or "wait" (see `AppenderShape.tryReserve`). */
const tryReserve = (s: AppenderState): AppenderShape["tryReserve"] => (topic, payloadBytes, slackBytes, revoked) => {
  const known = s.backing.known(topic)
  if (known === undefined) return "wait"
  if (known instanceof TopicNotFound) return known
  // Received elsewhere; its append then says the topic is gone.
  if (known instanceof TopicDeleted) return "wait"
  // A size the append would refuse is received elsewhere; the append then says why.
  if (!(Number.isInteger(payloadBytes) && payloadBytes > 0 && payloadBytes <= known.maxBatchBytes)) return "wait"
  const position = roomFor(known, alignLine(payloadBytes))
  if (typeof position !== "number") return "wait"
  revokeReserved(s, known)
  s.reserved.set(known, revoked)
  // Slack only where it is free space at the same position (no wrap, no one's bytes).
  const slack = slackBytes > 0 &&
      reserve(known.cursors, alignLine(payloadBytes + slackBytes), known.pbrSlots, known.blogBytes) === position
    ? slackBytes
    : 0
  return known.view(position, payloadBytes + slack)
}

/** The Appender service over a backing: every append, wherever its bytes go, runs this code. */
export const appenderOver = (backing: AppendBacking): AppenderShape => {
  const { brokerId } = backing
  const holdMs = backing.consumerHoldMs ?? DEFAULT_CONSUMER_HOLD_MS
  const s: AppenderState = {
    backing,
    brokerId,
    timeoutMs: backing.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    // 0: never cut off.
    consumerHoldMs: holdMs > 0 ? holdMs : Infinity,
    reserved: new Map(),
    holds: new Map()
  }
  // A dropped target's reserved space is taken back (its receiver copies out) before its topic's memory can go.
  backing.onDropped((t) => {
    revokeReserved(s, t)
    s.holds.delete(t)
  })
  const appendWith = (topic: string, header: BatchHeader, fill: (dst: Uint8Array) => void) =>
    appendToTopic(s, topic, header, fill, PbrKind.batch)
  return {
    brokerId,
    appendWith,
    tryAppendWith: (topic, header, fill) => {
      const known = backing.known(topic)
      if (known === undefined) return "wait"
      if (known instanceof TopicNotFound || known instanceof TopicDeleted) return known
      const outcome = tryOnce(s, known, header, fill)
      return typeof outcome === "string" ? "wait" : outcome
    },
    tryReserve: tryReserve(s),
    limits: (topic) =>
      Effect.suspend(() => {
        const known = backing.known(topic)
        if (known === undefined) return Effect.map(backing.target(topic), limitsOf)
        return known instanceof TopicNotFound || known instanceof TopicDeleted
          ? Effect.fail(known)
          : Effect.succeed(limitsOf(known))
      }),
    append: (topic, header, payload) =>
      payload.length !== header.payloadBytes
        ? Effect.fail(
          new BatchRejected({
            topic,
            reason: `payload is ${payload.length} bytes but the header says ${header.payloadBytes}`
          })
        )
        : appendWith(topic, header, (dst) => dst.set(payload)),
    registerSession: (topic, clientId) =>
      Effect.flatMap(backing.sessions(topic), (table) => {
        const outcome = table.register(clientId, Date.now())
        return "full" in outcome
          ? Effect.fail(new SessionTableFull({ topic, capacity: outcome.capacity }))
          : Effect.succeed(outcome.sessionEpoch)
      }),
    closeSession: (topic, clientId, sessionEpoch, batches) =>
      appendToTopic(s, topic, closeHeader(clientId, sessionEpoch, batches), noPayload, PbrKind.close)
  }
}
