/**
 * The live appender's backing: this broker slot's PBR + Blog of each topic in the region
 * (`RegionTarget`, an `AppendTarget` of AppendBacking.ts), its cursors recovered from the broker
 * line and the slots a previous owner committed (`recoverCursors`), set up per topic on first
 * use (`regionTargets`).
 */
import { Effect } from "effect"
import { type BatchHeader, BatchRejected } from "../../services/log/Appender.js"
import { LogCorrupt, TopicDeleted, type TopicInfo, type TopicNotFound } from "../../services/log/Topics.js"
import { type CxlMemoryShape, LINE_BYTES } from "../../services/region/CxlMemory.js"
import { HolderLinesFull } from "../../services/region/Directory.js"
import type { DoorbellShape } from "../../services/region/Doorbell.js"
import { DirectoryTable } from "../region/DirectoryTable.js"
import type { FlushAudit } from "../region/FlushAudit.js"
import type { AppendTarget } from "./AppendBacking.js"
import { type AppendCursors, heldBatch, reclaim, type ReclaimSource, releaseBlog } from "./AppendRoom.js"
import { consumersHolding, cutOffHolding } from "./Consumers.js"
import { type LogArea, PBR_SLOT_BYTES, pbrSlotOffset } from "./Layout.js"
import { retentionMoved, type waitingForRoom } from "./Participants.js"
import { alignLine, type PbrKindCode, PbrSlot } from "./Records.js"
import type { BrokerLineView, PbrSlotView, SequencerLineView } from "./RecordViews.js"
import { heldFrom } from "./RetentionLines.js"
import { laneRejected, type LaneUnavailable } from "./TopicLanes.js"
import { type TopicHold, topicPins } from "./TopicPins.js"

/** This process's broker slot in the region: what its topics' targets share. */
export interface RegionBroker {
  readonly region: CxlMemoryShape
  readonly area: LogArea
  readonly brokerId: number
  readonly audit: FlushAudit | undefined
  readonly slots: PbrSlotView
  readonly brokerLines: BrokerLineView
  readonly sequencerLines: SequencerLineView
  /**
   * Once this event-loop turn's appends are in (see Appender.ts `make`): orders the topic's
   * batches here if this process may (AppenderRounds.ts), else rings the sequencer if it waits.
   */
  readonly ordering: (info: TopicInfo) => void
  /** The topic was deleted: nothing of it is ordered here any more. */
  readonly forget: (info: TopicInfo) => void
  readonly roomWaits: ReturnType<typeof waitingForRoom>
  readonly alive: (pid: number, occurrence: number) => boolean
  readonly doorbell: DoorbellShape
  /** This writer slot's lane of a topic, known or asked of the head (TopicLanes.ts). */
  readonly lane: (info: TopicInfo) => Effect.Effect<number, LaneUnavailable | TopicDeleted>
}

