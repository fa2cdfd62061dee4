/**
 * The durable tier's writer for one topic (replication factor 2), run by the head: it reads
 * the topic's total order with a durable cursor (so retention keeps every batch until it was
 * read) and appends each batch — its place in the order and its payload, one record — to the
 * topic's segment stream `topic-NAME`. After each fdatasync it publishes, per session, how many
 * batches are on disk (the session line's `durable` word), bumps the topic's progress and rings
 * the waiters: the ACK trackers acknowledge level 2 from that word.
 *
 * One stream holds both the data and the order, so one fdatasync makes a batch and its place
 * durable together, and recovery reads one stream, in the recorded order.
 */
import { Effect } from "effect"
import { type DurableFailure, DurableFailureCode } from "../../../services/log/AckTracker.js"
import { LogReader } from "../../../services/log/LogReader.js"
import {
  type SegmentLog,
  type SegmentLogOptions,
  Segments,
  type SegmentWriteError
} from "../../../services/log/Segments.js"
import type { TopicInfo } from "../../../services/log/Topics.js"
import type { CxlMemoryShape } from "../../../services/region/CxlMemory.js"
import type { DoorbellShape } from "../../../services/region/Doorbell.js"
import type { LogArea } from "../Layout.js"
import { findTopic, type MemoryLogStore } from "../MemoryStore.js"
import { ringEveryone } from "../Participants.js"
import { SessionState } from "../Records.js"
import { OrderLineView } from "../RecordViews.js"
import { type SessionTable, UNSETTLED } from "../SessionTable.js"
import { regionSessionTables } from "../Topics.js"
import { checkStreamContinues, type LastBatch } from "./DurableStreamCheck.js"

/** The header of a batch's record in a topic's stream; the payload (messages as in the Blog) follows. */
export const OrderRecord = {
  globalSeq: 0,
  totalOrder: 8,
  batchSeq: 16,
  clientId: 24,
  sessionEpoch: 28,
  messageCount: 32,
  brokerId: 36,
  crc32c: 40,
  payloadBytes: 44,
  /**
   * The session's level 2 frontier + 1 when the writer had frozen it (batches of the session
   * past it may never have reached the disk); 0 otherwise, as in records written before this
   * word existed. Every record of a frozen session carries it, so recovery still knows after
   * retention deleted the records before the gap.
   */
  frozenDurable: 48,
  bytes: 64
} as const

export const streamOf = (topic: string): string => `topic-${topic}`

/** A batch's record header read back. */
export interface OrderHeader {
  readonly globalSeq: number
  readonly totalOrder: number
  readonly batchSeq: number
  readonly clientId: number
  readonly sessionEpoch: number
  readonly messageCount: number
  readonly brokerId: number
  readonly crc32c: number
  readonly payloadBytes: number
}

/** A batch's record read back. */
export interface OrderedBatch extends Omit<OrderHeader, "payloadBytes"> {
  /** A view valid during the read callback. */
  readonly payload: Uint8Array
}

/** The header of a record of `recordBytes` bytes (`header` holds at least its first OrderRecord.bytes); undefined when they disagree. */
export const decodeOrderHeader = (header: Uint8Array, recordBytes: number): OrderHeader | undefined => {
  if (header.length < OrderRecord.bytes || recordBytes < OrderRecord.bytes) return undefined
  const v = new DataView(header.buffer, header.byteOffset, OrderRecord.bytes)
  const payloadBytes = v.getUint32(OrderRecord.payloadBytes, true)
  if (OrderRecord.bytes + payloadBytes !== recordBytes) return undefined
  return {
    globalSeq: v.getFloat64(OrderRecord.globalSeq, true),
    totalOrder: v.getFloat64(OrderRecord.totalOrder, true),
    batchSeq: v.getFloat64(OrderRecord.batchSeq, true),
    clientId: v.getUint32(OrderRecord.clientId, true),
    sessionEpoch: v.getUint32(OrderRecord.sessionEpoch, true),
    messageCount: v.getUint32(OrderRecord.messageCount, true),
    brokerId: v.getUint32(OrderRecord.brokerId, true),
    crc32c: v.getUint32(OrderRecord.crc32c, true),
    payloadBytes
  }
}

