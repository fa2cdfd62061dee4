/**
 * A topic's shape: how its memory is cut into its records, its GOI and its writer lanes, and
 * where each part lies. Every topic has its own, computed once at its create from its memory, its
 * writer count and its largest message (`topicShape`), kept in its descriptor, and read back by
 * every process that uses the topic (Topics.ts). The region's configuration only caps it.
 *
 * A topic is two kinds of extent of the region's heap (docs/log.md, "Topics and their memory"):
 *
 *   main extent (at create; the head writes it before the name is published)
 *     descriptor           256                    (head)
 *     order line           64                     (whoever runs the topic's round)
 *     registry line        64                     (publishers' brokers, atomically)
 *     retention line       64                     (head)
 *     lane table           64 + writer slots × 4  (head: the lane count, then each writer slot's lane page)
 *     subscriber cursors   subscriberSlots × 64   (each subscriber its own line)
 *     session table        sessionSlots × 128     (sequencer)
 *     GOI                  goiSlots × 64          (sequencer; it fills what the extent leaves)
 *
 *   a lane per writer that writes the topic (the head allocates it at the writer's first append)
 *     broker line          64                     (that writer)
 *     sequencer line       64                     (sequencer)
 *     replica line         64                     (replicator)
 *     PBR                  pbrSlots × 128         (that writer; line 1 of a slot: sequencer)
 *     Blog                 the rest               (that writer)
 */
import type { TopicShape } from "../../services/log/LogArea.js"
import type { TopicSpec } from "../../services/log/Topics.js"
import { LINE_BYTES } from "../../services/region/CxlMemory.js"
import { showSize } from "../../Settings.js"
import { blockBytes, orderFor } from "../region/BuddyAllocator.js"
import { alignLine } from "./Records.js"

export type { TopicShape }

export const PBR_SLOT_BYTES = 128
export const GOI_ENTRY_BYTES = 64
export const SESSION_LINE_BYTES = 128
export const TOPIC_DESCRIPTOR_BYTES = 256
/** A lane's lines before its PBR: the broker's, the sequencer's, the replicator's. */
export const LANE_LINES_BYTES = 3 * LINE_BYTES
/** The least a lane extent can be: one 8 KiB block. */
export const MIN_LANE_BYTES = 8192
/** Bytes of a batch's first record besides its message (its header and the batch's base timestamp). */
export const FIRST_RECORD_BYTES = 16
/** The fewest PBR slots a lane has. */
const MIN_PBR_SLOTS = 8
/** Blog bytes per PBR slot a lane aims at (more batches than this share of the Blog would each take are rare). */
const BLOG_BYTES_PER_PBR_SLOT = 2048
/** Topic memory per GOI entry a topic aims at (its GOI then fills what its main extent leaves). */
const MEMORY_BYTES_PER_GOI_ENTRY = 2048
/** Topic memory per session line, and the fewest session lines a topic has. */
const MEMORY_BYTES_PER_SESSION = 4096
const MIN_SESSION_SLOTS = 16

/** What of the region's log configuration a topic's shape depends on: its caps. */
export interface ShapeCaps {
  /** Writer slots of the region (brokers and local publishers): the lane table's entries. */
  readonly maxBrokers: number
  readonly pbrSlots: number
  readonly goiSlots: number
  readonly sessionSlots: number
  readonly subscriberSlots: number
  readonly maxBatchBytes: number
}

/** What a topic's create asks of its shape. */
export interface ShapeRequest {
  /** What its writer lanes share, in bytes (each lane takes memory / writers, down to a power of two). */
  readonly memory: number
  /** How many writers (brokers, local publishers) may each have a lane. */
  readonly writers: number
  /** The largest message it takes (absent: what its lanes' Blogs allow, within the region's batch limit). */
  readonly maxMessageBytes?: number | undefined
}

/** Where each part of a topic's main extent starts, from the extent's offset. */
export interface MainGeometry {
  readonly orderLine: number
  readonly registryLine: number
  readonly retentionLine: number
  readonly laneTable: number
  readonly subscribers: number
  readonly sessions: number
  readonly goi: number
}

const pow2Floor = (n: number): number => (n < 1 ? 0 : 2 ** Math.floor(Math.log2(n)))
const pow2Ceil = (n: number): number => (n <= 1 ? 1 : 2 ** Math.ceil(Math.log2(n)))
/** `n` within [low, high]; the cap wins when it is below the floor (the region's caps are its own to set). */
const clamp = (n: number, low: number, high: number) => Math.min(high, Math.max(low, n))
const floorTo = (n: number, unit: number) => Math.floor(n / unit) * unit

