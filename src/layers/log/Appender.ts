/**
 * Appender layers: `layer` appends into the region (PBR + Blog of this broker slot),
 * `layerMemory` into the in-process store. Both wait for room (backpressure) and fail with
 * `AppendTimeout` after `timeoutMs`.
 *
 * Room: PBR slots and Blog bytes are reused only when the sequencer has consumed them and
 * every live registered subscriber has read past them. Each batch starts on a 64-byte line;
 * one that would straddle the Blog's end starts at its beginning instead.
 */
import { Effect, Layer, type Scope } from "effect"
import { logAppendBatches, logAppendBytes, logRingFullWaits } from "../../Metrics.js"
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
import { CxlMemory } from "../../services/region/CxlMemory.js"
import { Doorbell } from "../../services/region/Doorbell.js"
import { LogCorrupt, type TopicInfo, TopicNotFound } from "../../services/log/Topics.js"
import type { FlushAudit } from "../region/FlushAudit.js"
import { type LogArea, LogConfigInvalid } from "./Layout.js"
import { type MemoryBatch, type MemoryLogStore, reclaimMemory } from "./MemoryStore.js"
import { claimLine, livenessCache, lowestDurableCursor, newOccurrence, releaseLine, waitingForRoom } from "./Participants.js"
import { alignLine, BrokerLine, lapMark, LeaseLine, PbrKind, type PbrKindCode, PbrSlot, SequencerLine } from "./Records.js"
import { SessionTable } from "./SessionTable.js"
import { Offsets } from "../region/Superblock.js"
import { topicResolver } from "./Topics.js"

export interface AppenderOptions {
  readonly brokerId: number
  /** How long an append waits for room before `AppendTimeout`. */
  readonly timeoutMs?: number
  /** Test-only: verify that every PBR record is flushed before its commit word (non-coherent regions). */
  readonly flushAudit?: FlushAudit
}

const DEFAULT_TIMEOUT_MS = 10_000

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

type Full = "pbr" | "blog"

/** After a first try found `first` full: waits with `awaitRoom` and retries `attempt` until a receipt, up to `timeoutMs`. */
const withBackpressure = <E>(
  topic: string,
  brokerId: number,
  timeoutMs: number,
  first: Full,
  attempt: Effect.Effect<AppendReceipt | Full, E>,
  awaitRoom: (full: Full, remainingMs: number) => Effect.Effect<boolean>,
  onWait: () => void
): Effect.Effect<AppendReceipt, E | AppendTimeout> =>
  Effect.gen(function*() {
    onWait()
    logRingFullWaits.unsafeUpdate(1, [])
    const started = performance.now()
    let full = first
    for (;;) {
      const remaining = timeoutMs - (performance.now() - started)
      if (remaining <= 0 || !(yield* awaitRoom(full, remaining))) {
        return yield* new AppendTimeout({ topic, brokerId, waitedMs: Math.round(performance.now() - started), full })
      }
      const next = yield* attempt
      if (typeof next !== "string") return next
      full = next
    }
  })

/** The close marker's header: no payload; `batchSeq` carries the batch count. */
const closeHeader = (clientId: number, sessionEpoch: number, batches: number): BatchHeader => ({
  clientId,
  sessionEpoch,
  batchSeq: batches,
  messageCount: 0,
  payloadBytes: 0,
  crc32c: 0
})

/** The registration outcome in the service's terms. */
const registered = (topic: string, outcome: ReturnType<SessionTable["register"]>): Effect.Effect<number, SessionTableFull> =>
  "full" in outcome ? Effect.fail(new SessionTableFull({ topic, capacity: outcome.capacity })) : Effect.succeed(outcome.sessionEpoch)

/** Counts an appended batch (plain metric updates: this is per batch). */
const counted = (receipt: AppendReceipt, payloadBytes: number): AppendReceipt => {
  logAppendBatches.unsafeUpdate(1, [])
  logAppendBytes.unsafeUpdate(payloadBytes, [])
  return receipt
}

