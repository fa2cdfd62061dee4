/**
 * `cxlog topics`: the region's topics with their order mode, ACK level, replication factor,
 * memory, the message offsets they hold, publisher sessions and subscribers, and the heap's
 * space they leave. It maps the region and
 * reads it in place without joining it (no process slot, no coordinator), so it works beside
 * a running cluster, and on a region whose head is gone.
 */
import { Console, Effect } from "effect"
import { peekBounds } from "../../layers/log/LogReader.js"
import { isLineOwnerAlive } from "../../layers/log/Participants.js"
import { OrderLine } from "../../layers/log/Records.js"
import { ParticipantLineView, SubscriberLineView } from "../../layers/log/RecordViews.js"
import { listTopics, regionSessionTables } from "../../layers/log/Topics.js"
import { readMirrorStatuses } from "../../layers/mirror/MirrorStatusFile.js"
import * as CxlMemoryLayers from "../../layers/region/CxlMemory.js"
import { heapBlocks, usageOf } from "../../layers/region/DirectorySpace.js"
import { regionId } from "../../layers/region/Superblock.js"
import { configFromParams, resolve } from "../../layers/RegionLayout.js"
import type { RegionAccess } from "../../layers/Roles.js"
import { type DiskRetention, TopicNotFound } from "../../services/log/Topics.js"
import { MirrorStatus } from "../../services/mirror/Mirror.js"
import { table } from "../report/Table.js"

export interface TopicDescription {
  readonly name: string
  readonly id: number
  readonly order: number
  readonly ackLevel: number
  readonly replicationFactor: number
  /** Replication factor 2: what the disk keeps of the topic (absent: all of it). */
  readonly diskRetention?: DiskRetention
  /** Its memory in the region (its extent), and the Blog each writer lane has of it. */
  readonly memoryBytes: number
  readonly blogBytesPerBroker: number
  /** Message offsets held: earliest .. end-1 (none when earliest = end). */
  readonly earliest: number
  readonly end: number
  /** Batches in the total order. */
  readonly orderedBatches: number
  /** Publisher session lines in use, of `sessionSlots`. */
  readonly sessions: number
  readonly sessionSlots: number
  /** Subscribers registered in the region; a durable one holds retention at its cursor. */
  readonly subscribers: ReadonlyArray<
    { readonly pid: number; readonly alive: boolean; readonly durable: boolean; readonly behindBatches: number }
  >
  /** Mirrors of the topic on this host (their status files): state, offset mirrored, lag now. */
  readonly mirrors: ReadonlyArray<MirrorStatus>
}

export interface TopicsReport {
  readonly region: string
  /** The region's id (its creation time in ms), as mirrors name it. */
  readonly regionId: string
  /** What every topic can hold at most: its last `goiSlots` batches, within each of its `maxBrokers` writer lanes' Blog. */
  readonly retention: { readonly goiSlots: number; readonly maxBrokers: number }
  /** The heap topics (and other named objects) take their memory from. */
  readonly heap: { readonly heapBytes: number; readonly freeBytes: number; readonly largestFreeBytes: number }
  readonly topics: ReadonlyArray<TopicDescription>
}

/** Reads every topic of `region` in place. */
export const describeTopics = (access: RegionAccess) =>
  Effect.gen(function*() {
    const region = yield* CxlMemoryLayers.make({
      name: access.name,
      mode: "attach",
      coherence: access.coherence ?? "coherent",
      readyTimeoutMs: 2_000
    })
    const layout = yield* resolve(configFromParams(region.params), region.size)
    const area = layout.log
    const sessionTable = regionSessionTables(region, area)
    const participants = new ParticipantLineView(region)
    const subscriberLines = new SubscriberLineView(region)
    const id = regionId(region)
    const mirrors = readMirrorStatuses(id)
    const topics = listTopics(region, area).map((info): TopicDescription => {
      const orderLine = area.orderLine(info.id)
      region.invalidate(orderLine, 64)
      const committed = region.f64[(orderLine + OrderLine.committed) / 8]!
      const { earliest, end } = peekBounds(region, area, info)
      const subscribers: Array<TopicDescription["subscribers"][number]> = []
      for (let s = 0; s < area.config.subscriberSlots; s++) {
        const line = area.subscriber(info.id, s)
        region.invalidate(line, 64)
        const { occurrence, pid } = participants.claim(line)
        if (occurrence === 0) continue
        const durable = subscriberLines.durable(line) === 1
        subscribers.push({
          pid,
          alive: isLineOwnerAlive(pid, occurrence),
          durable,
          behindBatches: durable ? Math.max(0, committed - subscriberLines.cursor(line)) : 0
        })
      }
      const sessions = sessionTable(info)
      return {
        name: info.name,
        id: info.id,
        order: info.order,
        ackLevel: info.ackLevel,
        replicationFactor: info.replicationFactor,
        ...(info.diskRetention === undefined ? {} : { diskRetention: info.diskRetention }),
        memoryBytes: info.memory ?? area.placeOf(info.id).bytes,
        blogBytesPerBroker: area.blogBytes(info.id),
        earliest,
        end,
        orderedBatches: committed,
        sessions: sessions.liveCount(),
        sessionSlots: sessions.capacity,
        subscribers,
        // The lag as of now: the topic may have moved on since the mirror's last status (or the mirror stopped).
        mirrors: mirrors.filter((m) => m.topic === info.name).map((m) =>
          new MirrorStatus({ ...m, end, lagOffsets: Math.max(0, end - m.mirrored) })
        )
      }
    })
    return {
      region: access.name,
      regionId: id,
      retention: { goiSlots: area.config.goiSlots, maxBrokers: area.config.maxBrokers },
      heap: (({ freeBytes, heapBytes, largestFreeBytes }) => ({ heapBytes, freeBytes, largestFreeBytes }))(
        usageOf(layout.directory, heapBlocks(region, layout.directory), topics.length)
      ),
      topics
    } satisfies TopicsReport
  }).pipe(Effect.scoped)