/** The lane table: its header line (the lane count), then a 4-byte lane page per writer slot. */
export const laneTableBytes = (maxBrokers: number): number => LINE_BYTES + alignLine(maxBrokers * 4)

export const mainGeometry = (caps: Pick<ShapeCaps, "maxBrokers" | "subscriberSlots">, sessionSlots: number) => {
  const orderLine = TOPIC_DESCRIPTOR_BYTES
  const registryLine = orderLine + LINE_BYTES
  const retentionLine = registryLine + LINE_BYTES
  const laneTable = retentionLine + LINE_BYTES
  const subscribers = laneTable + laneTableBytes(caps.maxBrokers)
  const sessions = subscribers + caps.subscriberSlots * LINE_BYTES
  const goi = sessions + sessionSlots * SESSION_LINE_BYTES
  return { orderLine, registryLine, retentionLine, laneTable, subscribers, sessions, goi } satisfies MainGeometry
}

/** The Blog of a lane of `laneBytes` with `pbrSlots` slots: where it starts in the lane, and its bytes (whole lines). */
export const laneBlog = (laneBytes: number, pbrSlots: number): { readonly at: number; readonly bytes: number } => {
  const at = LANE_LINES_BYTES + pbrSlots * PBR_SLOT_BYTES
  return { at, bytes: Math.max(0, floorTo(laneBytes - at, LINE_BYTES)) }
}

/** The largest batch a Blog of `blogBytes` takes: two must fit, so one can be written while the other is read. */
const batchLimit = (blogBytes: number, cap: number): number => Math.min(cap, floorTo(blogBytes / 2, LINE_BYTES))

/** The smallest batch limit a topic can have (a lane of MIN_LANE_BYTES): a batch this large fits every topic. */
export const SMALLEST_BATCH_LIMIT = batchLimit(laneBlog(MIN_LANE_BYTES, MIN_PBR_SLOTS).bytes, Infinity)

/**
 * Why the heap could never give a topic of `shape` its first lane, if it could not: a lane larger
 * than the largest extent it has, or one lane and the topic's index together larger than all of
 * it. (Lanes are taken as writers first write, so a topic may declare more writers' lanes than the
 * heap holds at once.) The advice is the most memory whose lanes it could give.
 */
export const unworkableMemory = (
  shape: Pick<TopicShape, "laneBytes" | "mainBytes" | "memoryBytes" | "writers">,
  table: { readonly largestExtentBytes: number; readonly heapBytes: number }
): string | undefined => {
  const { laneBytes, mainBytes, memoryBytes, writers } = shape
  if (laneBytes <= table.largestExtentBytes && mainBytes + laneBytes <= table.heapBytes) return undefined
  const most = writers *
    Math.min(table.largestExtentBytes, pow2Floor(Math.max(0, table.heapBytes - mainBytes)))
  // With less memory its index is no larger: that many writers' lanes of that size fit.
  const advice = most >= MIN_LANE_BYTES * writers
    ? `give it at most ${showSize(most)}`
    : "the heap has no room for its index and one lane: give the region a larger heap"
  const heap = `the region's heap (${showSize(table.heapBytes)}, CXLOG_HEAP_BYTES)`
  return laneBytes > table.largestExtentBytes
    ? `memory ${showSize(memoryBytes)} gives each of its ${writers} writers a lane of ${
      showSize(laneBytes)
    }, more than ${heap} can ever give one object (${showSize(table.largestExtentBytes)}): ${advice}`
    : `memory ${showSize(memoryBytes)} gives each of its ${writers} writers a lane of ${
      showSize(laneBytes)
    }, which with its index (${showSize(mainBytes)}) is more than ${heap}: ${advice}`
}

/**
 * The shape of a topic asked for `request` in a region with these caps, or why there is none (a
 * sentence naming the least that works). Lanes are powers of two of pages, so each takes
 * memory / writers rounded down to one; the main extent holds at least a GOI entry per 2 KiB of
 * memory and then fills its power of two with more; PBR slots aim at one per 2 KiB of Blog.
 */
