/**
 * Recovery: rebuilds a topic's log in an empty region from its stream in the data directory
 * (`cxlog head --recover DIR`), as a bulk load. Every record's header is read (not its payload
 * nor its checksum: closed segments' header indexes, or small reads) and checked against the
 * recorded order: each batch follows the one before at the next global seq and offset (or after
 * a gap of whole batches), and (order 5) each session's batches come in batch-seq order with
 * none twice; the stream may begin late (retention deleted its start). Then the batches the hot
 * tier can hold — the stream's tail, bounded by broker slot 0's PBR and Blog and by the GOI — are
 * read whole, each against its checksum, and written straight into slot 0's Blog, its PBR slots
 * (committed and finished) and the GOI at their recorded places; the rest is checked by whoever
 * reads it from disk; the sessions seen last (up to half the table) go back into the session
 * table under their recorded epochs with their frontiers (so a resend across the crash is a
 * duplicate, and no new session draws a recovered epoch); then the cursors, counters and the topic's frontier are
 * published once. The sequencer picks the topic up from the region when it first sees it, as
 * after any restart, so it must not have ordered the topic before (the head recovers before its
 * sequencer runs).
 */
import { Data, Effect, type Scope } from "effect"
import type { CxlMemoryShape } from "../../services/region/CxlMemory.js"
import { type RecordPosition, Segments } from "../../services/log/Segments.js"
import type { TopicInfo } from "../../services/log/Topics.js"
import { Offsets } from "../region/Superblock.js"
import { headerProblem } from "./Appender.js"
import { decodeOrderHeader, decodeOrderRecord, frozenDurableOf, OrderRecord, streamOf } from "./DurableOrder.js"
import { GOI_ENTRY_BYTES, goiEntryOffset, type LogArea, type LogConfig, PBR_SLOT_BYTES, pbrSlotOffset } from "./Layout.js"
import { findTopic, type MemoryBatch, type MemoryLogStore } from "./MemoryStore.js"
import { claimLine, newOccurrence, releaseLine } from "./Participants.js"
import { AHEAD_WINDOW, alignLine, LINE_BYTES, PbrKind } from "./Records.js"
import { BrokerLineView, GoiEntryView, LeaseLineView, OrderLineView, PbrSlotView, SequencerLineView, type SlotHeader } from "./RecordViews.js"
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
  /** Sessions registered again (the ones seen last, up to `recoveredSessions`). */
  readonly sessions: number
  /** Sessions seen earlier in the stream, counted as ended: a publisher naming one is told unknown-session. */
  readonly sessionsLeftOut: number
  /** Bytes of a torn tail cut when the stream was opened. */
  readonly cutBytes: number
  /** Batches the hot tier holds after it (the stream's tail; the earlier ones are on disk only). */
  readonly held: number
}

/**
 * How many of the stream's sessions recovery registers again in a table of `capacity`: half, so
 * as many new sessions can register at once after the crash (1024 slots: 448 of each).
 */
export const recoveredSessions = (capacity: number): number => Math.max(1, capacity >> 1)

/** The recovered log's broker slot: every batch is placed as if broker 0 had received it. */
const BROKER = 0

/** A batch of the tail the hot tier holds, at its recorded place (its payload is in the target's Blog at `blogPosition`). */
export interface RecoveredBatch extends SlotHeader {
  readonly globalSeq: number
  readonly totalOrder: number
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
  /** Its batches 0..next-1 are all in the stream (or were, before a part the stream lacks). */
  next: number
  /** Batch seqs past a gap (orders other than 5 order them ahead of `next`). */
  ahead: Set<number> | undefined
  /** One past its highest batch seq. */
  end: number
  /**
   * Set at its first batch past a part of the log that never reached the disk (a gap, or the
   * stream's start when it was begun on a log already recycled), or by a record that carries
   * the frontier its writer froze (OrderRecord.frozenDurable: the part before the gap may since
   * have been deleted by retention): batches 0..durableUntil-1 are the ones known to have been
   * on disk, so level 2 stays there for good.
   */
  durableUntil: number | undefined
  messages: number
  /** The record it was last seen in. */
  seen: number
}