/** This broker's cursors for a topic, from its broker line, adopting slots a previous owner committed but did not publish. */
const recoverCursors = (b: RegionBroker, info: TopicInfo): AppendCursors | LogCorrupt => {
  const { area, brokerId, brokerLines, slots } = b
  const { pbrSlots, maxBatchBytes } = area.placeOf(info.id).shape
  const blogBytes = area.blogBytes(info.id)
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
  const sane =
    [c.head, c.blogHead, c.reclaimed, c.blogTail, c.appendedMessages].every((n) => Number.isSafeInteger(n) && n >= 0) &&
    c.reclaimed <= c.head && c.head - c.reclaimed <= pbrSlots && c.blogTail <= c.blogHead &&
    c.blogHead - c.blogTail <= blogBytes
  if (!sane) return corrupt("broker line cursors are inconsistent")
  while (c.head - c.reclaimed < pbrSlots) {
    const slot = pbrSlotOffset(area, info.id, brokerId, c.head)
    if (!slots.committed(slot, c.head)) break
    const position = slots.blogPosition(slot)
    const bytes = slots.payloadBytes(slot)
    if (
      !Number.isSafeInteger(position) || position < c.blogHead || bytes > maxBatchBytes ||
      (position % blogBytes) + bytes > blogBytes
    ) {
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
  private readonly info: TopicInfo
  private readonly id: number
  private readonly line: number
  private readonly sequencerLine: number
  private readonly blog: number
  readonly blogBytes: number
  readonly pbrSlots: number
  readonly maxBatchBytes: number
  readonly maxMessageBytes: number
  private readonly pbr: number

  constructor(private readonly b: RegionBroker, info: TopicInfo, readonly cursors: AppendCursors) {
    this.topic = info.name
    this.info = info
    this.id = info.id
    this.line = b.area.brokerLine(info.id, b.brokerId)
    this.sequencerLine = b.area.sequencerLine(info.id, b.brokerId)
    this.blog = b.area.blog(info.id, b.brokerId)
    this.blogBytes = b.area.blogBytes(info.id)
    this.pbr = b.area.pbr(info.id, b.brokerId)
    const shape = b.area.placeOf(info.id).shape
    this.pbrSlots = shape.pbrSlots
    this.maxBatchBytes = shape.maxBatchBytes
    this.maxMessageBytes = shape.maxMessageBytes
  }

  private slot(pbrSeq: number): number {
    return this.pbr + (pbrSeq % this.pbrSlots) * PBR_SLOT_BYTES
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
  write(
    header: BatchHeader,
    pbrSeq: number,
    position: number,
    fill: (dst: Uint8Array) => void,
    kind: PbrKindCode
  ): void {
    const { region, slots, brokerId } = this.b
    const { payloadBytes } = header
    const at = this.blog + (position % this.blogBytes)
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
    const at = this.blog + (position % this.blogBytes)
    return this.b.region.bytes.subarray(at, at + bytes)
  }

  published(): void {
    this.publishLine()
    this.b.ordering(this.info)
  }

  /** reclaim and releaseBlog over the region, then publishes the new tail (readers check it) before the bytes can be reused. */
  reclaim(bytes: number): void {
    const { region, brokerLines, sequencerLines } = this.b
    region.invalidate(this.sequencerLine, LINE_BYTES)
    const freed = reclaim(
      this.cursors,
      Math.min(sequencerLines.consumedThrough(this.sequencerLine), this.cursors.head),
      this
    )
    const released = releaseBlog(this.cursors, bytes, this.blogBytes, this)
    if (freed === 0 && !released) return
    brokerLines.setPbrReclaimed(this.line, this.cursors.reclaimed)
    brokerLines.setBlogTail(this.line, this.cursors.blogTail)
    region.publish(this.line, LINE_BYTES)
    brokerLines.bumpReclaimVersion(this.line)
  }

  lowestCursor(): number {
    return heldFrom(this.b.region, this.b.area, this.info, this.b.alive)
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
    return heldBatch(
      this.cursors,
      Math.min(sequencerLines.consumedThrough(this.sequencerLine), this.cursors.head),
      this
    )
  }

  consumerHold(): number | undefined {
    const g = this.held()
    const lowest = g === undefined ? Infinity : consumersHolding(this.b.region, this.b.area, this.id, g)
    return lowest === Infinity ? undefined : lowest
  }

  cutOffConsumers(cursor: number): number {
    const g = this.held()
    const { region, area, doorbell } = this.b
    const cut = g === undefined ? 0 : cutOffHolding(region, area, this.id, Math.min(g, cursor))
    if (cut > 0) retentionMoved(region, area, doorbell, this.id)
    return cut
  }

  waiting(delta: 1 | -1): void {
    if (delta === -1) return this.b.roomWaits.end()
    this.b.roomWaits.begin()
    this.b.brokerLines.setRingFullWaits(this.line, this.cursors.ringFullWaits)
  }
}

/** Deleted names an appender remembers at most (a publisher still sending to one is told it was deleted). */
const GONE_LIMIT = 1024

/**
 * The broker's target of each topic, set up from the region on first use (`target`; a corrupt
 * broker line rejects the batch), then found without an Effect (`known`: the hot path). Each
 * target holds its topic (TopicPins.ts) until it is dropped: when an append finds its topic
 * deleted (one load of the descriptor), or at the tick that tells the hold so — after the
 * appender took back the space it reserved there (`onDropped`).
 */
export const regionTargets = (b: RegionBroker, resolve: (topic: string) => Effect.Effect<TopicInfo, TopicNotFound>) => {
  const pins = topicPins(b.region, b.area)
  const directory = new DirectoryTable(b.region, b.area.directory)
  const targets = new Map<string, { readonly target: RegionTarget; readonly hold: TopicHold }>()
  /** Names whose target was dropped for a delete: TopicDeleted until a topic of the name exists again. */
  const gone = new Set<string>()
  let dropped: (target: AppendTarget) => void = () => {}

  const drop = (topic: string, held: { readonly target: RegionTarget; readonly hold: TopicHold }) => {
    if (targets.get(topic) !== held) return
    targets.delete(topic)
    if (gone.size >= GONE_LIMIT) gone.clear()
    gone.add(topic)
    dropped(held.target)
    b.forget(held.hold.info)
    held.hold.release()
  }

  const known = (topic: string): AppendTarget | TopicDeleted | undefined => {
    const held = targets.get(topic)
    if (held === undefined) {
      if (!gone.has(topic)) return undefined
      // A batch that was being received when its topic went is refused as deleted, not as unknown.
      if (directory.lookup("topic", topic) === undefined) return new TopicDeleted({ name: topic })
      gone.delete(topic)
      return undefined
    }
    if (!held.hold.deleted()) return held.target
    drop(topic, held)
    return new TopicDeleted({ name: topic })
  }

  /** Holds the topic, gets this writer's lane of it (asking the head the first time), then takes its cursors up. */
  const setUp = (topic: string, info: TopicInfo): Effect.Effect<AppendTarget, TopicDeleted | BatchRejected> =>
    Effect.suspend(() => {
      const hold = pins.hold(info, () => {
        const held = targets.get(topic)
        if (held !== undefined && held.hold === hold) drop(topic, held)
      })
      if (hold instanceof TopicDeleted) return Effect.fail(hold)
      if (hold instanceof HolderLinesFull) return Effect.fail(new BatchRejected({ topic, reason: hold.message }))
      return b.lane(info).pipe(
        Effect.mapError((e) => e._tag === "LaneUnavailable" ? laneRejected(e) : e),
        Effect.flatMap(() => {
          // Another fiber may have set the target up while this one waited for the lane.
          const ready = targets.get(topic)
          if (ready !== undefined && ready.hold.info.generation === info.generation) {
            hold.release()
            return Effect.succeed(ready.target)
          }
          const cursors = recoverCursors(b, info)
          if (cursors instanceof LogCorrupt) return Effect.fail(new BatchRejected({ topic, reason: cursors.message }))
          const made = new RegionTarget(b, info, cursors)
          made.publishLine()
          targets.set(topic, { target: made, hold })
          return Effect.succeed(made)
        }),
        // Any end but a target made lets the topic go: a failure, and an interruption while waiting for the lane.
        Effect.onError(() => Effect.sync(hold.release))
      )
    })

  const target = (topic: string): Effect.Effect<AppendTarget, TopicNotFound | TopicDeleted | BatchRejected> =>
    Effect.flatMap(resolve(topic), (info) => {
      const found = known(topic)
      if (found !== undefined && !(found instanceof TopicDeleted)) return Effect.succeed(found)
      return setUp(topic, info)
    })

  return {
    known,
    target,
    /** Lets every topic go (the appender's scope closes). */
    releaseAll: () => {
      for (const held of targets.values()) held.hold.release()
      targets.clear()
    },
    onDropped: (handler: (target: AppendTarget) => void) => {
      dropped = handler
    }
  }
}
