/**
 * The region's side of a reader (`RegionReadTopic`, the `ReadTopic` of ReadSource.ts): one
 * topic's GOI and its brokers' Blogs, read in place, seqlock-style (docs in LogReader.ts).
 */
import { Effect, type Scope } from "effect"
import type { SubscriberTableFull } from "../../services/log/LogReader.js"
import { TopicDeleted, type TopicInfo } from "../../services/log/Topics.js"
import { type CxlMemoryShape, LINE_BYTES } from "../../services/region/CxlMemory.js"
import { HolderLinesFull } from "../../services/region/Directory.js"
import type { DoorbellShape } from "../../services/region/Doorbell.js"
import { holdCursor } from "./durable/DurableCursor.js"
import { goiEntryOffset, type LogArea } from "./Layout.js"
import { retentionMoved } from "./Participants.js"
import type { ReadTopic } from "./ReadSource.js"
import type { BatchView } from "./ReadViews.js"
import { DescriptorState } from "./Records.js"
import { BrokerLineView, DescriptorView, GoiEntryView, OrderLineView } from "./RecordViews.js"
import { readRetained, type Retained } from "./RetentionLines.js"
import { readLane } from "./TopicLanes.js"
import { topicPins } from "./TopicPins.js"

/** What a process's region reader shares between its topics. */
export interface RegionReader {
  readonly region: CxlMemoryShape
  readonly area: LogArea
  readonly doorbell: DoorbellShape
  readonly entries: GoiEntryView
  readonly orderLines: OrderLineView
  readonly brokerLines: BrokerLineView
}

/** One topic's GOI and its brokers' Blogs in the region, read in place. */
export class RegionReadTopic implements ReadTopic {
  private readonly orderLine: number
  private readonly blogBytes: number
  private readonly goiSlots: number
  private readonly maxBatchBytes: number
  private readonly descriptor: number
  private readonly descriptors: DescriptorView
  /** Each writer slot's lane, once read (0: not read yet; a GOI entry names only slots with a lane). */
  private readonly lanes: Array<number>
  private readonly blogAt: number

  constructor(private readonly r: RegionReader, readonly info: TopicInfo) {
    const { area } = r
    const { shape } = area.placeOf(info.id)
    this.orderLine = area.orderLine(info.id)
    this.blogBytes = area.blogBytes(info.id)
    this.goiSlots = shape.goiSlots
    this.maxBatchBytes = shape.maxBatchBytes
    this.descriptor = area.descriptor(info.id)
    this.descriptors = new DescriptorView(r.region)
    this.lanes = new Array<number>(area.config.maxBrokers).fill(0)
    this.blogAt = area.placeOf(info.id).blogAt
  }

  /** Writer slot `broker`'s lane, or 0 when it has none (a corrupt entry's slot, or the table's). */
  private lane(broker: number): number {
    const known = this.lanes[broker]
    if (known === undefined) return 0
    if (known !== 0) return known
    const lane = readLane(this.r.region, this.r.area, this.info.id, broker)
    return lane > 0 ? (this.lanes[broker] = lane) : 0
  }

  /**
   * Deleted: its descriptor says so, or its slot's offsets now name a later topic (this process
   * read that one since). Checked before every read, which uses the slot's offsets.
   */
  deleted(): boolean {
    if (this.r.area.placed(this.info.id)?.generation !== this.info.generation) return true
    this.r.region.invalidate(this.descriptor, 4)
    return this.descriptors.state(this.descriptor) !== DescriptorState.ready
  }

  get pin(): Effect.Effect<void, TopicDeleted, Scope.Scope> {
    const pins = topicPins(this.r.region, this.r.area)
    return Effect.acquireRelease(
      Effect.suspend(() => {
        // The cursor checks `deleted` itself; its pin is let go only when its scope closes.
        const hold = pins.hold(this.info, () => {})
        if (hold instanceof HolderLinesFull) return Effect.die(hold)
        return hold instanceof TopicDeleted ? Effect.fail(hold) : Effect.succeed(hold)
      }),
      (hold) => Effect.sync(hold.release)
    )
  }

  private entry(g: number): number {
    return goiEntryOffset(this.r.area, this.info.id, g)
  }

  /** Where broker `broker`'s Blog starts holding bytes (-1 when it has no lane). */
  private blogTail(broker: number): number {
    const { region, brokerLines } = this.r
    // A lane's broker line is its first.
    const line = this.lane(broker)
    if (line === 0) return -1
    region.invalidate(line, LINE_BYTES)
    brokerLines.reclaimVersion(line)
    return brokerLines.blogTail(line)
  }

  /** Whether broker `broker`'s Blog still holds `position` (its tail has not passed it). */
  private blogRetained(broker: number, position: number): boolean {
    const tail = this.blogTail(broker)
    return tail >= 0 && tail <= position
  }