/** Writes a stream record's header (OrderRecord) at the start of `view`: the decoder's inverse; `frozenDurable` is the session's frozen level 2 frontier, if any. */
export const writeOrderHeader = (
  view: DataView,
  h: Omit<OrderHeader, "payloadBytes">,
  payloadBytes: number,
  frozenDurable?: number
): void => {
  view.setFloat64(OrderRecord.globalSeq, h.globalSeq, true)
  view.setFloat64(OrderRecord.totalOrder, h.totalOrder, true)
  view.setFloat64(OrderRecord.batchSeq, h.batchSeq, true)
  view.setUint32(OrderRecord.clientId, h.clientId, true)
  view.setUint32(OrderRecord.sessionEpoch, h.sessionEpoch, true)
  view.setUint32(OrderRecord.messageCount, h.messageCount, true)
  view.setUint32(OrderRecord.brokerId, h.brokerId, true)
  view.setUint32(OrderRecord.crc32c, h.crc32c, true)
  view.setUint32(OrderRecord.payloadBytes, payloadBytes, true)
  view.setFloat64(OrderRecord.frozenDurable, frozenDurable === undefined ? 0 : frozenDurable + 1, true)
}

/** The frozen level 2 frontier a record's header (at least OrderRecord.bytes) carries; undefined when its session was not frozen. */
export const frozenDurableOf = (header: Uint8Array): number | undefined => {
  const word = new DataView(header.buffer, header.byteOffset, OrderRecord.bytes).getFloat64(
    OrderRecord.frozenDurable,
    true
  )
  return word >= 1 && Number.isSafeInteger(word) ? word - 1 : undefined
}

export const decodeOrderRecord = (record: Uint8Array): OrderedBatch | undefined => {
  const h = decodeOrderHeader(record, record.length)
  if (h === undefined) return undefined
  return {
    globalSeq: h.globalSeq,
    totalOrder: h.totalOrder,
    batchSeq: h.batchSeq,
    clientId: h.clientId,
    sessionEpoch: h.sessionEpoch,
    messageCount: h.messageCount,
    brokerId: h.brokerId,
    crc32c: h.crc32c,
    payload: record.subarray(OrderRecord.bytes)
  }
}

/** Where the durable frontiers are published: the topic's session table, and how its waiters learn that something moved. */
export interface DurableMarks {
  readonly sessions: (topic: TopicInfo) => SessionTable
  readonly moved: (topic: TopicInfo) => void
  /**
   * The topic's copy on disk stopped (`failure`), or runs again (undefined): while stopped, brokers
   * refuse its ACK 2 sessions (`durability-unavailable`) instead of leaving them waiting.
   */
  readonly failed: (topic: TopicInfo, failure: DurableFailure | undefined) => void
}

/** Over the region: session lines, the order line's progress word, and the doorbells of whoever waits. */
export const regionMarks = (region: CxlMemoryShape, area: LogArea, doorbell: DoorbellShape): DurableMarks => {
  const orderLines = new OrderLineView(region)
  return {
    sessions: regionSessionTables(region, area),
    moved: (topic) => {
      orderLines.bumpProgress(area.orderLine(topic.id))
      region.publish(area.orderLine(topic.id), 64)
      ringEveryone(region, area, doorbell)
    },
    failed: (topic, failure) => {
      orderLines.storeDurableFailure(area.orderLine(topic.id), failure === undefined ? 0 : DurableFailureCode[failure])
      orderLines.bumpProgress(area.orderLine(topic.id))
      region.publish(area.orderLine(topic.id), 64)
      ringEveryone(region, area, doorbell)
    }
  }
}

