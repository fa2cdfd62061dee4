/**
 * Where recovery (Recovery.ts) rebuilds a topic's log: the region's log area, or the in-process
 * store of the log fakes. Each is refused unless the topic's log there is empty; its `commit`
 * writes the recovered tail at its recorded places, then the cursors, counters and frontier.
 */
import { Data, Effect, type Scope } from "effect"
import type { TopicInfo } from "../../../services/log/Topics.js"
import { type CxlMemoryShape, LINE_BYTES } from "../../../services/region/CxlMemory.js"
import type { DirectoryWriterShape } from "../../../services/region/Directory.js"
import { Offsets } from "../../region/Superblock.js"
import { GOI_ENTRY_BYTES, goiEntryOffset, type LogArea, PBR_SLOT_BYTES, pbrSlotOffset } from "../Layout.js"
import { findTopic, type MemoryBatch, type MemoryLogStore } from "../MemoryStore.js"
import { claimLine, newOccurrence, releaseLine } from "../Participants.js"
import { alignLine, PbrKind } from "../Records.js"
import {
  BrokerLineView,
  GoiEntryView,
  LeaseLineView,
  OrderLineView,
  PbrSlotView,
  SequencerLineView,
  type SlotHeader
} from "../RecordViews.js"
import type { SessionTable } from "../SessionTable.js"
import { grantLane, laneSlots } from "../TopicLanes.js"
import { regionSessionTables } from "../Topics.js"
import type { TopicShape } from "../TopicShape.js"

export class RecoveryFailed
  extends Data.TaggedError("RecoveryFailed")<{ readonly topic: string; readonly reason: string }>
{
  override get message() {
    return `recovering topic ${this.topic} from its segments failed: ${this.reason}`
  }
}

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
  /** The topic's shape: its PBR and GOI bound what the hot tier holds, its largest batch what a record may be. */
  readonly shape: TopicShape
  readonly sessions: SessionTable
  /** Broker 0's Blog for this topic: payloads are copied in at their positions (modulo its size). */
  readonly blog: Uint8Array
  /** Writes the held tail's PBR slots (finished) and GOI entries, then the cursors, counters and frontier, and announces it once. */
  readonly commit: (log: RecoveredLog) => void
}

const notEmpty = (topic: TopicInfo, what: string) =>
  new RecoveryFailed({ topic: topic.name, reason: `the log in the region is not empty (${what})` })

/**
 * The region as a recovery target for `topic`: refused unless its log is empty (nothing
 * appended, nothing ordered); holds broker slot 0 for the scope, so no broker appends meanwhile,
 * and gives it its lane (`writer`: this head is the directory's writer).
 */
export const regionRecoveryTarget = (
  region: CxlMemoryShape,
  area: LogArea,
  topic: TopicInfo,
  writer: DirectoryWriterShape
): Effect.Effect<RecoveryTarget, RecoveryFailed, Scope.Scope> =>
  Effect.gen(function*() {
    const t = topic.id
    const orderLines = new OrderLineView(region)
    const brokerLines = new BrokerLineView(region)
    const orderLine = area.orderLine(t)
    region.invalidate(orderLine, LINE_BYTES)
    if (orderLines.committed(orderLine) !== 0 || orderLines.totalOrder(orderLine) !== 0) {
      return yield* notEmpty(topic, `it holds offsets up to ${orderLines.totalOrder(orderLine)}`)
    }
    for (const b of laneSlots(region, area, t)) {
      const line = area.brokerLine(t, b)
      region.invalidate(line, LINE_BYTES)
      if (brokerLines.pbrHead(line) !== 0) {
        return yield* notEmpty(topic, `broker ${b} appended ${brokerLines.pbrHead(line)} batches`)
      }
    }
    const occurrence = newOccurrence()
    const owner = area.brokerOwner(BROKER)
    yield* Effect.acquireRelease(
      Effect.suspend(() => {
        const holder = claimLine(region, owner, occurrence, 0)
        return holder === 0
          ? Effect.void
          : Effect.fail(
            new RecoveryFailed({ topic: topic.name, reason: `broker slot ${BROKER} is held by process ${holder}` })
          )
      }),
      () => Effect.sync(() => releaseLine(region, owner, occurrence))
    )
    const lane = yield* grantLane(region, area, writer, topic, BROKER).pipe(
      Effect.mapError((e) => new RecoveryFailed({ topic: topic.name, reason: e.message }))
    )
    if (lane <= 0) {
      return yield* new RecoveryFailed({ topic: topic.name, reason: `broker slot ${BROKER} can have no lane in it` })
    }
    const shape = area.placeOf(t).shape
    const blogAt = area.blog(t, BROKER)
    const blogBytes = area.blogBytes(t)
    const pbr = new PbrSlotView(region)
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
        region.publish(blogAt + (batch.blogPosition % blogBytes), batch.payloadBytes)
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
    return { shape, sessions, blog: region.bytes.subarray(blogAt, blogAt + blogBytes), commit }
  })

/** The in-process store as a recovery target (the log fakes); refused unless the topic's log is empty. */
export const memoryRecoveryTarget = (
  store: MemoryLogStore,
  topic: TopicInfo
): Effect.Effect<RecoveryTarget, RecoveryFailed> =>
  Effect.suspend(() => {
    const stored = findTopic(store, topic.name)
    if (stored === undefined) {
      return Effect.fail(new RecoveryFailed({ topic: topic.name, reason: "the topic is not in the store" }))
    }
    if (stored.goiBase + stored.goi.length !== 0 || stored.totalOrder !== 0) {
      return Effect.fail(notEmpty(topic, `it holds offsets up to ${stored.totalOrder}`))
    }
    const busy = stored.brokers.findIndex((b) => b.head !== 0)
    if (busy >= 0) return Effect.fail(notEmpty(topic, `broker ${busy} appended ${stored.brokers[busy]!.head} batches`))
    stored.lanes.add(BROKER)
    // A Blog of the store's size, so what the tail holds is the region's; each batch then takes a copy of its bytes.
    const blog = new Uint8Array(stored.blogBytes)
    const commit = (log: RecoveredLog) => {
      const broker = stored.brokers[BROKER]!
      for (const batch of log.held) {
        const at = batch.blogPosition % stored.blogBytes
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
    return Effect.succeed({ shape: stored.shape, sessions: stored.sessions, blog, commit })
  })