/** A record of the stream's tail, as its header says: a candidate for the hot tier. */
interface TailRecord extends Omit<RecoveredBatch, "blogPosition"> {
  readonly index: number
  readonly position: RecordPosition
}

/**
 * Rebuilds the topic's log in `target` (empty) from its stream. Two reads: every record's header
 * (not its checksum), checked against the recorded order and tallied into sessions; then the
 * records the hot tier will hold, whole and checked against their checksums, into the Blog. The
 * rest stays on disk, where a reader's read checks it (docs/durability.md, Recovery).
 */
export const recoverTopic = (topic: TopicInfo, target: RecoveryTarget) =>
  Effect.gen(function*() {
    const segments = yield* Segments
    const fail = (reason: string) => new RecoveryFailed({ topic: topic.name, reason })
    // Opening checks the last segment whole (the only one that can end torn: it is cut there); the closed ones are not read.
    const log = yield* segments.open(streamOf(topic.name), { verifyClosedSegments: false })
    const { config, blog, sessions } = target
    const { blogBytes, maxBatchBytes } = config
    const firstRecord = log.first()
    const records = log.durable()
    if (records === firstRecord && firstRecord > 0) {
      return yield* fail(`its stream holds no record (retention deleted records 0..${firstRecord - 1}, the only ones with their offsets)`)
    }
    // Only the last `room` batches can be in the hot tier (PBR and GOI capacity).
    const room = Math.min(config.pbrSlots, config.goiSlots)
    /** The last records read (at most 2 x room), all after the last gap: the hot tier holds a run without holes. */
    let tail: Array<TailRecord> = []
    const byClient = new Map<number, Map<number, SessionTally>>()
    const order5 = topic.order === 5
    /** The global seq and offset the next record must have; undefined before the first. */
    let nextSeq: number | undefined
    let messages = 0
    /** The first record after a part the stream lacks: a session not seen since may have had batches there. */
    let lostBefore = -1
    /** Whether that part never reached the disk (a gap, or a stream begun late) rather than was deleted by retention. */
    let lostUnpersisted = false
    /** The offset the stream's first record begins at: readers of older ones get LogOutOfRange. */
    let firstOffset = 0
    const gaps: Array<string> = []
    let bad: { readonly index: number; readonly from: RecordPosition; readonly reason: string } | undefined
    /** The previous record's position. */
    let previous: RecordPosition | undefined
    const scanned = yield* log.scanHeaders(firstRecord, OrderRecord.bytes, (index, bytes, length, position) => {
      const conflict = (reason: string) => {
        bad = { index, from: previous ?? position, reason }
        return false
      }
      const batch = decodeOrderHeader(bytes, length)
      if (batch === undefined) return conflict(`record ${index} is not a batch record`)
      const problem = headerProblem(batch, maxBatchBytes)
      if (problem !== undefined) return conflict(`record ${index} cannot be a batch of the log: ${problem}`)
      const { globalSeq, totalOrder } = batch
      if (nextSeq === undefined) {
        firstOffset = totalOrder
        // The stream begins later than the log did (retention deleted its start, or it was begun on a log already recycled).
        if (globalSeq !== 0 || totalOrder !== 0) {
          lostBefore = index
          // Retention deletes only what was on disk; a stream whose first record is still there began late.
          lostUnpersisted = firstRecord === 0
        }
        if (!Number.isSafeInteger(globalSeq) || !Number.isSafeInteger(totalOrder) || globalSeq < 0 || totalOrder < globalSeq) {
          return conflict(`record ${index} was recorded as batch ${globalSeq} at offset ${totalOrder}, which no log holds`)
        }
      } else if (globalSeq !== nextSeq || totalOrder !== messages) {
        // A gap: batches the writer never got (the region recycled them before it read them) — whole batches, each of one message or more.
        if (!(Number.isSafeInteger(globalSeq) && globalSeq > nextSeq && Number.isSafeInteger(totalOrder) && totalOrder - messages >= globalSeq - nextSeq)) {
          return conflict(
            `record ${index} was recorded as batch ${globalSeq} at offset ${totalOrder}, but the records before it end at batch ${nextSeq}, offset ${messages}: ` +
              `neither the next batch nor one after a gap of whole batches`
          )
        }
        gaps.push(`batches ${nextSeq}..${globalSeq - 1} (offsets ${messages}..${totalOrder - 1})`)
        lostBefore = index
        lostUnpersisted = true
        tail = []
      }
      let bySession = byClient.get(batch.clientId)
      if (bySession === undefined) byClient.set(batch.clientId, bySession = new Map())
      let session = bySession.get(batch.sessionEpoch)
      if (session === undefined) {
        bySession.set(batch.sessionEpoch, session = { clientId: batch.clientId, sessionEpoch: batch.sessionEpoch, next: 0, ahead: undefined, end: 0, durableUntil: undefined, messages: 0, seen: -1 })
      }
      const seq = batch.batchSeq
      // A session not seen since a part the stream lacks may have had its batches before this one there.
      if (session.seen < lostBefore && seq > session.next) {
        if (lostUnpersisted && session.durableUntil === undefined) session.durableUntil = session.next
        session.next = seq
        if (session.ahead !== undefined) for (const s of session.ahead) if (s < seq) session.ahead.delete(s)
      }
      const frozen = frozenDurableOf(bytes)
      if (frozen !== undefined) session.durableUntil = Math.min(session.durableUntil ?? frozen, frozen)
      // What the sequencer would have ordered: in order 5 the session's next batch only, elsewhere any batch not ordered yet.
      if (order5 ? seq !== session.next : seq < session.next || session.ahead?.has(seq) === true) {
        return conflict(
          `record ${index} is batch ${seq} of session ${batch.clientId}/${batch.sessionEpoch}, which conflicts with the recorded order ` +
            `(batches 0..${session.next - 1} before it${order5 ? `; order 5 takes ${session.next} next` : ", each once"})`
        )
      }
      if (!order5 && seq - session.next > AHEAD_WINDOW) {
        return conflict(
          `record ${index} is batch ${seq} of session ${batch.clientId}/${batch.sessionEpoch}, more than ${AHEAD_WINDOW} above its frontier ${session.next}: ` +
            `the sequencer orders none so far out`
        )
      }
      if (seq === session.next) {
        session.next++
        while (session.ahead?.delete(session.next) === true) session.next++
      } else {
        ;(session.ahead ??= new Set()).add(seq)
      }
      session.end = Math.max(session.end, seq + 1)
      session.messages += batch.messageCount
      session.seen = index
      tail.push({ index, position, ...batch })
      if (tail.length >= 2 * room) tail = tail.slice(tail.length - room)
      nextSeq = globalSeq + 1
      messages = totalOrder + batch.messageCount
      previous = position
    })
    if (bad !== undefined) {
      // A header that broke the order may be a damaged one (headers were read without their checksums): check the record
      // and the one before it, so damage is named as damage.
      const { index, from, reason } = bad
      yield* log.read(index > firstRecord ? index - 1 : index, (i) => i < index, from)
      return yield* fail(reason)
    }
    if (scanned !== records) return yield* fail(`the stream holds ${records} records, but reading it stopped at ${scanned}`)
    for (const gap of gaps) {
      yield* Effect.logWarning(`recovery: topic ${topic.name}: the stream lacks ${gap}: they never reached the disk; readers of them get LogOutOfRange`)
    }

    // The hot tier's share: the last `room` batches, laid out as broker 0's appends would lay them (each on a line, at the
    // Blog's start rather than across its end), less those later ones wrote over.
    const candidates = tail.slice(Math.max(0, tail.length - room))
    const placed: Array<RecoveredBatch> = []
    let blogHead = 0
    for (const r of candidates) {
      const bytes = alignLine(r.payloadBytes)
      const offset = blogHead % blogBytes
      const position = offset + bytes > blogBytes ? blogHead + blogBytes - offset : blogHead
      placed.push({
        globalSeq: r.globalSeq,
        totalOrder: r.totalOrder,
        clientId: r.clientId,
        sessionEpoch: r.sessionEpoch,
        batchSeq: r.batchSeq,
        messageCount: r.messageCount,
        payloadBytes: r.payloadBytes,
        crc32c: r.crc32c,
        blogPosition: position
      })
      blogHead = position + bytes
    }
    let firstHeld = 0
    while (firstHeld < placed.length && placed[firstHeld]!.blogPosition < blogHead - blogBytes) firstHeld++
    const held = placed.slice(firstHeld)
    if (held.length > 0) {
      // These are read whole, each checked against its checksum (a damaged one is SegmentCorrupt naming file and byte).
      const from = candidates[firstHeld]!
      let k = 0
      let mismatch: string | undefined
      yield* log.read(from.index, (index, record) => {
        const batch = decodeOrderRecord(record)
        const expected = held[k]!
        if (batch === undefined || batch.globalSeq !== expected.globalSeq || batch.payload.length !== expected.payloadBytes) {
          mismatch = `record ${index} reads back differently from its header`
          return false
        }
        blog.set(batch.payload, expected.blogPosition % blogBytes)
        return ++k < held.length
      }, from.position)
      if (mismatch !== undefined) return yield* fail(mismatch)
      if (k !== held.length) return yield* fail(`reading the ${held.length} records the hot tier holds stopped after ${k}`)
    }

    let maxEpoch = 0
    const seen: Array<SessionTally> = []
    for (const bySession of byClient.values()) {
      for (const s of bySession.values()) {
        seen.push(s)
        maxEpoch = Math.max(maxEpoch, s.sessionEpoch)
      }
    }
    // The table takes back the sessions seen last (those a publisher may be resending for), up to half its capacity:
    // the rest is for the registrations that follow the crash, as the recovered ones are released only when they idle
    // out. The older ones count as ended and their lines reused, as a live sequencer leaves sessions: a publisher
    // naming one is told unknown-session, and a batch of one is refused, never ordered again.
    const keep = recoveredSessions(sessions.capacity)
    const kept = seen.length <= keep ? seen : seen.sort((a, b) => b.seen - a.seen).slice(0, keep)
    const nowMs = Date.now()
    for (const s of kept) {
      const taken = sessions.registerAs(s.clientId, s.sessionEpoch, nowMs)
      if ("full" in taken) return yield* fail(`the session table is full (${taken.capacity} sessions)`)
      // With the batches it had ordered above its frontier (orders 0/2/4): a resend of one is then a duplicate.
      sessions.publish(taken.slot, s.clientId, s.sessionEpoch, {
        next: s.next,
        orderedMessages: s.messages,
        duplicates: 0,
        held: 0,
        lastActivityMs: nowMs,
        fenced: false,
        ...(s.ahead === undefined ? {} : { ahead: s.ahead })
      })
      // They are on disk: a resend across the crash is acknowledged at level 2 as a duplicate. A session with
      // batches in a part that never reached the disk keeps level 2 below it (DurableOrder.persistTopic does the same).
      sessions.setDurable(s.clientId, s.sessionEpoch, s.durableUntil ?? s.end)
      if (s.durableUntil !== undefined) sessions.freezeDurable(s.clientId, s.sessionEpoch)
    }
    const count = kept.length
    // A new session never draws a recovered epoch, nor the epoch of a session left out.
    sessions.reserveEpochsThrough(maxEpoch)
    const batches = nextSeq ?? 0
    target.commit({ batches, messages, blogHead, held })

    const result: RecoveryResult = { batches, messages, sessions: count, sessionsLeftOut: seen.length - count, cutBytes: log.recovery.cutBytes, held: held.length }
    yield* Effect.logInfo(
      `recovery: topic ${topic.name}: ${result.batches} batches (${result.messages} messages) of ${result.sessions} sessions loaded in the recorded order, ` +
        `the last ${result.held} held in the hot tier` + (firstOffset > 0 ? `; offsets before ${firstOffset} are no longer on disk` : "") +
        (result.sessionsLeftOut > 0 ? `; ${result.sessionsLeftOut} sessions seen earlier count as ended (the table keeps room for new ones)` : "") +
        (result.cutBytes > 0 ? `; a torn tail of ${result.cutBytes} bytes was cut` : "")
    )
    return result
  }).pipe(Effect.scoped)
