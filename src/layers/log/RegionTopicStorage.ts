/**
 * Where the live sequencer's bytes are: one topic's PBRs, GOI, session table and lines in the
 * region (`RegionTopicStorage`, the `TopicStorage` of the round in SequencerRound.ts), what
 * the region holds of its order when a head takes it on (`regionHistory`), and the writes that
 * publish a round: a slot's finish line, the per-broker lines and the committed frontier.
 */
import type { TopicInfo } from "../../services/log/Topics.js"
import { type CxlMemoryShape, LINE_BYTES } from "../../services/region/CxlMemory.js"
import type { FlushAudit } from "../region/FlushAudit.js"
import { GOI_ENTRY_BYTES, goiEntryOffset, type LogArea, PBR_SLOT_BYTES } from "./Layout.js"
import type { OrderHistory } from "./OrderHistory.js"
import { livenessCache } from "./Participants.js"
import { GoiEntry, OrderLine, PbrKind, PbrSlot } from "./Records.js"
import { GoiEntryView, OrderLineView, ParticipantLineView, PbrSlotView, SequencerLineView } from "./RecordViews.js"
import { heldFrom } from "./RetentionLines.js"
import type { SessionTable } from "./SessionTable.js"
import { followLanes, readLane } from "./TopicLanes.js"
import type { TopicOrder, TopicStorage } from "./TopicOrder.js"
import { regionSessionTable } from "./Topics.js"

/** The region's views, made once per sequencer. */
export interface RegionViews {
  readonly region: CxlMemoryShape
  readonly area: LogArea
  readonly pbr: PbrSlotView
  readonly goi: GoiEntryView
  readonly orderLines: OrderLineView
  readonly sequencerLines: SequencerLineView
  readonly owners: ParticipantLineView
  readonly audit: FlushAudit | undefined
  /** The epoch this process's rounds write: the head's own, or, for an appender, the lease's at the round's start. */
  epoch: number
  readonly alive: (pid: number, occurrence: number) => boolean
}

export const regionViews = (
  region: CxlMemoryShape,
  area: LogArea,
  audit: FlushAudit | undefined,
  epoch: number
): RegionViews => ({
  region,
  area,
  pbr: new PbrSlotView(region),
  goi: new GoiEntryView(region),
  orderLines: new OrderLineView(region),
  sequencerLines: new SequencerLineView(region),
  owners: new ParticipantLineView(region),
  audit,
  epoch,
  alive: livenessCache()
})

/**
 * Writers of the topic (live owners of its lanes) with appends waiting for PBR or Blog room; the
 * owner line does not say which topic. Asked every round under backpressure, so the owners' liveness comes from the cache.
 */
const brokersWaitForRoom = ({ region, area, owners, alive }: RegionViews, lanes: ReadonlyArray<number>): boolean => {
  for (const b of lanes) {
    const owner = area.brokerOwner(b)
    region.invalidate(owner, LINE_BYTES)
    if (owners.roomWaits(owner) === 0) continue
    const { occurrence, pid } = owners.claim(owner)
    if (occurrence !== 0 && (pid === 0 || alive(pid, occurrence))) return true
  }
  return false
}

/** One topic's bytes in the region: the scan cursor over its PBRs, its GOI, session table and lines. */
export class RegionTopicStorage implements TopicStorage {
  readonly sessions: SessionTable
  readonly orderLine: number
  readonly goiSlots: number
  readonly lanes: () => ReadonlyArray<number>
  private readonly blogBytes: number
  private readonly pbrSlots: number
  private readonly maxBatchBytes: number
  /** Each writer slot's PBR offset, once its lane is read (0: none yet). */
  private readonly pbrs: Array<number>
  /** The cursor: a slot's offset and the position it was sought for. */
  private at = 0
  private position = 0

  readonly topic: number

  constructor(private readonly v: RegionViews, private readonly info: TopicInfo) {
    const topic = info.id
    this.topic = topic
    const { region, area } = v
    const { shape } = area.placeOf(topic)
    this.sessions = regionSessionTable(region, area, topic)
    this.orderLine = area.orderLine(topic)
    this.blogBytes = area.blogBytes(topic)
    this.goiSlots = shape.goiSlots
    this.pbrSlots = shape.pbrSlots
    this.maxBatchBytes = shape.maxBatchBytes
    this.pbrs = new Array<number>(area.config.maxBrokers).fill(0)
    this.lanes = followLanes(region, area, topic)
  }