/** This broker's writing state for one topic; recovered from the region on first use. */
interface BrokerTopic {
  readonly info: TopicInfo
  readonly line: number
  readonly sequencerLine: number
  readonly pbr: number
  readonly blog: number
  head: number
  blogHead: number
  reclaimed: number
  blogTail: number
  appendedMessages: number
  ringFullWaits: number
}

export const make = (area: LogArea, options: AppenderOptions): Effect.Effect<AppenderShape, BrokerSlotTaken | LogConfigInvalid, CxlMemory | Doorbell | Scope.Scope> =>
  Effect.gen(function*() {
    const region = yield* CxlMemory
    const doorbell = yield* Doorbell
    const { config } = area
    const brokerId = options.brokerId
    if (!Number.isInteger(brokerId) || brokerId < 0 || brokerId >= config.maxBrokers) {
      return yield* new LogConfigInvalid({ problems: [`broker id ${brokerId} is not in [0, maxBrokers=${config.maxBrokers})`], config })
    }
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
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS
    const audit = options.flushAudit
    const { pbrSlots, blogBytes } = config
    const { f64, u32, i32 } = region
    const resolve = topicResolver(region, area)
    const topics = new Map<string, BrokerTopic>()
    const sessionTables = new Map<number, SessionTable>()
    const alive = livenessCache()

    const recover = (info: TopicInfo): Effect.Effect<BrokerTopic, LogCorrupt> =>
      Effect.suspend(() => {
        const line = area.brokerLine(info.id, brokerId)
        const bt: BrokerTopic = {
          info,
          line,
          sequencerLine: area.sequencerLine(info.id, brokerId),
          pbr: area.pbr(info.id, brokerId),
          blog: area.blog(info.id, brokerId),
          head: f64[(line + BrokerLine.pbrHead) / 8]!,
          blogHead: f64[(line + BrokerLine.blogHead) / 8]!,
          reclaimed: f64[(line + BrokerLine.pbrReclaimed) / 8]!,
          blogTail: f64[(line + BrokerLine.blogTail) / 8]!,
          appendedMessages: f64[(line + BrokerLine.appendedMessages) / 8]!,
          ringFullWaits: f64[(line + BrokerLine.ringFullWaits) / 8]!
        }
        const sane = [bt.head, bt.blogHead, bt.reclaimed, bt.blogTail, bt.appendedMessages].every((n) => Number.isSafeInteger(n) && n >= 0) &&
          bt.reclaimed <= bt.head && bt.head - bt.reclaimed <= pbrSlots && bt.blogTail <= bt.blogHead && bt.blogHead - bt.blogTail <= blogBytes
        if (!sane) return Effect.fail(new LogCorrupt({ reason: `topic ${info.name} broker ${brokerId}: broker line cursors are inconsistent` }))
        // A previous owner may have committed slots without publishing its line: adopt them.
        while (bt.head - bt.reclaimed < pbrSlots) {
          const slot = bt.pbr + (bt.head % pbrSlots) * 128
          if (Atomics.load(i32, (slot + PbrSlot.commit) / 4) !== lapMark(bt.head, pbrSlots)) break
          const position = f64[(slot + PbrSlot.blogPosition) / 8]!
          const bytes = u32[(slot + PbrSlot.payloadBytes) / 4]!
          if (!Number.isSafeInteger(position) || position < bt.blogHead || bytes > config.maxBatchBytes || (position % blogBytes) + bytes > blogBytes) {
            return Effect.fail(new LogCorrupt({ reason: `topic ${info.name} broker ${brokerId}: PBR slot ${bt.head} has a bad Blog range` }))
          }
          bt.blogHead = position + alignLine(bytes)
          bt.appendedMessages += u32[(slot + PbrSlot.messageCount) / 4]!
          bt.head++
        }
        publishLine(bt)
        topics.set(info.name, bt)
        return Effect.succeed(bt)
      })

    const publishLine = (bt: BrokerTopic) => {
      f64[(bt.line + BrokerLine.pbrHead) / 8] = bt.head
      f64[(bt.line + BrokerLine.blogHead) / 8] = bt.blogHead
      f64[(bt.line + BrokerLine.appendedMessages) / 8] = bt.appendedMessages
      region.publish(bt.line, 64)
    }

    const brokerTopic = (name: string): Effect.Effect<BrokerTopic, TopicNotFound | LogCorrupt> => {
      const known = topics.get(name)
      return known !== undefined ? Effect.succeed(known) : Effect.flatMap(resolve(name), recover)
    }

    /** Frees finished slots no durable subscriber needs; publishes the new tail before the bytes can be reused. */
    const reclaim = (bt: BrokerTopic): void => {
      region.invalidate(bt.sequencerLine, 64)
      const consumed = Math.min(f64[(bt.sequencerLine + SequencerLine.consumedThrough) / 8]!, bt.head)
      if (!(bt.reclaimed < consumed)) return
      const lowest = lowestDurableCursor(region, area, bt.info.id, alive)
      const before = bt.reclaimed
      while (bt.reclaimed < consumed) {
        const slot = bt.pbr + (bt.reclaimed % pbrSlots) * 128
        region.invalidate(slot + 64, 64)
        if (Atomics.load(i32, (slot + PbrSlot.finish) / 4) !== lapMark(bt.reclaimed, pbrSlots)) break
        const globalSeq = f64[(slot + PbrSlot.globalSeq) / 8]!
        if (globalSeq >= 0 && globalSeq >= lowest) break
        bt.blogTail = f64[(slot + PbrSlot.blogPosition) / 8]! + alignLine(u32[(slot + PbrSlot.payloadBytes) / 4]!)
        bt.reclaimed++
      }
      if (bt.reclaimed === before) return
      f64[(bt.line + BrokerLine.pbrReclaimed) / 8] = bt.reclaimed
      f64[(bt.line + BrokerLine.blogTail) / 8] = bt.blogTail
      region.publish(bt.line, 64)
      Atomics.add(i32, (bt.line + BrokerLine.reclaimVersion) / 4, 1)
    }

    /** Where a batch of `bytes` would start in the Blog, or why it cannot yet. */
    const reserve = (bt: BrokerTopic, bytes: number): number | Full => {
      if (bt.head - bt.reclaimed >= pbrSlots) return "pbr"
      const offset = bt.blogHead % blogBytes
      const position = offset + bytes > blogBytes ? bt.blogHead + blogBytes - offset : bt.blogHead
      return position + bytes - bt.blogTail <= blogBytes ? position : "blog"
    }

    const roomFor = (bt: BrokerTopic, bytes: number): number | Full => {
      const first = reserve(bt, bytes)
      if (typeof first === "number") return first
      reclaim(bt)
      return reserve(bt, bytes)
    }

    /** After a commit (a sequentially consistent store): rings the sequencer if it waits for batches. */
    const ringSequencer = () => {
      region.invalidate(Offsets.sequencerLease + LeaseLine.waiting, 4)
      if (Atomics.load(i32, (Offsets.sequencerLease + LeaseLine.waiting) / 4) === 0) return
      const bell = Atomics.load(i32, (Offsets.sequencerLease + LeaseLine.doorbell) / 4)
      if (bell > 0 && bell % 64 === 0 && region.inBounds(bell, 64)) doorbell.ring(bell)
    }

    const commit = (bt: BrokerTopic, header: BatchHeader, position: number, fill: (dst: Uint8Array) => void, kind: PbrKindCode): AppendReceipt => {
      const { payloadBytes } = header
      const at = bt.blog + (position % blogBytes)
      fill(region.bytes.subarray(at, at + payloadBytes))
      const pbrSeq = bt.head
      const slot = bt.pbr + (pbrSeq % pbrSlots) * 128
      u32[(slot + PbrSlot.clientId) / 4] = header.clientId
      u32[(slot + PbrSlot.sessionEpoch) / 4] = header.sessionEpoch
      f64[(slot + PbrSlot.batchSeq) / 8] = header.batchSeq
      u32[(slot + PbrSlot.messageCount) / 4] = header.messageCount
      u32[(slot + PbrSlot.payloadBytes) / 4] = payloadBytes
      f64[(slot + PbrSlot.blogPosition) / 8] = position
      u32[(slot + PbrSlot.crc32c) / 4] = header.crc32c
      u32[(slot + PbrSlot.brokerId) / 4] = brokerId
      f64[(slot + PbrSlot.receivedAtMs) / 8] = Date.now()
      f64[(slot + PbrSlot.pbrSeq) / 8] = pbrSeq
      u32[(slot + PbrSlot.kind) / 4] = kind
      region.publish(at, payloadBytes)
      region.publish(slot, 64)
      audit?.beforeCommit(`PBR ${brokerId}/${pbrSeq}`, [at, payloadBytes, slot, PbrSlot.commit])
      Atomics.store(i32, (slot + PbrSlot.commit) / 4, lapMark(pbrSeq, pbrSlots))
      region.publish(slot + PbrSlot.commit, 4)
      bt.head = pbrSeq + 1
      bt.blogHead = position + alignLine(payloadBytes)
      bt.appendedMessages += header.messageCount
      publishLine(bt)
      ringSequencer()
      return { brokerId, pbrSeq, blogPosition: position }
    }

    /** One try: a receipt, what is full, or why the batch cannot be appended (no Effect: the hot path). */
    const attempt = (
      bt: BrokerTopic,
      topic: string,
      header: BatchHeader,
      fill: (dst: Uint8Array) => void,
      kind: PbrKindCode = PbrKind.batch
    ): AppendReceipt | Full | BatchRejected => {
      try {
        const position = roomFor(bt, alignLine(header.payloadBytes))
        return typeof position === "number" ? commit(bt, header, position, fill, kind) : position
      } catch (error) {
        return new BatchRejected({ topic, reason: `filling the payload failed: ${String(error)}` })
      }
    }

    /** One try without waiting: a counted receipt, what is full, or why not. */
    const tryOnce = (bt: BrokerTopic, topic: string, header: BatchHeader, fill: (dst: Uint8Array) => void): AppendReceipt | Full | BatchRejected => {
      const problem = headerProblem(header, config.maxBatchBytes)
      if (problem !== undefined) return new BatchRejected({ topic, reason: problem })
      const first = attempt(bt, topic, header, fill)
      return typeof first === "string" || first instanceof BatchRejected ? first : counted(first, header.payloadBytes)
    }

    const appendTo = (
      bt: BrokerTopic,
      topic: string,
      header: BatchHeader,
      fill: (dst: Uint8Array) => void,
      kind: PbrKindCode = PbrKind.batch
    ): Effect.Effect<AppendReceipt, AppendError> => {
      const first = kind === PbrKind.batch ? tryOnce(bt, topic, header, fill) : attempt(bt, topic, header, fill, kind)
      if (first instanceof BatchRejected) return Effect.fail(first)
      if (typeof first !== "string") return Effect.succeed(first)
      const bytes = alignLine(header.payloadBytes)
      // Counted as waiting before the first re-check, so whoever frees room after it rings us (see ringRoomWaiters).
      return Effect.acquireUseRelease(
        Effect.sync(roomWaits.begin),
        () =>
          withBackpressure(
            topic,
            brokerId,
            timeoutMs,
            first,
            Effect.suspend(() => {
              const next = attempt(bt, topic, header, fill, kind)
              return next instanceof BatchRejected ? Effect.fail(next) : Effect.succeed(next)
            }),
            (_, remaining) => doorbell.await(() => typeof roomFor(bt, bytes) === "number", remaining),
            () => {
              bt.ringFullWaits++
              f64[(bt.line + BrokerLine.ringFullWaits) / 8] = bt.ringFullWaits
            }
          ),
        () => Effect.sync(roomWaits.end)
      ).pipe(Effect.map((receipt) => counted(receipt, header.payloadBytes)))
    }

    /** This broker's state for the topic (set up from the region on first use). */
    const topicState = (topic: string): Effect.Effect<BrokerTopic, TopicNotFound | BatchRejected> =>
      Effect.suspend(() => {
        const known = topics.get(topic)
        if (known !== undefined) return Effect.succeed(known)
        return brokerTopic(topic).pipe(Effect.catchTag("LogCorrupt", (e) => Effect.fail(new BatchRejected({ topic, reason: e.message }))))
      })

    const appendWith = (topic: string, header: BatchHeader, fill: (dst: Uint8Array) => void): Effect.Effect<AppendReceipt, AppendError> =>
      Effect.suspend(() => {
        const known = topics.get(topic)
        if (known !== undefined) return appendTo(known, topic, header, fill)
        return Effect.flatMap(topicState(topic), (bt) => appendTo(bt, topic, header, fill))
      })

    return {
      brokerId,
      appendWith,
      registerSession: (topic, clientId) =>
        Effect.flatMap(resolve(topic), (info) => {
          let table = sessionTables.get(info.id)
          if (table === undefined) {
            table = new SessionTable(region, area.sessions(info.id), area.registryLine(info.id), config.sessionSlots)
            sessionTables.set(info.id, table)
          }
          return registered(topic, table.register(clientId, Date.now()))
        }),
      closeSession: (topic, clientId, sessionEpoch, batches) =>
        Effect.flatMap(topicState(topic), (bt) => appendTo(bt, topic, closeHeader(clientId, sessionEpoch, batches), () => {}, PbrKind.close)),
      tryAppendWith: (topic, header, fill) => {
        const known = topics.get(topic)
        if (known === undefined) return "wait"
        const outcome = tryOnce(known, topic, header, fill)
        return typeof outcome === "string" ? "wait" : outcome
      },
      append: (topic, header, payload) =>
        payload.length !== header.payloadBytes
          ? Effect.fail(new BatchRejected({ topic, reason: `payload is ${payload.length} bytes but the header says ${header.payloadBytes}` }))
          : appendWith(topic, header, (dst) => dst.set(payload))
    }
  })