/** Over the in-process store (the log fakes). */
export const memoryMarks = (store: MemoryLogStore): DurableMarks => ({
  sessions: (topic) => findTopic(store, topic.name)!.sessions,
  moved: (topic) => {
    findTopic(store, topic.name)!.progress++
    store.signal.notify()
  },
  failed: (topic, failure) => {
    const t = findTopic(store, topic.name)!
    t.durableFailure = failure
    t.progress++
    store.signal.notify()
  }
})

export interface PersistOptions {
  readonly segments?: SegmentLogOptions
  /** Stop reading while this many bytes wait for the disk (default 32 MiB). */
  readonly maxPendingBytes?: number
  /** Called with the topic's stream once it is open (its counters: syncs, bytes). */
  readonly onOpen?: (log: SegmentLog) => void
  /** Called once its durable cursor holds retention: from then on nothing ordered can be recycled before it is persisted. */
  readonly onSubscribed?: () => void
  /** Called once per record appended, before it is durable (tests). */
  readonly onAppended?: (
    batch: { readonly clientId: number; readonly sessionEpoch: number; readonly batchSeq: number }
  ) => void
}

/** A suspect session (see HeldSessions) whose first batch after a gap was past its durable frontier: no batch seq equals it. */
const STUCK = -1

/** The stream's last batch, or undefined when it is empty. */
const lastBatch = (log: SegmentLog) =>
  Effect.gen(function*() {
    if (log.durable() === 0 || log.durable() === log.first()) return undefined
    let last: LastBatch | undefined
    yield* log.read(log.durable() - 1, (_, record) => {
      const batch = decodeOrderRecord(record)
      if (batch !== undefined) {
        last = { totalOrder: batch.totalOrder, messageCount: batch.messageCount, crc32c: batch.crc32c }
      }
    })
    return last
  })

/** Sessions whose level 2 a gap in the stream holds back, by client id, then epoch: their durable frontiers. */
interface HeldSessions {
  /**
   * After a gap, the sessions registered before it, with their durable frontiers then: one whose
   * first batch here is not its frontier may have had batches in the gap, which never reached
   * the disk, so its level 2 stays where it is (its ACK 2 waits end in their timeout, never in a
   * false ACK). Sessions registered later start at batch 0 with nothing missing. A session
   * found so is frozen in its region line (`SessionTable.freezeDurable`), so a writer started
   * later (the head restarted on the region, past the gap) cannot move it either.
   */
  readonly suspects: Map<number, Map<number, number>>
  /**
   * Frozen sessions (by recovery, an earlier writer, or this one at the gap) and their frontier:
   * each of their records carries it (OrderRecord.frozenDurable), so the stream keeps the
   * knowledge once retention deleted the part before the gap.
   *
   * Neither map grows while the writer runs: both hold only sessions in the table at its start
   * (at most the table's lines). They are not pruned: an entry may go only once no batch of its
   * session can still reach this writer, and a session gone from the table may still have
   * batches ordered ahead of the cursor; one written without its mark could let a recovery
   * acknowledge level 2 over the gap.
   */
  readonly frozen: Map<number, Map<number, number>>
}

const putSession = (
  map: Map<number, Map<number, number>>,
  clientId: number,
  sessionEpoch: number,
  durable: number
) => {
  let byEpoch = map.get(clientId)
  if (byEpoch === undefined) map.set(clientId, byEpoch = new Map())
  byEpoch.set(sessionEpoch, durable)
}

/** The sessions in the table as the writer starts: the frozen ones, and after a `gap` the others as suspects. */
const heldSessions = (sessions: SessionTable, gap: boolean): HeldSessions => {
  const held: HeldSessions = { suspects: new Map(), frozen: new Map() }
  sessions.forEachSession((_, clientId, sessionEpoch, state) => {
    const found = state === SessionState.active || state === SessionState.fenced
      ? sessions.lookup(clientId, sessionEpoch)
      : undefined
    if (found === undefined || found === UNSETTLED) return
    if (found.durableFrozen) putSession(held.frozen, clientId, sessionEpoch, found.durable)
    else if (gap) putSession(held.suspects, clientId, sessionEpoch, found.durable)
  })
  return held
}