  /** The PBR slot of `broker`'s position `pbrSeq`, or -1 while the broker has no lane here. */
  private slot(broker: number, pbrSeq: number): number {
    let pbr = this.pbrs[broker]!
    if (pbr === 0) {
      if (readLane(this.v.region, this.v.area, this.topic, broker) <= 0) return -1
      pbr = this.pbrs[broker] = this.v.area.pbr(this.topic, broker)
    }
    return pbr + (pbrSeq % this.pbrSlots) * PBR_SLOT_BYTES
  }

  committed(broker: number, pbrSeq: number): boolean {
    const slot = this.slot(broker, pbrSeq)
    if (slot < 0) return false
    this.v.region.invalidate(slot, LINE_BYTES)
    return this.v.pbr.committed(slot, pbrSeq)
  }

  seek(broker: number, pbrSeq: number): boolean {
    const slot = this.slot(broker, pbrSeq)
    if (slot < 0) return false
    this.v.region.invalidate(slot, PBR_SLOT_BYTES)
    this.at = slot
    this.position = pbrSeq
    return this.v.pbr.committed(slot, pbrSeq)
  }

  finished(): boolean {
    return this.v.pbr.finished(this.at, this.position)
  }

  isClose(): boolean {
    const { pbr } = this.v
    return pbr.kind(this.at) === PbrKind.close && pbr.pbrSeq(this.at) === this.position
  }

  sane(): boolean {
    const { pbr } = this.v
    const { maxBatchBytes } = this
    const blogBytes = this.blogBytes
    const at = this.at
    const bytes = pbr.payloadBytes(at)
    const count = pbr.messageCount(at)
    const position = pbr.blogPosition(at)
    const batchSeq = pbr.batchSeq(at)
    return count >= 1 && bytes % 8 === 0 && bytes >= 8 * count && bytes <= maxBatchBytes &&
      Number.isSafeInteger(position) && position >= 0 && position % LINE_BYTES === 0 &&
      (position % blogBytes) + bytes <= blogBytes &&
      Number.isSafeInteger(batchSeq) && batchSeq >= 0 && pbr.pbrSeq(at) === this.position
  }

  clientId(): number {
    return this.v.pbr.clientId(this.at)
  }

  sessionEpoch(): number {
    return this.v.pbr.sessionEpoch(this.at)
  }

  batchSeq(): number {
    return this.v.pbr.batchSeq(this.at)
  }

  writeGoi(g: number, broker: number, pbrSeq: number, totalOrder: number): number {
    const { region, area, pbr, goi, audit } = this.v
    // Only a slot `seek` found committed is ordered: its lane is read.
    const slot = this.slot(broker, pbrSeq)
    const e = goiEntryOffset(area, this.topic, g)
    const count = goi.writeFromSlot(e, g, pbr, slot, broker, pbrSeq, totalOrder)
    region.publish(e, GOI_ENTRY_BYTES)
    audit?.beforeCommit(`GOI ${g}`, [e, GoiEntry.seqLo])
    goi.commitSeq(e, g)
    region.publish(e + GoiEntry.seqLo, 4)
    return count
  }

  finish(broker: number, pbrSeq: number, globalSeq: number, totalOrder: number): void {
    const slot = this.slot(broker, pbrSeq)
    if (slot >= 0) finishSlot(this.v, slot, pbrSeq, globalSeq, totalOrder)
  }

  lowestCursor(): number {
    return heldFrom(this.v.region, this.v.area, this.info, this.v.alive)
  }

  roomWaits(): boolean {
    return brokersWaitForRoom(this.v, this.lanes())
  }

  publishStalled(stalled: boolean): void {
    this.v.orderLines.storeStalled(this.orderLine, stalled ? 1 : 0)
    this.v.region.publish(this.orderLine + OrderLine.stalled, 4)
  }

  publishFrontier(topic: TopicOrder): void {
    publishFrontier(this.v, this, topic)
  }

  rounds(): number {
    this.v.region.invalidate(this.orderLine, LINE_BYTES)
    return this.v.orderLines.rounds(this.orderLine)
  }

