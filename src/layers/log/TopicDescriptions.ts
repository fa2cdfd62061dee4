/**
 * A topic described as it is now (`TopicsShape.describe`): one algorithm, `describeOver`, over
 * wherever its records live — the region, read in place without joining it (the live Topics
 * layer, so `cxlog topics` and a broker's admin connections), or the in-process store (the
 * fake). It reads and holds nothing: a topic that moves meanwhile is described as it was at some
 * moment of the call, each figure on its own.
 */
import type { DurableFailure } from "../../services/log/AckTracker.js"
import type { TopicDescription, TopicInfo, TopicsHeap, TopicSubscriber } from "../../services/log/Topics.js"
import { type CxlMemoryShape, LINE_BYTES } from "../../services/region/CxlMemory.js"
import { heapBlocks, usageOf } from "../region/DirectorySpace.js"
import { consumersOf, HOLDING } from "./ConsumerLineReads.js"
import type { LogArea } from "./Layout.js"
import type { SubscriberArea } from "./Participants.js"
import { boundsOf } from "./ReadPositions.js"
import type { ReadTopic } from "./ReadSource.js"
import { ParticipantLineView, SubscriberLineView } from "./RecordViews.js"
import type { SessionTable } from "./SessionTable.js"

/** Where a topic's records are read from to describe it. */
export interface DescribeBacking {
  /** The topic's total order as a reader sees it: its batches ordered and the offsets held. */
  readonly readTopic: (info: TopicInfo) => ReadTopic
  /** Its publisher sessions. */
  readonly sessions: (info: TopicInfo) => SessionTable
  /** The subscriber lines (the region's, or the store's private region), and whether a line's owner runs. */
  readonly lines: {
    readonly region: CxlMemoryShape
    readonly area: SubscriberArea
    readonly alive: (pid: number, occurrence: number) => boolean
  }
  /** Its memory (what its lanes share), the lanes it has, what it holds of the heap, and each lane's Blog. */
  readonly memoryBytes: (info: TopicInfo) => number
  readonly lanes: (info: TopicInfo) => number
  readonly usedBytes: (info: TopicInfo) => number
  readonly blogBytes: (info: TopicInfo) => number
  /** Why its copy on disk stopped, if it did (the order line's word the head's durable tier sets). */
  readonly diskCopyStopped: (info: TopicInfo) => DurableFailure | undefined
}

/** A durable cursor's `durable` word (a named consumer's is 2 or 3: ConsumerLineReads.ts). */
const DURABLE_CURSOR = 1

/** The readers registered on the topic that are not named consumers: each process, whether it runs, and where a durable one holds. */
const subscribersOf = (backing: DescribeBacking, info: TopicInfo, ordered: number): Array<TopicSubscriber> => {
  const { alive, area, region } = backing.lines
  const participants = new ParticipantLineView(region)
  const lines = new SubscriberLineView(region)
  const found: Array<TopicSubscriber> = []
  for (let s = 0; s < area.config.subscriberSlots; s++) {
    const line = area.subscriber(info.id, s)
    region.invalidate(line, LINE_BYTES)
    const { occurrence, pid } = participants.claim(line)
    const durable = lines.durable(line)
    if (occurrence === 0 || durable >= HOLDING) continue
    const holds = durable === DURABLE_CURSOR
    found.push({
      pid,
      alive: alive(pid, occurrence),
      durable: holds,
      behindBatches: holds ? Math.max(0, ordered - lines.cursor(line)) : 0
    })
  }
  return found
}

/** Describes topics over `backing`. */
export const describeOver = (backing: DescribeBacking) => (info: TopicInfo): TopicDescription => {
  const read = backing.readTopic(info)
  const orderedBatches = read.committed()
  const { earliest, end } = boundsOf(read)
  const sessions = backing.sessions(info)
  const { area, region } = backing.lines
  const stopped = backing.diskCopyStopped(info)
  return {
    ...info,
    memoryBytes: backing.memoryBytes(info),
    usedBytes: backing.usedBytes(info),
    lanes: backing.lanes(info),
    blogBytesPerLane: backing.blogBytes(info),
    earliest,
    end,
    orderedBatches,
    sessions: sessions.liveCount(),
    sessionSlots: sessions.capacity,
    subscribers: subscribersOf(backing, info, orderedBatches),
    consumers: consumersOf(region, area, new SubscriberLineView(region), info.id, end),
    ...(stopped === undefined ? {} : { diskCopyStopped: stopped })
  }
}

/** The region's heap as its page records say now: its size, what is free, the largest free extent. */
export const regionHeap = (region: CxlMemoryShape, area: LogArea, objects: number): TopicsHeap => {
  const { freeBytes, heapBytes, largestFreeBytes } = usageOf(
    area.directory,
    heapBlocks(region, area.directory),
    objects
  )
  return { heapBytes, freeBytes, largestFreeBytes }
}
