/**
 * Appender: the one append algorithm (`appenderOver`: header checks, room, commit,
 * backpressure, sessions) over an `AppendBacking`, and the live layer, whose backing is this
 * broker slot's PBR + Blog in the region (the fake's is the in-process store:
 * AppenderMemory.ts). An append waits for room (backpressure) and fails with `AppendTimeout`
 * after `timeoutMs`.
 *
 * Room: PBR slots and Blog bytes are reused only when the sequencer has consumed them and
 * every live registered subscriber has read past them. Each batch starts on a 64-byte line;
 * one that would straddle the Blog's end starts at its beginning instead. A freed PBR slot's
 * payload stays readable until the Blog needs its bytes: the Blog tail (what readers check)
 * moves only when an append lacks Blog room, so the hot tier holds what the GOI and the Blog
 * hold, not merely what is still in the PBR (docs/log.md, "What the hot tier holds").
 *
 * A named consumer's hold has a bound: once appends of a topic have waited for room that named
 * consumers hold for `consumerHoldMs`, with none getting through and the holders' cursor not
 * moving, the broker cuts those consumers off (services/log/Consumers.ts) and the appends go on.
 */
import { Effect, Layer, type Scope } from "effect"
import { logAppendBatches, logAppendBytes, logConsumerCutOffs, logRingFullWaits } from "../../Metrics.js"
import {
  Appender,
  type AppenderShape,
  type AppendError,
  type AppendReceipt,
  AppendTimeout,
  type BatchHeader,
  BatchRejected,
  BrokerSlotTaken,
  SessionTableFull
} from "../../services/log/Appender.js"
import { CxlMemory, type CxlMemoryShape } from "../../services/region/CxlMemory.js"
import { Doorbell, type DoorbellShape } from "../../services/region/Doorbell.js"
import { LogCorrupt, type TopicInfo, TopicNotFound } from "../../services/log/Topics.js"
import type { FlushAudit } from "../region/FlushAudit.js"
import { type LogArea, type LogConfig, LogConfigInvalid, pbrSlotOffset } from "./Layout.js"
import { consumersHolding, cutOffHolding } from "./Consumers.js"
import { claimLine, livenessCache, lowestDurableCursor, newOccurrence, releaseLine, sequencerBell, waitingForRoom } from "./Participants.js"
import { alignLine, LINE_BYTES, PbrKind, type PbrKindCode, PbrSlot } from "./Records.js"
import { BrokerLineView, PbrSlotView, SequencerLineView } from "./RecordViews.js"
import type { SessionTable } from "./SessionTable.js"
import { regionSessionTables, topicResolver } from "./Topics.js"

export interface AppenderOptions {
  readonly brokerId: number
  /** How long an append waits for room before `AppendTimeout`. */
  readonly timeoutMs?: number
  /** How long appends may wait for room a named consumer holds before it is cut off (default 30 s). */
  readonly consumerHoldMs?: number
  /** Test-only: verify that every PBR record is flushed before its commit word (non-coherent regions). */
  readonly flushAudit?: FlushAudit
}

const DEFAULT_TIMEOUT_MS = 10_000
const DEFAULT_CONSUMER_HOLD_MS = 30_000