/** Whether the batch may move its session's level 2; a suspect is settled by its first batch here (frozen as STUCK when it was past the frontier). */
const mayAdvance = (
  held: HeldSessions,
  sessions: SessionTable,
  clientId: number,
  sessionEpoch: number,
  batchSeq: number
) => {
  const byEpoch = held.suspects.get(clientId)
  const durable = byEpoch?.get(sessionEpoch)
  if (durable === undefined) return true
  if (batchSeq === durable) {
    byEpoch!.delete(sessionEpoch)
    if (byEpoch!.size === 0) held.suspects.delete(clientId)
    return true
  }
  if (durable !== STUCK) {
    byEpoch!.set(sessionEpoch, STUCK)
    sessions.freezeDurable(clientId, sessionEpoch)
    putSession(held.frozen, clientId, sessionEpoch, durable)
  }
  return false
}

/** The session batch of each record appended and not yet durable, oldest first (`seqs` -1: no frontier to publish). */
interface PendingBatches {
  readonly clients: Array<number>
  readonly epochs: Array<number>
  readonly seqs: Array<number>
}

/**
 * After each sync of `log`, publishes the durable frontier of every session whose batches it made
 * durable (taking them off `pending`), then tells the topic's waiters (`madeDurable` first, once a
 * sync made records durable); until the function returned is called.
 */
const publishDurableFrontiers = (
  topic: TopicInfo,
  marks: DurableMarks,
  sessions: SessionTable,
  log: SegmentLog,
  pending: PendingBatches,
  madeDurable: () => void
) => {
  const { clients, epochs, seqs } = pending
  let firstIndex = log.appended()
  /** Per sync, each session's new durable frontier: by client id, then epoch (numbers, no key strings per sync). */
  const frontiers = new Map<number, Map<number, number>>()
  return log.onDurable((durable) => {
    const n = Math.min(durable - firstIndex, seqs.length)
    if (n <= 0) return
    madeDurable()
    for (let i = 0; i < n; i++) {
      if (seqs[i]! < 0) continue
      let byEpoch = frontiers.get(clients[i]!)
      if (byEpoch === undefined) frontiers.set(clients[i]!, byEpoch = new Map())
      // GOI order keeps each session's batches in order (order 5): the last one is its frontier.
      byEpoch.set(epochs[i]!, Math.max(byEpoch.get(epochs[i]!) ?? 0, seqs[i]! + 1))
    }
    clients.splice(0, n)
    epochs.splice(0, n)
    seqs.splice(0, n)
    firstIndex += n
    for (const [clientId, byEpoch] of frontiers) {
      for (const [sessionEpoch, frontier] of byEpoch) sessions.setDurable(clientId, sessionEpoch, frontier)
      byEpoch.clear()
    }
    // Clients come and go: the map keeps only what the last syncs saw.
    if (frontiers.size > 1024) frontiers.clear()
    marks.moved(topic)
  })
}

/**
 * Persists `topic` until interrupted (or a write fails: `DiskFull`, an I/O error). Level 2 is
 * published only from the durable frontier, so nothing is acknowledged that a crash could lose.
 */
