/**
 * Recovery: rebuilds a topic's log in an empty region from its stream in the data directory
 * (`cxlog head --recover DIR`), as a bulk load. The stream is read once, sequentially; each
 * record's checksum is checked once (by the segment read), and each batch is checked against
 * the recorded order: record i is global seq i at the message offset the records before it
 * end at, and (order 5) each session's batches come in batch-seq order with none twice. The
 * batches the hot tier can hold — the stream's tail, bounded by broker slot 0's PBR and Blog and
 * by the GOI — are written straight into slot 0's Blog, its PBR slots (committed and finished)
 * and the GOI at their recorded places; every session goes back into the session table under
 * its recorded epoch with its frontier (so a resend across the crash is a duplicate, and no new
 * session draws a recovered epoch); then the cursors, counters and the topic's frontier are
 * published once. The sequencer picks the topic up from the region when it first sees it, as
 * after any restart, so it must not have ordered the topic before (the head recovers before its
 * sequencer runs).
 */
import { Data, Effect, type Scope } from "effect"
import type { CxlMemoryShape } from "../../services/region/CxlMemory.js"
import { Segments } from "../../services/log/Segments.js"
import type { TopicInfo } from "../../services/log/Topics.js"
import { Offsets } from "../region/Superblock.js"
import { headerProblem } from "./Appender.js"
import { decodeOrderRecord, streamOf } from "./DurableOrder.js"
import { GOI_ENTRY_BYTES, goiEntryOffset, type LogArea, type LogConfig, PBR_SLOT_BYTES, pbrSlotOffset } from "./Layout.js"
import { findTopic, type MemoryBatch, type MemoryLogStore } from "./MemoryStore.js"
import { claimLine, newOccurrence, releaseLine } from "./Participants.js"
import { alignLine, LINE_BYTES, PbrKind } from "./Records.js"
import { BrokerLineView, GoiEntryView, LeaseLineView, OrderLineView, PbrSlotView, SequencerLineView } from "./RecordViews.js"
import type { SessionTable } from "./SessionTable.js"
import { regionSessionTables } from "./Topics.js"

export class RecoveryFailed extends Data.TaggedError("RecoveryFailed")<{ readonly topic: string; readonly reason: string }> {
  override get message() {
    return `recovering topic ${this.topic} from its segments failed: ${this.reason}`
  }
}

export interface RecoveryResult {
  readonly batches: number
  readonly messages: number
  readonly sessions: number
  /** Bytes of a torn tail cut when the stream was opened. */
  readonly cutBytes: number
  /** Batches the hot tier holds after it (the stream's tail; the earlier ones are on disk only). */
  readonly held: number
}

/** The recovered log's broker slot: every batch is placed as if broker 0 had received it. */
const BROKER = 0

/** A batch of the tail the hot tier holds, at its recorded place (its payload is in the target's Blog at `blogPosition`). */
export interface RecoveredBatch {
  readonly globalSeq: number
  readonly totalOrder: number
  readonly clientId: number
  readonly sessionEpoch: number
  readonly batchSeq: number
  readonly messageCount: number
  readonly payloadBytes: number
  readonly crc32c: number
  /** Absolute Blog position (its place in broker 0's Blog is this modulo its size); also its PBR position is `globalSeq`. */
  readonly blogPosition: number
}

/** What a bulk load ends with: the whole log's counts and the tail the hot tier holds. */
export interface RecoveredLog {
  readonly batches: number
  readonly messages: number
  /** Broker 0's next Blog position. */
  readonly blogHead: number
  /** Oldest first; the last is global seq `batches - 1`. */
  readonly held: ReadonlyArray<RecoveredBatch>
}

/** Where a topic is rebuilt: the region's log area or the in-process store. */
export interface RecoveryTarget {
  readonly config: LogConfig
  readonly sessions: SessionTable
  /** Broker 0's Blog for this topic: payloads are copied in at their positions (modulo its size). */
  readonly blog: Uint8Array
  /** Writes the held tail's PBR slots (finished) and GOI entries, then the cursors, counters and frontier, and announces it once. */
  readonly commit: (log: RecoveredLog) => void
}

const notEmpty = (topic: TopicInfo, what: string) => new RecoveryFailed({ topic: topic.name, reason: `the log in the region is not empty (${what})` })

/**
 * The region as a recovery target for `topic`: refused unless its log is empty (nothing
 * appended, nothing ordered); holds broker slot 0 for the scope, so no broker appends meanwhile.
 */