const ORDER_NAMES: Record<number, string> = {
  0: "0 (per broker)",
  2: "2 (total)",
  4: "4 (+FIFO client×broker)",
  5: "5 (+FIFO session)"
}
const ACK_NAMES: Record<number, string> = { 0: "0 (none)", 1: "1 (ordered)", 2: "2 (replicated)" }

const held = (t: TopicDescription) => (t.end === t.earliest ? "none" : `${t.earliest}..${t.end - 1}`)
const subscribersText = (t: TopicDescription) => {
  const live = t.subscribers.filter((s) => s.alive)
  const durable = live.filter((s) => s.durable)
  return live.length === 0
    ? "0"
    : `${live.length}${
      durable.length === 0
        ? ""
        : ` (${durable.length} durable, furthest ${Math.max(...durable.map((s) => s.behindBatches))} batches behind)`
    }`
}
const mirrorLine = (topic: string, m: MirrorStatus) =>
  `mirror ${topic} → stream ${m.stream} (${
    m.servers.join(",")
  }): ${m.state}, mirrored up to offset ${m.mirrored}, lag ${m.lagOffsets} offsets` +
  `${
    m.state === "mirroring" || m.state === "mirror-unavailable" ? ` / ${m.lagSeconds.toFixed(1)} s` : ""
  }, ${m.retries} retries, pid ${m.pid}` +
  (m.detail === undefined ? "" : `: ${m.detail}`)
const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(bytes % 2 ** 20 === 0 ? 0 : 1)} MiB`

export interface TopicsOptions {
  readonly region: RegionAccess
  /** Describe only this topic. */
  readonly topic?: string
  readonly json: boolean
}

export const topics = (options: TopicsOptions) =>
  Effect.gen(function*() {
    const report = yield* describeTopics(options.region)
    const topics = options.topic === undefined ? report.topics : report.topics.filter((t) => t.name === options.topic)
    if (options.topic !== undefined && topics.length === 0) return yield* new TopicNotFound({ name: options.topic })
    if (options.json) return yield* Console.log(JSON.stringify({ ...report, topics }))
    if (topics.length === 0) {
      return yield* Console.log(
        `region ${report.region} has no topics yet (cxlog create-topic --topic NAME, or cxlog head --topic NAME)`
      )
    }
    yield* Console.log(
      table(
        ["topic", "order", "ack", "rf", "memory", "offsets held", "batches", "sessions", "subscribers"],
        topics.map((
          t
        ) => [
          t.name,
          ORDER_NAMES[t.order] ?? `${t.order}`,
          ACK_NAMES[t.ackLevel] ?? `${t.ackLevel}`,
          t.replicationFactor,
          mib(t.memoryBytes),
          held(t),
          t.orderedBatches,
          `${t.sessions}/${t.sessionSlots}`,
          subscribersText(t)
        ])
      )
    )
    const mirrorLines = topics.flatMap((t) => t.mirrors.map((m) => mirrorLine(t.name, m)))
    if (mirrorLines.length > 0) yield* Console.log(`\n${mirrorLines.join("\n")}`)
    const r = report.retention
    const h = report.heap
    yield* Console.log(
      `\nretention: each topic holds at most its last ${r.goiSlots} batches, and only what each of its ${r.maxBrokers} writer lanes' Blogs (a share of its memory) still hold; a durable subscriber holds back reclaiming until it has read\nmemory: ${
        mib(h.freeBytes)
      } of the region's ${mib(h.heapBytes)} heap free (the largest topic that fits now: ${mib(h.largestFreeBytes)})`
    )
  })