export const layer = (area: LogArea, options: AppenderOptions): Layer.Layer<Appender, BrokerSlotTaken | LogConfigInvalid, CxlMemory | Doorbell> =>
  Layer.scoped(Appender, make(area, options))

export const makeMemory = (store: MemoryLogStore, options: AppenderOptions): Effect.Effect<AppenderShape, BrokerSlotTaken | LogConfigInvalid, Scope.Scope> =>
  Effect.gen(function*() {
    const { config } = store
    const brokerId = options.brokerId
    if (!Number.isInteger(brokerId) || brokerId < 0 || brokerId >= config.maxBrokers) {
      return yield* new LogConfigInvalid({ problems: [`broker id ${brokerId} is not in [0, maxBrokers=${config.maxBrokers})`], config })
    }
    const occurrence = newOccurrence()
    const owners = store.owners
    yield* Effect.acquireRelease(
      Effect.suspend(() => {
        if ((owners.get(brokerId) ?? 0) !== 0) return Effect.fail(new BrokerSlotTaken({ brokerId, pid: process.pid }))
        owners.set(brokerId, occurrence)
        return Effect.void
      }),
      () => Effect.sync(() => owners.get(brokerId) === occurrence && owners.delete(brokerId))
    )
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS

    /** The topic and room check of one append, or why it cannot be appended at all. */
    const prepare = (topicName: string, header: BatchHeader, kind: PbrKindCode = PbrKind.batch) => {
      const topic = store.topics.find((t) => t.info.name === topicName)
      if (topic === undefined) return new TopicNotFound({ name: topicName })
      const problem = kind === PbrKind.batch ? headerProblem(header, config.maxBatchBytes) : undefined
      if (problem !== undefined) return new BatchRejected({ topic: topicName, reason: problem })
      const broker = topic.brokers[brokerId]!
      const bytes = alignLine(header.payloadBytes)
      const room = (): Full | undefined => {
        if (broker.head - broker.reclaimed >= config.pbrSlots || broker.blogUsed + bytes > config.blogBytes) reclaimMemory(topic, broker)
        return broker.head - broker.reclaimed >= config.pbrSlots ? "pbr" : broker.blogUsed + bytes > config.blogBytes ? "blog" : undefined
      }
      /** One try: a receipt, what is full, or the batch rejected because `fill` threw. */
      const attempt = (fill: (dst: Uint8Array) => void): AppendReceipt | Full | BatchRejected => {
        try {
          const full = room()
          if (full !== undefined) return full
          const payload = new Uint8Array(header.payloadBytes)
          fill(payload)
          const batch: MemoryBatch = {
            kind,
            broker: brokerId,
            pbrSeq: broker.head,
            clientId: header.clientId,
            sessionEpoch: header.sessionEpoch,
            batchSeq: header.batchSeq,
            messageCount: header.messageCount,
            crc32c: header.crc32c,
            payload,
            blogBytes: bytes,
            finished: false,
            globalSeq: 0,
            totalOrder: 0,
            reclaimed: false
          }
          broker.pbr.push(batch)
          const blogPosition = broker.blogHead
          broker.head++
          broker.blogHead += bytes
          broker.blogUsed += bytes
          broker.appendedMessages += header.messageCount
          store.signal.notify()
          return { brokerId, pbrSeq: batch.pbrSeq, blogPosition }
        } catch (error) {
          return new BatchRejected({ topic: topicName, reason: `filling the payload failed: ${String(error)}` })
        }
      }
      return { broker, room, attempt }
    }

    const appendWith = (topicName: string, header: BatchHeader, fill: (dst: Uint8Array) => void, kind: PbrKindCode = PbrKind.batch) =>
      Effect.gen(function*() {
        const prepared = prepare(topicName, header, kind)
        if (prepared instanceof TopicNotFound || prepared instanceof BatchRejected) return yield* prepared
        const { attempt, broker, room } = prepared
        const once = Effect.suspend(() => {
          const outcome = attempt(fill)
          return outcome instanceof BatchRejected ? Effect.fail(outcome) : Effect.succeed(outcome)
        })
        const first = yield* once
        if (typeof first !== "string") return counted(first, header.payloadBytes)
        broker.roomWaits++
        const receipt = yield* withBackpressure(
          topicName,
          brokerId,
          timeoutMs,
          first,
          once,
          (_, remaining) => store.signal.await(() => room() === undefined, remaining),
          () => {
            broker.ringFullWaits++
          }
        ).pipe(Effect.ensuring(Effect.sync(() => broker.roomWaits--)))
        return counted(receipt, header.payloadBytes)
      })

    return {
      brokerId,
      appendWith,
      tryAppendWith: (topicName, header, fill) => {
        const prepared = prepare(topicName, header)
        if (prepared instanceof TopicNotFound || prepared instanceof BatchRejected) return prepared
        const outcome = prepared.attempt(fill)
        return typeof outcome === "string" ? "wait" : outcome instanceof BatchRejected ? outcome : counted(outcome, header.payloadBytes)
      },
      append: (topic, header, payload) =>
        payload.length !== header.payloadBytes
          ? Effect.fail(new BatchRejected({ topic, reason: `payload is ${payload.length} bytes but the header says ${header.payloadBytes}` }))
          : appendWith(topic, header, (dst) => dst.set(payload)),
      registerSession: (topicName, clientId) =>
        Effect.suspend((): Effect.Effect<number, TopicNotFound | SessionTableFull> => {
          const topic = store.topics.find((t) => t.info.name === topicName)
          return topic === undefined ? Effect.fail(new TopicNotFound({ name: topicName })) : registered(topicName, topic.sessions.register(clientId, Date.now()))
        }),
      closeSession: (topic, clientId, sessionEpoch, batches) => appendWith(topic, closeHeader(clientId, sessionEpoch, batches), () => {}, PbrKind.close)
    }
  })

export const layerMemory = (store: MemoryLogStore, options: AppenderOptions): Layer.Layer<Appender, BrokerSlotTaken | LogConfigInvalid> =>
  Layer.scoped(Appender, makeMemory(store, options))