  history(): OrderHistory {
    return regionHistory(this.v, this)
  }
}

/** Line 1 of a PBR slot: global seq and total order (or a `Dropped` code), then the finish word. */
function finishSlot(v: RegionViews, slot: number, pbrSeq: number, globalSeq: number, totalOrder: number): void {
  const { region, pbr, audit } = v
  const line = slot + PbrSlot.sequencerLine
  pbr.setGlobalSeq(slot, globalSeq)
  pbr.setTotalOrder(slot, totalOrder)
  pbr.setOrderedEpoch(slot, v.epoch)
  region.publish(line, LINE_BYTES)
  audit?.beforeCommit(`PBR finish ${pbrSeq}`, [line, PbrSlot.finish - PbrSlot.sequencerLine])
  pbr.finish(slot, pbrSeq)
  region.publish(slot + PbrSlot.finish, 4)
}

/** Per-broker sequencer lines, then the order line (committed frontier, epoch, sessions), then the progress word. */
function publishFrontier(v: RegionViews, storage: RegionTopicStorage, topic: TopicOrder): void {
  const { region, area, orderLines, sequencerLines: lines } = v
  const { engine } = topic
  for (const b of storage.lanes()) {
    const line = area.sequencerLine(storage.topic, b)
    lines.setConsumedThrough(line, topic.consumedThrough(b))
    lines.setOrderedBatches(line, topic.orderedBatches[b])
    lines.setOrderedMessages(line, topic.orderedMessages[b])
    lines.setDuplicates(line, topic.duplicates[b])
    lines.setDropped(line, topic.dropped[b])
    lines.setHeld(line, engine.heldCount(b))
    region.publish(line, LINE_BYTES)
  }
  const at = storage.orderLine
  orderLines.setCommitted(at, topic.goiNext)
  orderLines.setTotalOrder(at, topic.totalNext)
  orderLines.setEpoch(at, v.epoch)
  orderLines.setFencedSessions(at, engine.fencedSessions)
  orderLines.setSessions(at, storage.sessions.liveCount())
  region.publish(at, LINE_BYTES)
  orderLines.bumpProgress(at)
  region.publish(at + OrderLine.progress, 4)
  // Last: a process that reads it moved takes everything above as whole (TopicRecovery.syncTopic).
  topic.seenRounds = orderLines.bumpRounds(at)
  region.publish(at + OrderLine.rounds, 4)
}

/** A writer slot with no lane in the topic: nothing appended, nothing ordered. */
const NO_LANE = { consumedThrough: 0, orderedBatches: 0, orderedMessages: 0, duplicates: 0, dropped: 0 } as const

/** What the region holds of a topic's order: its order line, sequencer lines and GOI. */
export function regionHistory(v: RegionViews, storage: RegionTopicStorage): OrderHistory {
  const { area, goi, orderLines, sequencerLines } = v
  const t = storage.topic
  v.region.invalidate(storage.orderLine, LINE_BYTES)
  return {
    committed: orderLines.committed(storage.orderLine),
    totalOrder: orderLines.totalOrder(storage.orderLine),
    fencedSessions: orderLines.fencedSessions(storage.orderLine),
    broker: (b) => {
      if (area.laneOf(t, b) === 0) return NO_LANE
      const line = area.sequencerLine(t, b)
      v.region.invalidate(line, LINE_BYTES)
      return {
        consumedThrough: sequencerLines.consumedThrough(line),
        orderedBatches: sequencerLines.orderedBatches(line),
        orderedMessages: sequencerLines.orderedMessages(line),
        duplicates: sequencerLines.duplicates(line),
        dropped: sequencerLines.dropped(line)
      }
    },
    entry: (g) => {
      const e = goiEntryOffset(area, t, g)
      if (!goi.holds(e, g)) return undefined
      return {
        broker: goi.brokerId(e),
        pbrSeq: goi.pbrSeq(e),
        clientId: goi.clientId(e),
        sessionEpoch: goi.sessionEpoch(e),
        batchSeq: goi.batchSeq(e),
        totalOrder: goi.totalOrder(e),
        messageCount: goi.messageCount(e)
      }
    }
  }
}