export const topicShape = (caps: ShapeCaps, request: ShapeRequest): TopicShape | string => {
  const { memory, writers } = request
  if (!(Number.isInteger(writers) && writers >= 1 && writers <= caps.maxBrokers)) {
    return `writers ${writers} must be a whole number from 1 to ${caps.maxBrokers} (the region's writer slots, CXLOG_LOG_MAX_BROKERS)`
  }
  const laneBytes = pow2Floor(memory / writers)
  if (!(laneBytes >= MIN_LANE_BYTES)) {
    return `memory ${showSize(memory)} gives each of ${writers} writer lanes less than ${
      showSize(MIN_LANE_BYTES)
    }: give it at least ${showSize(writers * MIN_LANE_BYTES)}`
  }
  let pbrSlots = clamp(pow2Floor(laneBytes / BLOG_BYTES_PER_PBR_SLOT), MIN_PBR_SLOTS, caps.pbrSlots)
  const sessionSlots = clamp(pow2Floor(memory / MEMORY_BYTES_PER_SESSION), MIN_SESSION_SLOTS, caps.sessionSlots)
  const g = mainGeometry(caps, sessionSlots)
  // Order 5 may hold every PBR slot of every lane while a gap is open: closing it must fit in the GOI.
  const wantedGoi = Math.min(caps.goiSlots, Math.max(memory / MEMORY_BYTES_PER_GOI_ENTRY, writers * MIN_PBR_SLOTS))
  const mainBytes = blockBytes(orderFor(pow2Ceil(g.goi + wantedGoi * GOI_ENTRY_BYTES)))
  const goiSlots = Math.min(caps.goiSlots, Math.floor((mainBytes - g.goi) / GOI_ENTRY_BYTES))
  while (writers * pbrSlots > goiSlots && pbrSlots > MIN_PBR_SLOTS) pbrSlots /= 2
  if (writers * pbrSlots > goiSlots) {
    return `the region's GOI cap (CXLOG_LOG_GOI_SLOTS ${caps.goiSlots}) is below ${writers} writers × ${MIN_PBR_SLOTS} batches: give the topic fewer writers`
  }
  const blog = laneBlog(laneBytes, pbrSlots)
  const maxBatchBytes = batchLimit(blog.bytes, caps.maxBatchBytes)
  const largest = maxBatchBytes - FIRST_RECORD_BYTES
  const maxMessageBytes = request.maxMessageBytes ?? largest
  if (!(Number.isInteger(maxMessageBytes) && maxMessageBytes >= 1)) {
    return `maxMessageBytes ${maxMessageBytes} must be a positive whole number`
  }
  if (maxMessageBytes > largest) {
    const neededBatch = alignLine(maxMessageBytes + FIRST_RECORD_BYTES)
    return neededBatch > caps.maxBatchBytes
      ? `a message of ${maxMessageBytes} bytes and its ${FIRST_RECORD_BYTES}-byte record header are over the region's batch limit of ${caps.maxBatchBytes} bytes (CXLOG_LOG_MAX_BATCH_BYTES): the largest message is ${
        caps.maxBatchBytes - FIRST_RECORD_BYTES
      } bytes`
      : `a message of ${maxMessageBytes} bytes needs lanes of at least ${
        showSize(pow2Ceil(LANE_LINES_BYTES + pbrSlots * PBR_SLOT_BYTES + 2 * neededBatch))
      }: give the topic at least ${
        showSize(writers * pow2Ceil(LANE_LINES_BYTES + pbrSlots * PBR_SLOT_BYTES + 2 * neededBatch))
      } of memory, or fewer writers`
  }
  return {
    memoryBytes: memory,
    writers,
    mainBytes,
    laneBytes,
    pbrSlots,
    goiSlots,
    sessionSlots,
    maxBatchBytes,
    maxMessageBytes
  }
}

/** The Blog bytes each lane of a topic of this shape has. */
export const blogBytesOfShape = (shape: TopicShape): number => laneBlog(shape.laneBytes, shape.pbrSlots).bytes

/** What a topic of this shape takes of the heap with `lanes` lanes allocated. */
export const heldBytes = (shape: TopicShape, lanes: number): number => shape.mainBytes + lanes * shape.laneBytes

/** What a topic's info says of its shape: the memory, writers and largest message in force. */
export const withShape = <A extends TopicSpec>(spec: A, shape: TopicShape): A => ({
  ...spec,
  memory: shape.memoryBytes,
  writers: shape.writers,
  maxMessageBytes: shape.maxMessageBytes
})