  /** What a trim left: read at most once per call that needs it (a few loads under the line's lock). */
  private retainedNow(): Retained {
    return readRetained(this.r.region, this.r.area, this.info.id)
  }

  firstOffset(): number {
    return this.retainedNow().firstOffset
  }

  committed(): number {
    this.r.region.invalidate(this.orderLine, LINE_BYTES)
    this.r.orderLines.progress(this.orderLine)
    return this.r.orderLines.committed(this.orderLine)
  }

  total(): number {
    return this.r.orderLines.totalOrder(this.orderLine)
  }

  /**
   * Scanned from the oldest batch the GOI and a trim leave: a lane's Blog recycles in order, so
   * once one batch of a lane is seen held its later ones are too, and the scan ends when every
   * lane that has recycled any bytes has shown one (at once for a topic whose lanes never wrapped).
   */
  firstHeld(committed: number): number {
    const unseen = new Set<number>()
    for (let broker = 0; broker < this.lanes.length; broker++) if (this.blogTail(broker) > 0) unseen.add(broker)
    const oldest = Math.max(0, committed - this.goiSlots, this.retainedNow().firstBatch)
    let first = oldest
    for (let g = oldest; g < committed; g++) {
      if (!this.retained(g)) {
        first = g + 1
        continue
      }
      unseen.delete(this.r.entries.brokerId(this.entry(g)))
      if (unseen.size === 0) break
    }
    return Math.min(first, committed)
  }

  retained(g: number): boolean {
    const { entries } = this.r
    const e = this.entry(g)
    return g >= this.retainedNow().firstBatch && entries.holds(e, g) &&
      this.blogRetained(entries.brokerId(e), entries.blogPosition(e))
  }

  totalOrderOf(g: number): number | undefined {
    const e = this.entry(g)
    const order = this.r.entries.totalOrder(e)
    return this.r.entries.holds(e, g) ? order : undefined
  }

  /** Reads GOI entry `g` into `view` seqlock-style and points it at the payload in its broker's Blog. */
  load(g: number, view: BatchView): "ok" | "gone" | "corrupt" {
    const { region, entries } = this.r
    const { blogBytes, maxBatchBytes } = this
    const e = this.entry(g)
    region.invalidate(e, LINE_BYTES)
    if (!entries.holds(e, g) || g < this.retainedNow().firstBatch) return "gone"
    const broker = entries.brokerId(e)
    const length = entries.payloadBytes(e)
    const count = entries.messageCount(e)
    const position = entries.blogPosition(e)
    view.globalSeq = g
    view.totalOrder = entries.totalOrder(e)
    view.messageCount = count
    view.clientId = entries.clientId(e)
    view.sessionEpoch = entries.sessionEpoch(e)
    view.batchSeq = entries.batchSeq(e)
    view.brokerId = broker
    view.crc32c = entries.crc32c(e)
    view.length = length
    if (!entries.holds(e, g)) return "gone"
    const lane = this.lane(broker)
    const sane = lane !== 0 && count >= 1 && length % 8 === 0 && length >= 8 * count &&
      length <= maxBatchBytes &&
      Number.isSafeInteger(position) && position >= 0 && (position % blogBytes) + length <= blogBytes
    if (!sane) return "corrupt"
    view.offset = lane + this.blogAt + (position % blogBytes)
    view.bytes = region.bytes
    view.words = region.u32
    view.blogPosition = position
    if (!this.blogRetained(broker, position)) return "gone"
    region.invalidate(view.offset, length)
    return "ok"
  }

  stillThere(g: number, view: BatchView): boolean {
    return this.r.entries.holds(this.entry(g), g) && this.blogRetained(view.brokerId, view.blogPosition)
  }

  hold(cursor: number): Effect.Effect<(next: number) => void, SubscriberTableFull, Scope.Scope> {
    const { region, area, doorbell } = this.r
    return holdCursor(
      region,
      area,
      doorbell.offset,
      this.info,
      cursor,
      () => retentionMoved(region, area, doorbell, this.info.id)
    )
  }
}

/** A reader's views over the region; `doorbell` is used only to hold durable cursors. */
export const regionReader = (region: CxlMemoryShape, area: LogArea, doorbell: DoorbellShape): RegionReader => ({
  region,
  area,
  doorbell,
  entries: new GoiEntryView(region),
  orderLines: new OrderLineView(region),
  brokerLines: new BrokerLineView(region)
})

/** A reader that only looks (bounds, where a trim cuts): it holds no cursor, so it names no doorbell in one. */
export const lookingReader = (region: CxlMemoryShape, area: LogArea): RegionReader =>
  regionReader(region, area, undefined as never)