export const regionRecoveryTarget = (region: CxlMemoryShape, area: LogArea, topic: TopicInfo): Effect.Effect<RecoveryTarget, RecoveryFailed, Scope.Scope> =>
  Effect.gen(function*() {
    const t = topic.id
    const { config } = area
    const orderLines = new OrderLineView(region)
    const brokerLines = new BrokerLineView(region)
    const orderLine = area.orderLine(t)
    region.invalidate(orderLine, LINE_BYTES)
    if (orderLines.committed(orderLine) !== 0 || orderLines.totalOrder(orderLine) !== 0) {
      return yield* notEmpty(topic, `it holds offsets up to ${orderLines.totalOrder(orderLine)}`)
    }
    for (let b = 0; b < config.maxBrokers; b++) {
      const line = area.brokerLine(t, b)
      region.invalidate(line, LINE_BYTES)
      if (brokerLines.pbrHead(line) !== 0) return yield* notEmpty(topic, `broker ${b} appended ${brokerLines.pbrHead(line)} batches`)
    }
    const occurrence = newOccurrence()
    const owner = area.brokerOwner(BROKER)
    yield* Effect.acquireRelease(
      Effect.suspend(() => {
        const holder = claimLine(region, owner, occurrence, 0)
        return holder === 0 ? Effect.void : Effect.fail(new RecoveryFailed({ topic: topic.name, reason: `broker slot ${BROKER} is held by process ${holder}` }))
      }),
      () => Effect.sync(() => releaseLine(region, owner, occurrence))
    )
    const blogAt = area.blog(t, BROKER)
    const pbr = new PbrSlotView(region, config.pbrSlots)
    const goi = new GoiEntryView(region)
    const sequencerLines = new SequencerLineView(region)
    const lease = new LeaseLineView(region)
    const sessions = regionSessionTables(region, area)(topic)

    const commit = (log: RecoveredLog) => {
      // The epoch of the sequencer that holds the lease (the recovering head's), as its own rounds would write.
      region.invalidate(Offsets.sequencerLease, LINE_BYTES)
      const epoch = lease.epoch(Offsets.sequencerLease)
      for (const batch of log.held) {
        const g = batch.globalSeq
        region.publish(blogAt + (batch.blogPosition % config.blogBytes), batch.payloadBytes)
        const slot = pbrSlotOffset(area, t, BROKER, g)
        pbr.writeHeader(slot, batch, batch.blogPosition, BROKER, g, PbrKind.batch)
        pbr.setGlobalSeq(slot, g)
        pbr.setTotalOrder(slot, batch.totalOrder)
        pbr.setOrderedEpoch(slot, epoch)
        region.publish(slot, PBR_SLOT_BYTES)
        pbr.commit(slot, g)
        pbr.finish(slot, g)
        region.publish(slot, PBR_SLOT_BYTES)
        const e = goiEntryOffset(area, t, g)
        goi.writeFromSlot(e, g, pbr, slot, BROKER, g, batch.totalOrder)
        region.publish(e, GOI_ENTRY_BYTES)
        goi.commitSeq(e, g)
        region.publish(e, GOI_ENTRY_BYTES)
      }
      const first = log.held[0]
      const line = area.brokerLine(t, BROKER)
      brokerLines.setPbrHead(line, log.batches)
      brokerLines.setBlogHead(line, log.blogHead)
      brokerLines.setAppendedMessages(line, log.messages)
      brokerLines.setPbrReclaimed(line, first?.globalSeq ?? log.batches)
      brokerLines.setBlogTail(line, first?.blogPosition ?? log.blogHead)
      region.publish(line, LINE_BYTES)
      brokerLines.bumpReclaimVersion(line)
      const sequencerLine = area.sequencerLine(t, BROKER)
      sequencerLines.setConsumedThrough(sequencerLine, log.batches)
      sequencerLines.setOrderedBatches(sequencerLine, log.batches)
      sequencerLines.setOrderedMessages(sequencerLine, log.messages)
      region.publish(sequencerLine, LINE_BYTES)
      // The frontier last: a reader trusts GOI entries below it only.
      orderLines.setCommitted(orderLine, log.batches)
      orderLines.setTotalOrder(orderLine, log.messages)
      orderLines.setEpoch(orderLine, epoch)
      orderLines.setSessions(orderLine, sessions.liveCount())
      region.publish(orderLine, LINE_BYTES)
      orderLines.bumpProgress(orderLine)
      region.publish(orderLine, LINE_BYTES)
    }
    return { config, sessions, blog: region.bytes.subarray(blogAt, blogAt + config.blogBytes), commit }
  })