/** Why a header cannot be appended, or undefined. */
export const headerProblem = (header: BatchHeader, maxBatchBytes: number): string | undefined => {
  const { clientId, sessionEpoch, batchSeq, messageCount, payloadBytes, crc32c } = header
  if (!(clientId >= 0 && clientId <= 0xffffffff && Number.isInteger(clientId))) return `client id ${clientId} is not a u32`
  if (!(sessionEpoch >= 0 && sessionEpoch <= 0xffffffff && Number.isInteger(sessionEpoch))) return `session epoch ${sessionEpoch} is not a u32`
  if (!(crc32c >= 0 && crc32c <= 0xffffffff && Number.isInteger(crc32c))) return `crc32c ${crc32c} is not a u32`
  if (!(Number.isSafeInteger(batchSeq) && batchSeq >= 0)) return `batch seq ${batchSeq} is not a non-negative integer`
  if (!(Number.isInteger(payloadBytes) && payloadBytes > 0 && payloadBytes % 8 === 0)) return `payload of ${payloadBytes} bytes is not a positive multiple of 8`
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
    : Effect.fail(new LogConfigInvalid({ problems: [`broker id ${brokerId} is not in [0, maxBrokers=${config.maxBrokers})`], config }))

/** What is full when a batch cannot be appended now. */
export type Full = "pbr" | "blog"

/** A broker's cursors over one topic's PBR and Blog, as absolute positions (the region's broker line, or the store's broker). */
export interface AppendCursors {
  /** The next PBR position; positions before `reclaimed` may be reused. */
  head: number
  reclaimed: number
  /** The next Blog byte; bytes before `blogTail` may be reused (readers take a batch starting before it as gone). */
  blogHead: number
  blogTail: number
  appendedMessages: number
  ringFullWaits: number
}

/** Where a batch of `bytes` (line-aligned) would start in the Blog, or what is full. */
export const reserve = (c: AppendCursors, bytes: number, pbrSlots: number, blogBytes: number): number | Full => {
  if (c.head - c.reclaimed >= pbrSlots) return "pbr"
  const offset = c.blogHead % blogBytes
  const position = offset + bytes > blogBytes ? c.blogHead + blogBytes - offset : c.blogHead
  return position + bytes - c.blogTail <= blogBytes ? position : "blog"
}

/** What reclaiming reads of a broker's PBR slots, wherever they live. */
export interface ReclaimSource {
  /** The lowest cursor of the topic's live durable subscribers (Infinity if none): nothing from it on is reused. */
  lowestCursor(): number
  /** The sequencer finished the slot at PBR position `pbrSeq`. */
  finished(pbrSeq: number): boolean
  /** Its global seq, or a `Dropped` code. */
  globalSeq(pbrSeq: number): number
  /** Where its payload starts in the Blog. */
  blogPosition(pbrSeq: number): number
}

/**
 * reclaim: frees the broker's finished slots before `consumed`, oldest first, up to the first
 * one a durable subscriber still needs. Their payloads stay where they are, readable, until
 * `releaseBlog` moves the tail past them. Returns how many it freed.
 */
export const reclaim = (c: AppendCursors, consumed: number, slots: ReclaimSource): number => {
  if (!(c.reclaimed < consumed)) return 0
  const lowest = slots.lowestCursor()
  const before = c.reclaimed
  while (c.reclaimed < consumed) {
    const pbrSeq = c.reclaimed
    if (!slots.finished(pbrSeq)) break
    const globalSeq = slots.globalSeq(pbrSeq)
    if (globalSeq >= 0 && globalSeq >= lowest) break
    c.reclaimed = pbrSeq + 1
  }
  return c.reclaimed - before
}

/**
 * releaseBlog: moves the Blog tail over freed payloads (those before the oldest slot still in
 * the PBR) as far as a batch of `bytes` at the next position needs, and an eighth of the Blog
 * further so the tail is published about eight times a lap, not at every append; never when
 * what is freed would not make that room. Returns whether the tail moved.
 */
export const releaseBlog = (c: AppendCursors, bytes: number, blogBytes: number, slots: ReclaimSource): boolean => {
  const offset = c.blogHead % blogBytes
  const position = offset + bytes > blogBytes ? c.blogHead + blogBytes - offset : c.blogHead
  const needed = position + bytes - blogBytes
  if (needed <= c.blogTail) return false
  const free = c.reclaimed < c.head ? slots.blogPosition(c.reclaimed) : c.blogHead
  if (free < needed) return false
  c.blogTail = Math.min(free, needed + blogBytes / 8)
  return true
}

/** The global seq of the batch `reclaim` stopped at because a durable cursor still needs it, or undefined (nothing held, or the sequencer's to finish). */
export const heldBatch = (c: AppendCursors, consumed: number, slots: ReclaimSource): number | undefined => {
  if (!(c.reclaimed < consumed) || !slots.finished(c.reclaimed)) return undefined
  const g = slots.globalSeq(c.reclaimed)
  return g >= 0 && g >= slots.lowestCursor() ? g : undefined
}

/** One topic as this broker appends to it: its cursors, and what depends on where its bytes live. */
export interface AppendTarget {
  readonly topic: string
  readonly cursors: AppendCursors
  /**
   * Frees what the sequencer consumed and no durable subscriber needs (`reclaim`), then the
   * Blog bytes a batch of `bytes` needs (`releaseBlog`), and publishes what moved.
   */
  readonly reclaim: (bytes: number) => void
  /** Writes the payload (`fill`) at Blog `position` and the header into PBR position `pbrSeq`, the commit word last. */
  readonly write: (header: BatchHeader, pbrSeq: number, position: number, fill: (dst: Uint8Array) => void, kind: PbrKindCode) => void
  /** The Blog space at `position` (from `reserve`) as a view of `bytes`, for receiving a payload in place. */
  readonly view: (position: number, bytes: number) => Uint8Array
  /** After the cursors moved past a batch: publishes them and wakes the sequencer. */
  readonly published: () => void
  /** An append starts (+1) or stops (-1) waiting for room; a start also publishes `ringFullWaits`. */
  readonly waiting: (delta: 1 | -1) => void
  /**
   * When named consumers' retention keeps this broker from reclaiming room (`heldBatch`): the
   * lowest of their cursors; undefined when what keeps it, if anything, is no named consumer.
   */
  readonly consumerHold: () => number | undefined
  /**
   * Cuts off the named consumers that hold this broker's room with a cursor at or below `cursor`
   * (the lowest one, unmoved for the whole bound: consumers still moving above it are spared);
   * returns how many this call cut off.
   */
  readonly cutOffConsumers: (cursor: number) => number
}

/** Where a broker's appends land: the region's log area or the in-process store. */
export interface AppendBacking {
  readonly brokerId: number
  readonly config: LogConfig
  /** How long an append waits for room (default 10 s). */
  readonly timeoutMs: number | undefined
  /** How long appends wait for room named consumers hold before they are cut off (default 30 s). */
  readonly consumerHoldMs: number | undefined
  /**
   * The topic's target if it is set up (the hot path: no Effect); undefined if it is not
   * yet, or TopicNotFound if the backing knows at once that there is no such topic.
   */
  readonly known: (topic: string) => AppendTarget | TopicNotFound | undefined
  /** The topic's target, set up on first use. */
  readonly target: (topic: string) => Effect.Effect<AppendTarget, TopicNotFound | BatchRejected>
  readonly sessions: (topic: string) => Effect.Effect<SessionTable, TopicNotFound>
  /** True as soon as `condition()` holds, false after `timeoutMs`. */
  readonly await: (condition: () => boolean, timeoutMs: number) => Effect.Effect<boolean>
}

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

/** The Appender service over a backing: every append, wherever its bytes go, runs this code. */
export const appenderOver = (backing: AppendBacking): AppenderShape => {
  const { brokerId } = backing
  const timeoutMs = backing.timeoutMs ?? DEFAULT_TIMEOUT_MS
  // 0: never cut off (a consumer holds retention for as long as it exists).
  const holdSetting = backing.consumerHoldMs ?? DEFAULT_CONSUMER_HOLD_MS
  const consumerHoldMs = holdSetting > 0 ? holdSetting : Infinity
  const { pbrSlots, blogBytes, maxBatchBytes } = backing.config

  /** Where a batch of `bytes` starts in the Blog, reclaiming first when full; or what stays full. */
  const roomFor = (t: AppendTarget, bytes: number): number | Full => {
    const first = reserve(t.cursors, bytes, pbrSlots, blogBytes)
    if (typeof first === "number") return first
    t.reclaim(bytes)
    return reserve(t.cursors, bytes, pbrSlots, blogBytes)
  }

  /** Per target, the `revoked` callback of the space `tryReserve` handed out last (until the next append). */
  const reserved = new Map<AppendTarget, () => void>()
  const revokeReserved = (t: AppendTarget) => {
    const revoked = reserved.get(t)
    if (revoked === undefined) return
    reserved.delete(t)
    revoked()
  }

  /** append: payload → PBR slot → commit word; then the cursors move past the batch and the sequencer is rung. */
  const appendBatch = (t: AppendTarget, header: BatchHeader, position: number, fill: (dst: Uint8Array) => void, kind: PbrKindCode): AppendReceipt => {
    const c = t.cursors
    const pbrSeq = c.head
    // Whoever received into this space (if it is not this very batch) copies its bytes out before they are overwritten.
    revokeReserved(t)
    t.write(header, pbrSeq, position, fill, kind)
    c.head = pbrSeq + 1
    c.blogHead = position + alignLine(header.payloadBytes)
    c.appendedMessages += header.messageCount
    t.published()
    return { brokerId, pbrSeq, blogPosition: position }
  }

  /** One try: a receipt, what is full, or the batch rejected because `fill` threw (no Effect: the hot path). */
  const attempt = (t: AppendTarget, header: BatchHeader, fill: (dst: Uint8Array) => void, kind: PbrKindCode): AppendReceipt | Full | BatchRejected => {
    try {
      const position = roomFor(t, alignLine(header.payloadBytes))
      return typeof position === "number" ? appendBatch(t, header, position, fill, kind) : position
    } catch (error) {
      return new BatchRejected({ topic: t.topic, reason: `filling the payload failed: ${String(error)}` })
    }
  }

  /** One try of a batch without waiting: a counted receipt, what is full, or why not. */
  const tryOnce = (t: AppendTarget, header: BatchHeader, fill: (dst: Uint8Array) => void): AppendReceipt | Full | BatchRejected => {
    const problem = headerProblem(header, maxBatchBytes)
    if (problem !== undefined) return new BatchRejected({ topic: t.topic, reason: problem })
    const outcome = attempt(t, header, fill, PbrKind.batch)
    return typeof outcome === "string" || outcome instanceof BatchRejected ? outcome : counted(outcome, header.payloadBytes)
  }

  /**
   * Per target, since when its appends have waited for room named consumers hold: the clock
   * starts again when an append gets through (the PBR head moves) or the holders' cursor moves,
   * and it runs on across appends that time out (a publisher retrying still waits for the same hold).
   */
  const holds = new Map<AppendTarget, { since: number; cursor: number; head: number }>()
  /** When the consumers holding `t`'s room are to be cut off (Infinity when none holds it). */
  const cutOffAt = (t: AppendTarget, now: number): number => {
    const cursor = t.consumerHold()
    if (cursor === undefined) {
      holds.delete(t)
      return Infinity
    }
    let hold = holds.get(t)
    if (hold === undefined || hold.cursor !== cursor || hold.head !== t.cursors.head) holds.set(t, hold = { since: now, cursor, head: t.cursors.head })
    return hold.since + consumerHoldMs
  }
  const cutOff = (t: AppendTarget) =>
    Effect.suspend(() => {
      const hold = holds.get(t)
      holds.delete(t)
      if (hold === undefined) return Effect.void
      const waitedMs = Math.round(performance.now() - hold.since)
      const cut = t.cutOffConsumers(hold.cursor)
      if (cut === 0) return Effect.void
      logConsumerCutOffs.unsafeUpdate(cut, [])
      return Effect.logWarning(
        `topic ${t.topic}: cut off ${cut} named consumer(s) whose committed offset kept broker ${brokerId}'s appends waiting for room ${waitedMs} ms ` +
          `(CXLOG_CONSUMER_HOLD_MS ${consumerHoldMs}); their members get ConsumerCutOff`
      )
    })

  /** Backpressure: after a try found `first` full, waits for room and retries until a receipt, or `AppendTimeout`. */
  const appendWhenRoom = (t: AppendTarget, header: BatchHeader, fill: (dst: Uint8Array) => void, kind: PbrKindCode, first: Full) => {
    const bytes = alignLine(header.payloadBytes)
    const hasRoom = () => typeof roomFor(t, bytes) === "number"
    const retry = Effect.gen(function*() {
      const started = performance.now()
      let full = first
      for (;;) {
        const now = performance.now()
        const remaining = timeoutMs - (now - started)
        const cutAt = cutOffAt(t, now)
        if (remaining > 0 && cutAt <= now) {
          yield* cutOff(t)
          if (!hasRoom()) continue
        } else if (remaining <= 0 || !(yield* backing.await(hasRoom, Math.min(remaining, cutAt - now)))) {
          if (performance.now() - started < timeoutMs) continue
          return yield* new AppendTimeout({ topic: t.topic, brokerId, waitedMs: Math.round(performance.now() - started), full })
        }
        const next = attempt(t, header, fill, kind)
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

  const appendTo = (t: AppendTarget, header: BatchHeader, fill: (dst: Uint8Array) => void, kind: PbrKindCode): Effect.Effect<AppendReceipt, AppendError> => {
    const first = kind === PbrKind.batch ? tryOnce(t, header, fill) : attempt(t, header, fill, kind)
    if (first instanceof BatchRejected) return Effect.fail(first)
    if (typeof first !== "string") return Effect.succeed(first)
    const waited = appendWhenRoom(t, header, fill, kind, first)
    return kind === PbrKind.batch ? Effect.map(waited, (receipt) => counted(receipt, header.payloadBytes)) : waited
  }

  /** Appends to the topic's target, set up from the backing on first use (no closure per batch once it is). */
  const appendToTopic = (topic: string, header: BatchHeader, fill: (dst: Uint8Array) => void, kind: PbrKindCode) =>
    Effect.suspend(() => {
      const known = backing.known(topic)
      if (known === undefined) return Effect.flatMap(backing.target(topic), (t) => appendTo(t, header, fill, kind))
      return known instanceof TopicNotFound ? Effect.fail(known) : appendTo(known, header, fill, kind)
    })

  const appendWith = (topic: string, header: BatchHeader, fill: (dst: Uint8Array) => void) => appendToTopic(topic, header, fill, PbrKind.batch)

  return {
    brokerId,
    appendWith,
    tryAppendWith: (topic, header, fill) => {
      const known = backing.known(topic)
      if (known === undefined) return "wait"
      if (known instanceof TopicNotFound) return known
      const outcome = tryOnce(known, header, fill)
      return typeof outcome === "string" ? "wait" : outcome
    },
    tryReserve: (topic, payloadBytes, slackBytes, revoked) => {
      const known = backing.known(topic)
      if (known === undefined) return "wait"
      if (known instanceof TopicNotFound) return known
      // A size the append would refuse is received elsewhere; the append then says why.
      if (!(Number.isInteger(payloadBytes) && payloadBytes > 0 && payloadBytes <= maxBatchBytes)) return "wait"
      const position = roomFor(known, alignLine(payloadBytes))
      if (typeof position !== "number") return "wait"
      revokeReserved(known)
      reserved.set(known, revoked)
      // Slack only where it is free space at the same position (no wrap, no one's bytes).
      const slack = slackBytes > 0 && reserve(known.cursors, alignLine(payloadBytes + slackBytes), pbrSlots, blogBytes) === position ? slackBytes : 0
      return known.view(position, payloadBytes + slack)
    },
    append: (topic, header, payload) =>
      payload.length !== header.payloadBytes
        ? Effect.fail(new BatchRejected({ topic, reason: `payload is ${payload.length} bytes but the header says ${header.payloadBytes}` }))
        : appendWith(topic, header, (dst) => dst.set(payload)),
    registerSession: (topic, clientId) =>
      Effect.flatMap(backing.sessions(topic), (table) => {
        const outcome = table.register(clientId, Date.now())
        return "full" in outcome ? Effect.fail(new SessionTableFull({ topic, capacity: outcome.capacity })) : Effect.succeed(outcome.sessionEpoch)
      }),
    closeSession: (topic, clientId, sessionEpoch, batches) =>
      appendToTopic(topic, closeHeader(clientId, sessionEpoch, batches), noPayload, PbrKind.close)
  }
}

// ---- the region: this broker slot's PBR + Blog --------------------------------------

/** This process's broker slot in the region: what its topics' targets share. */
interface RegionBroker {
  readonly region: CxlMemoryShape
  readonly area: LogArea
  readonly brokerId: number
  readonly audit: FlushAudit | undefined
  readonly slots: PbrSlotView
  readonly brokerLines: BrokerLineView
  readonly sequencerLines: SequencerLineView
  /** Rings the sequencer, if it waits for batches, once this event-loop turn's appends are in (see `make`). */
  readonly ringSequencer: () => void
  readonly roomWaits: ReturnType<typeof waitingForRoom>
  readonly alive: (pid: number, occurrence: number) => boolean
  readonly doorbell: DoorbellShape
}

/** This broker's cursors for a topic, from its broker line, adopting slots a previous owner committed but did not publish. */
const recoverCursors = (b: RegionBroker, info: TopicInfo): AppendCursors | LogCorrupt => {
  const { area, brokerId, brokerLines, slots } = b
  const { pbrSlots, blogBytes, maxBatchBytes } = area.config
  const line = area.brokerLine(info.id, brokerId)
  const corrupt = (what: string) => new LogCorrupt({ reason: `topic ${info.name} broker ${brokerId}: ${what}` })
  const c: AppendCursors = {
    head: brokerLines.pbrHead(line),
    blogHead: brokerLines.blogHead(line),
    reclaimed: brokerLines.pbrReclaimed(line),
    blogTail: brokerLines.blogTail(line),
    appendedMessages: brokerLines.appendedMessages(line),
    ringFullWaits: brokerLines.ringFullWaits(line)
  }
  const sane = [c.head, c.blogHead, c.reclaimed, c.blogTail, c.appendedMessages].every((n) => Number.isSafeInteger(n) && n >= 0) &&
    c.reclaimed <= c.head && c.head - c.reclaimed <= pbrSlots && c.blogTail <= c.blogHead && c.blogHead - c.blogTail <= blogBytes
  if (!sane) return corrupt("broker line cursors are inconsistent")
  while (c.head - c.reclaimed < pbrSlots) {
    const slot = pbrSlotOffset(area, info.id, brokerId, c.head)
    if (!slots.committed(slot, c.head)) break
    const position = slots.blogPosition(slot)
    const bytes = slots.payloadBytes(slot)
    if (!Number.isSafeInteger(position) || position < c.blogHead || bytes > maxBatchBytes || (position % blogBytes) + bytes > blogBytes) {
      return corrupt(`PBR slot ${c.head} has a bad Blog range`)
    }
    c.blogHead = position + alignLine(bytes)
    c.appendedMessages += slots.messageCount(slot)
    c.head++
  }
  return c
}

/** One topic's PBR + Blog of this broker slot in the region. */
class RegionTarget implements AppendTarget, ReclaimSource {
  readonly topic: string
  private readonly id: number
  private readonly line: number
  private readonly sequencerLine: number
  private readonly blog: number

  constructor(private readonly b: RegionBroker, info: TopicInfo, readonly cursors: AppendCursors) {
    this.topic = info.name
    this.id = info.id
    this.line = b.area.brokerLine(info.id, b.brokerId)
    this.sequencerLine = b.area.sequencerLine(info.id, b.brokerId)
    this.blog = b.area.blog(info.id, b.brokerId)
  }

  private slot(pbrSeq: number): number {
    return pbrSlotOffset(this.b.area, this.id, this.b.brokerId, pbrSeq)
  }

  /** Publishes the cursors the sequencer reads: PBR head, Blog head, messages appended. */
  publishLine(): void {
    const { brokerLines, region } = this.b
    const c = this.cursors
    brokerLines.setPbrHead(this.line, c.head)
    brokerLines.setBlogHead(this.line, c.blogHead)
    brokerLines.setAppendedMessages(this.line, c.appendedMessages)
    region.publish(this.line, LINE_BYTES)
  }

  /** The bytes of a batch: payload into the Blog, header into the PBR slot, flushed, then the commit word. */
  write(header: BatchHeader, pbrSeq: number, position: number, fill: (dst: Uint8Array) => void, kind: PbrKindCode): void {
    const { region, slots, brokerId } = this.b
    const { payloadBytes } = header
    const at = this.blog + (position % this.b.area.config.blogBytes)
    fill(region.bytes.subarray(at, at + payloadBytes))
    const slot = this.slot(pbrSeq)
    slots.writeHeader(slot, header, position, brokerId, pbrSeq, kind)
    region.publish(at, payloadBytes)
    region.publish(slot, LINE_BYTES)
    this.b.audit?.beforeCommit(`PBR ${brokerId}/${pbrSeq}`, [at, payloadBytes, slot, PbrSlot.commit])
    slots.commit(slot, pbrSeq)
    region.publish(slot + PbrSlot.commit, 4)
  }

  view(position: number, bytes: number): Uint8Array {
    const at = this.blog + (position % this.b.area.config.blogBytes)
    return this.b.region.bytes.subarray(at, at + bytes)
  }

  published(): void {
    this.publishLine()
    this.b.ringSequencer()
  }

  /** reclaim and releaseBlog over the region, then publishes the new tail (readers check it) before the bytes can be reused. */
  reclaim(bytes: number): void {
    const { region, brokerLines, sequencerLines } = this.b
    region.invalidate(this.sequencerLine, LINE_BYTES)
    const freed = reclaim(this.cursors, Math.min(sequencerLines.consumedThrough(this.sequencerLine), this.cursors.head), this)
    const released = releaseBlog(this.cursors, bytes, this.b.area.config.blogBytes, this)
    if (freed === 0 && !released) return
    brokerLines.setPbrReclaimed(this.line, this.cursors.reclaimed)
    brokerLines.setBlogTail(this.line, this.cursors.blogTail)
    region.publish(this.line, LINE_BYTES)
    brokerLines.bumpReclaimVersion(this.line)
  }

  lowestCursor(): number {
    return lowestDurableCursor(this.b.region, this.b.area, this.id, this.b.alive)
  }

  finished(pbrSeq: number): boolean {
    const slot = this.slot(pbrSeq)
    this.b.region.invalidate(slot + PbrSlot.sequencerLine, LINE_BYTES)
    return this.b.slots.finished(slot, pbrSeq)
  }

  globalSeq(pbrSeq: number): number {
    return this.b.slots.globalSeq(this.slot(pbrSeq))
  }

  blogPosition(pbrSeq: number): number {
    return this.b.slots.blogPosition(this.slot(pbrSeq))
  }

  /** The batch reclaim stopped at for a durable cursor, if any (the sequencer's consumed-through read afresh). */
  private held(): number | undefined {
    const { region, sequencerLines } = this.b
    region.invalidate(this.sequencerLine, LINE_BYTES)
    return heldBatch(this.cursors, Math.min(sequencerLines.consumedThrough(this.sequencerLine), this.cursors.head), this)
  }

  consumerHold(): number | undefined {
    const g = this.held()
    const lowest = g === undefined ? Infinity : consumersHolding(this.b.region, this.b.area, this.id, g)
    return lowest === Infinity ? undefined : lowest
  }

  cutOffConsumers(cursor: number): number {
    const g = this.held()
    return g === undefined ? 0 : cutOffHolding(this.b.region, this.b.area, this.b.doorbell, this.id, Math.min(g, cursor))
  }

  waiting(delta: 1 | -1): void {
    if (delta === -1) return this.b.roomWaits.end()
    this.b.roomWaits.begin()
    this.b.brokerLines.setRingFullWaits(this.line, this.cursors.ringFullWaits)
  }
}

export const make = (area: LogArea, options: AppenderOptions): Effect.Effect<AppenderShape, BrokerSlotTaken | LogConfigInvalid, CxlMemory | Doorbell | Scope.Scope> =>
  Effect.gen(function*() {
    const region = yield* CxlMemory
    const doorbell = yield* Doorbell
    const { brokerId } = options
    yield* checkBrokerId(area.config, brokerId)
    const occurrence = newOccurrence()
    const owner = area.brokerOwner(brokerId)
    const roomWaits = waitingForRoom(region, owner)
    yield* Effect.acquireRelease(
      Effect.suspend(() => {
        const holder = claimLine(region, owner, occurrence, doorbell.offset)
        if (holder !== 0) return Effect.fail(new BrokerSlotTaken({ brokerId, pid: holder }))
        roomWaits.reset()
        return Effect.void
      }),
      () => Effect.sync(() => releaseLine(region, owner, occurrence))
    )
    // One ring per event-loop turn, after every batch the turn's reads completed is committed:
    // a parked sequencer then wakes to one round over all of them instead of one round per
    // batch, and a lone batch waits only for the end of its turn (the check phase that follows).
    const bell = sequencerBell(region, doorbell)
    let ringPending: ReturnType<typeof setImmediate> | undefined
    const ringNow = () => {
      ringPending = undefined
      bell.ringIfWaiting()
    }
    yield* Effect.addFinalizer(() => Effect.sync(() => ringPending !== undefined && clearImmediate(ringPending)))
    const broker: RegionBroker = {
      region,
      area,
      brokerId,
      audit: options.flushAudit,
      slots: new PbrSlotView(region, area.config.pbrSlots),
      brokerLines: new BrokerLineView(region),
      sequencerLines: new SequencerLineView(region),
      ringSequencer: () => {
        ringPending ??= setImmediate(ringNow)
      },
      roomWaits,
      alive: livenessCache(),
      doorbell
    }
    const resolve = topicResolver(region, area)
    const sessionTable = regionSessionTables(region, area)
    const targets = new Map<string, AppendTarget>()

    /** The topic's target, set up from the region on first use; a corrupt broker line rejects the batch. */
    const setUp = (topic: string): Effect.Effect<AppendTarget, TopicNotFound | BatchRejected> =>
      Effect.flatMap(resolve(topic), (info) => {
        const known = targets.get(topic)
        if (known !== undefined) return Effect.succeed(known)
        const cursors = recoverCursors(broker, info)
        if (cursors instanceof LogCorrupt) return Effect.fail(new BatchRejected({ topic, reason: cursors.message }))
        const target = new RegionTarget(broker, info, cursors)
        target.publishLine()
        targets.set(topic, target)
        return Effect.succeed(target)
      })

    return appenderOver({
      brokerId,
      config: area.config,
      timeoutMs: options.timeoutMs,
      consumerHoldMs: options.consumerHoldMs,
      known: (topic) => targets.get(topic),
      target: setUp,
      sessions: (topic) => Effect.map(resolve(topic), sessionTable),
      await: doorbell.await
    })
  })

export const layer = (area: LogArea, options: AppenderOptions): Layer.Layer<Appender, BrokerSlotTaken | LogConfigInvalid, CxlMemory | Doorbell> =>
  Layer.scoped(Appender, make(area, options))