export const persistTopic = (topic: TopicInfo, marks: DurableMarks, options: PersistOptions = {}) =>
  Effect.gen(function*() {
    const segments = yield* Segments
    const reader = yield* LogReader
    // The bound on what waits for the disk is this loop's own (`maxPendingBytes`): an append never finds the stream full.
    // The writer reads only the last record: the closed segments are checked by whoever reads them (recovery just did,
    // and a head restarted on a long stream would otherwise read it whole before it persists anything).
    const log = yield* segments.open(streamOf(topic.name), {
      verifyClosedSegments: false,
      // Recovery reads every record's header: from a closed segment's index when it has one.
      indexBytes: OrderRecord.bytes,
      ...options.segments,
      maxPendingBytes: Number.POSITIVE_INFINITY
    })
    options.onOpen?.(log)
    const last = yield* lastBatch(log)
    // The stream must continue this region's log: never an earlier log's, nor another region's.
    yield* checkStreamContinues(topic.name, log.stream, last)
    const resumeAt = last === undefined ? 0 : last.totalOrder + last.messageCount
    const bounds = yield* reader.bounds(topic.name)
    if (resumeAt < bounds.earliest) {
      yield* Effect.logWarning(
        `durable tier: topic ${topic.name}: messages ${resumeAt}..${
          bounds.earliest - 1
        } were recycled before they reached the disk (the tier was not running); persisting from ${bounds.earliest}`
      )
    }
    const cursor = yield* reader.subscribe(topic.name, { from: Math.max(resumeAt, bounds.earliest), durable: true })
    // A failure an earlier writer left (a full disk, a head without the data directory) stands until this writer
    // shows the disk takes its records — its first sync that made one durable, or nothing left to write — so a
    // writer started again on a disk still full does not say, while it finds out, that the copy runs again.
    let recovered = false
    const recover = () => {
      if (recovered) return
      recovered = true
      marks.failed(topic, undefined)
    }
    options.onSubscribed?.()
    const sessions = marks.sessions(topic)
    const held = heldSessions(sessions, resumeAt < bounds.earliest)
    const { frozen, suspects } = held
    const maxPending = options.maxPendingBytes ?? 32 << 20

    // Records appended and not yet durable, oldest first: which session batch each one is.
    const clients: Array<number> = []
    const epochs: Array<number> = []
    const seqs: Array<number> = []
    // Let go before the cursor lets the topic go (finalizers run in reverse): the stream's last sync, as it closes,
    // must not write into the session lines of a topic deleted meanwhile.
    yield* Effect.acquireRelease(
      Effect.sync(() => publishDurableFrontiers(topic, marks, sessions, log, { clients, epochs, seqs }, recover)),
      (unlisten) => Effect.sync(unlisten)
    )

    const header = new Uint8Array(OrderRecord.bytes)
    const view = new DataView(header.buffer)
    for (;;) {
      if (!recovered && log.pendingBytes() === 0 && log.failure() === undefined && !(yield* cursor.awaitMore(0))) {
        recover()
      }
      if (log.pendingBytes() >= maxPending) {
        yield* log.awaitDurable(log.appended(), 60_000)
        continue
      }
      if (!(yield* cursor.awaitMore(1_000))) {
        // Nothing new to hand over: a writer that stopped on what it already took must still stop level 2.
        const stopped = log.failure()
        if (stopped !== undefined) return yield* stopped
        continue
      }
      let failed: SegmentWriteError | undefined
      yield* cursor.pollBatches((batch) => {
        if (failed !== undefined) return
        // Settled before the header is written: the batch that freezes its session carries the mark too.
        const advances = suspects.size === 0 ||
          mayAdvance(held, sessions, batch.clientId, batch.sessionEpoch, batch.batchSeq)
        writeOrderHeader(
          view,
          batch,
          batch.length,
          frozen.size === 0 ? undefined : frozen.get(batch.clientId)?.get(batch.sessionEpoch)
        )
        const appended = log.tryAppend([header, batch.bytes.subarray(batch.offset, batch.offset + batch.length)])
        if (typeof appended !== "number") {
          if (appended !== "full") failed = appended
          return
        }
        clients.push(batch.clientId)
        epochs.push(batch.sessionEpoch)
        // -1: on disk, but not a durable frontier to publish.
        seqs.push(advances ? batch.batchSeq : -1)
        options.onAppended?.(batch)
      }, 64)
      if (failed !== undefined) return yield* failed
    }
  }).pipe(
    Effect.scoped,
    // Whatever stops the writer stops level 2 for good: the brokers are told, so ACK 2 sessions fail instead of waiting.
    // A topic deleted has nothing to tell: its lines may be another topic's by now.
    Effect.tapError((e) =>
      e._tag === "TopicDeleted" || e._tag === "TopicNotFound"
        ? Effect.void
        : Effect.sync(() => marks.failed(topic, e._tag === "DiskFull" ? "disk-full" : "stopped"))
    )
  )