/** The in-process store as a recovery target (the log fakes); refused unless the topic's log is empty. */
export const memoryRecoveryTarget = (store: MemoryLogStore, topic: TopicInfo): Effect.Effect<RecoveryTarget, RecoveryFailed> =>
  Effect.suspend(() => {
    const stored = findTopic(store, topic.name)
    if (stored === undefined) return Effect.fail(new RecoveryFailed({ topic: topic.name, reason: "the topic is not in the store" }))
    if (stored.goiBase + stored.goi.length !== 0 || stored.totalOrder !== 0) return Effect.fail(notEmpty(topic, `it holds offsets up to ${stored.totalOrder}`))
    const busy = stored.brokers.findIndex((b) => b.head !== 0)
    if (busy >= 0) return Effect.fail(notEmpty(topic, `broker ${busy} appended ${stored.brokers[busy]!.head} batches`))
    const { config } = store
    // A Blog of the store's size, so what the tail holds is the region's; each batch then takes a copy of its bytes.
    const blog = new Uint8Array(config.blogBytes)
    const commit = (log: RecoveredLog) => {
      const broker = stored.brokers[BROKER]!
      for (const batch of log.held) {
        const at = batch.blogPosition % config.blogBytes
        const placed: MemoryBatch = {
          kind: PbrKind.batch,
          broker: BROKER,
          pbrSeq: batch.globalSeq,
          clientId: batch.clientId,
          sessionEpoch: batch.sessionEpoch,
          batchSeq: batch.batchSeq,
          messageCount: batch.messageCount,
          crc32c: batch.crc32c,
          payload: blog.slice(at, at + batch.payloadBytes),
          blogPosition: batch.blogPosition,
          blogBytes: alignLine(batch.payloadBytes),
          finished: true,
          globalSeq: batch.globalSeq,
          totalOrder: batch.totalOrder,
          reclaimed: false
        }
        broker.pbr.push(placed)
      }
      const first = log.held[0]
      // The store's GOI entries are the same batches.
      stored.goi.push(...broker.pbr)
      stored.goiBase = first?.globalSeq ?? log.batches
      stored.totalOrder = log.messages
      broker.head = log.batches
      broker.reclaimed = first?.globalSeq ?? log.batches
      broker.blogHead = log.blogHead
      broker.blogTail = first?.blogPosition ?? log.blogHead
      broker.appendedMessages = log.messages
      broker.consumedThrough = log.batches
      broker.orderedBatches = log.batches
      broker.orderedMessages = log.messages
      stored.progress++
      store.signal.notify()
    }
    return Effect.succeed({ config, sessions: stored.sessions, blog, commit })
  })

/** A session seen in the stream. */
interface SessionTally {
  readonly clientId: number
  readonly sessionEpoch: number
  /** Its batches 0..next-1 are all in the stream. */
  next: number
  /** Batch seqs past a gap (orders other than 5 order them ahead of `next`). */
  ahead: Set<number> | undefined
  /** One past its highest batch seq. */
  end: number
  messages: number
}

/**
 * Rebuilds the topic's log in `target` (empty) from its stream: one sequential read, each batch
 * checked against the recorded order, the tail the hot tier holds placed at its recorded offsets.
 */
export const recoverTopic = (topic: TopicInfo, target: RecoveryTarget) =>
  Effect.gen(function*() {
    const segments = yield* Segments
    const fail = (reason: string) => new RecoveryFailed({ topic: topic.name, reason })
    // Every record is checked as the read passes it: opening need not scan the closed segments first.
    const log = yield* segments.open(streamOf(topic.name), { verifyClosedSegments: false })
    if (log.first() !== 0) return yield* fail(`the stream's retention deleted its records before ${log.first()}: the offsets cannot be rebuilt from 0`)
    const { config, blog, sessions } = target
    const { blogBytes, maxBatchBytes } = config
    const records = log.durable()
    // Only the last `room` batches can be in the hot tier (PBR and GOI capacity); their payloads go into the Blog as read.
    const room = Math.min(config.pbrSlots, config.goiSlots)
    const placeFrom = Math.max(0, records - room)
    const tail: Array<RecoveredBatch> = []
    const byClient = new Map<number, Map<number, SessionTally>>()
    const order5 = topic.order === 5
    let messages = 0
    let blogHead = 0
    let bad: string | undefined
    const read = yield* log.read(0, (index, record) => {
      const batch = decodeOrderRecord(record)
      if (batch === undefined) {
        bad = `record ${index} is not a batch record`
        return false
      }
      const payloadBytes = batch.payload.length
      const problem = headerProblem({ ...batch, payloadBytes }, maxBatchBytes)
      if (problem !== undefined) {
        bad = `record ${index} cannot be a batch of the log: ${problem}`
        return false
      }
      if (batch.globalSeq !== index || batch.totalOrder !== messages) {
        bad = `record ${index} was recorded as batch ${batch.globalSeq} at offset ${batch.totalOrder}, but the records before it end at batch ${index}, offset ${messages}: the stream has a gap`
        return false
      }
      let bySession = byClient.get(batch.clientId)
      if (bySession === undefined) byClient.set(batch.clientId, bySession = new Map())
      let session = bySession.get(batch.sessionEpoch)
      if (session === undefined) {
        bySession.set(batch.sessionEpoch, session = { clientId: batch.clientId, sessionEpoch: batch.sessionEpoch, next: 0, ahead: undefined, end: 0, messages: 0 })
      }
      const seq = batch.batchSeq
      // What the sequencer would have ordered: in order 5 the session's next batch only, elsewhere any batch not ordered yet.
      const conflict = order5 ? seq !== session.next : seq < session.next || session.ahead?.has(seq) === true
      if (conflict) {
        bad = `record ${index} is batch ${seq} of session ${batch.clientId}/${batch.sessionEpoch}, which conflicts with the recorded order ` +
          `(batches 0..${session.next - 1} before it${order5 ? `; order 5 takes ${session.next} next` : ", each once"})`
        return false
      }
      if (seq === session.next) {
        session.next++
        while (session.ahead?.delete(session.next) === true) session.next++
      } else {
        ;(session.ahead ??= new Set()).add(seq)
      }
      session.end = Math.max(session.end, seq + 1)
      session.messages += batch.messageCount
      if (index >= placeFrom) {
        // As broker 0's appends would place it: on a line, at the Blog's start rather than across its end.
        const bytes = alignLine(payloadBytes)
        const offset = blogHead % blogBytes
        const position = offset + bytes > blogBytes ? blogHead + blogBytes - offset : blogHead
        blog.set(batch.payload, position % blogBytes)
        blogHead = position + bytes
        tail.push({
          globalSeq: index,
          totalOrder: batch.totalOrder,
          clientId: batch.clientId,
          sessionEpoch: batch.sessionEpoch,
          batchSeq: seq,
          messageCount: batch.messageCount,
          payloadBytes,
          crc32c: batch.crc32c,
          blogPosition: position
        })
      }
      messages += batch.messageCount
    })
    if (bad !== undefined) return yield* fail(bad)
    if (read !== records) return yield* fail(`the stream holds ${records} records, but reading it stopped at ${read}`)
    // What the Blog still holds whole: later batches wrote over the older ones' bytes.
    let first = 0
    while (first < tail.length && tail[first]!.blogPosition < blogHead - blogBytes) first++
    const held = tail.slice(first)

    let count = 0
    let maxEpoch = 0
    const nowMs = Date.now()
    for (const bySession of byClient.values()) {
      for (const s of bySession.values()) {
        const taken = sessions.registerAs(s.clientId, s.sessionEpoch, nowMs)
        if ("full" in taken) return yield* fail(`the session table is full (${taken.capacity} sessions)`)
        sessions.publish(taken.slot, s.clientId, s.sessionEpoch, { next: s.next, orderedMessages: s.messages, duplicates: 0, held: 0, lastActivityMs: nowMs, fenced: false })
        // They are on disk: a resend across the crash is acknowledged at level 2 as a duplicate.
        sessions.setDurable(s.clientId, s.sessionEpoch, s.end)
        maxEpoch = Math.max(maxEpoch, s.sessionEpoch)
        count++
      }
    }
    // A new session never draws a recovered epoch.
    sessions.reserveEpochsThrough(maxEpoch)
    target.commit({ batches: records, messages, blogHead, held })

    const result: RecoveryResult = { batches: records, messages, sessions: count, cutBytes: log.recovery.cutBytes, held: held.length }
    yield* Effect.logInfo(
      `recovery: topic ${topic.name}: ${result.batches} batches (${result.messages} messages) of ${result.sessions} sessions loaded in the recorded order, ` +
        `the last ${result.held} held in the hot tier` + (result.cutBytes > 0 ? `; a torn tail of ${result.cutBytes} bytes was cut` : "")
    )
    return result
  }).pipe(Effect.scoped)
