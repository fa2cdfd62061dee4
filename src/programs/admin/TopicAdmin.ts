/**
 * `cxlog topics` and `cxlog topics describe NAME`: a region's topics with their order mode, ACK
 * level, replication factor, memory, the message offsets they hold, publisher sessions, readers
 * and named consumers, and the heap's space they leave. On the region's host it maps the region
 * and reads it in place without joining it (no process slot, no coordinator), so it works beside
 * a running cluster and on a region whose head is gone; with `--brokers` it asks a broker, which
 * reads the same from the region where it runs (showing the topics the user may see).
 */
import { Console, Effect } from "effect"
import * as TopicsLayers from "../../layers/log/Topics.js"
import { readMirrorStatuses } from "../../layers/mirror/MirrorStatusFile.js"
import { makeRemoteTopics } from "../../layers/net/TopicsRemote.js"
import * as CxlMemoryLayers from "../../layers/region/CxlMemory.js"
import { regionId } from "../../layers/region/Superblock.js"
import { configFromParams, resolve } from "../../layers/RegionLayout.js"
import type { RegionAccess } from "../../layers/Roles.js"
import {
  type TopicDescription as LogTopicDescription,
  TopicNotFound,
  type TopicsOverview
} from "../../services/log/Topics.js"
import { MirrorStatus } from "../../services/mirror/Mirror.js"
import { CxlMemory } from "../../services/region/CxlMemory.js"
import { table } from "../report/Table.js"
import type { TopicsAt } from "./TopicChanges.js"

/** A topic as the log describes it (`Topics.describe`), with the mirrors of it on this host. */
export interface TopicDescription extends LogTopicDescription {
  /** Mirrors of the topic on this host (their status files): state, offset mirrored, lag now; none through brokers. */
  readonly mirrors: ReadonlyArray<MirrorStatus>
}

export interface TopicsReport extends Omit<TopicsOverview, "topics" | "unreadable"> {
  /** The region read in place, or the brokers asked. */
  readonly region?: string
  /** The region's id (its creation time in ms), as mirrors name it (read in place only). */
  readonly regionId?: string
  readonly brokers?: string
  readonly topics: ReadonlyArray<TopicDescription>
  /** Why each topic of the region's directory that `topics` leaves out cannot be read (through brokers, of those the user may see). */
  readonly unreadable?: ReadonlyArray<string>
}

/**
 * An overview's unreadable topics as a report gives them: each said as its lookup says it, a directory
 * entry whose name cannot be read by its slot (absent: none).
 */
const unreadableOf = (unreadable: TopicsOverview["unreadable"]) =>
  unreadable === undefined || unreadable.length === 0
    ? {}
    : {
      unreadable: unreadable.map((t) =>
        t.slot === undefined
          ? new TopicNotFound({ name: t.name, unreadable: t.reason }).message
          : `directory entry ${t.slot} cannot be read (damaged; its name neither): ${t.reason}`
      )
    }

/**
 * Reads every topic of `region` in place (the region's Topics, without joining it), with the mirrors
 * on this host; `only` is looked up by name as well, so a topic not listed says why (unknown, or
 * there and unreadable).
 */
export const describeTopics = (access: RegionAccess, only?: string) =>
  Effect.gen(function*() {
    const region = yield* CxlMemoryLayers.make({
      name: access.name,
      mode: "attach",
      coherence: access.coherence ?? "coherent",
      readyTimeoutMs: 2_000
    })
    const layout = yield* resolve(configFromParams(region.params), region.size)
    const topics = yield* TopicsLayers.make(layout.log).pipe(Effect.provideService(CxlMemory, region))
    if (only !== undefined) yield* topics.lookup(only)
    const { unreadable, ...overview } = yield* topics.overview
    const id = regionId(region)
    return {
      ...overview,
      region: access.name,
      regionId: id,
      topics: withMirrors(overview.topics, id),
      ...unreadableOf(unreadable)
    } satisfies TopicsReport
  }).pipe(Effect.scoped)

/** `topics` with the mirrors this host runs of them (read from their status files, the lag as of now). */
export const withMirrors = (
  topics: ReadonlyArray<LogTopicDescription>,
  regionId: string
): ReadonlyArray<TopicDescription> => {
  const mirrors = readMirrorStatuses(regionId)
  return topics.map((t) => ({
    ...t,
    // The lag as of now: the topic may have moved on since the mirror's last status (or the mirror stopped).
    mirrors: mirrors.filter((m) => m.topic === t.name).map((m) =>
      new MirrorStatus({ ...m, end: t.end, lagOffsets: Math.max(0, t.end - m.mirrored) })
    )
  }))
}

/** The report of `at`: the region read in place, or, through brokers, what they answer (every topic, or `only` that one). */
const reportOf = (at: TopicsAt, only: string | undefined) =>
  at.remote === undefined
    ? describeTopics(at.region, only)
    : Effect.scoped(Effect.gen(function*() {
      const { topics } = yield* makeRemoteTopics(at.remote!)
      const brokers = at.remote!.brokers.map((b) => `${b.host}:${b.port}`).join(",")
      // One topic is asked for alone: a user may describe a topic it may read without listing the rest.
      const { unreadable, ...overview } = yield* topics.overview
      const described = only === undefined ? overview.topics : [yield* topics.describe(only)]
      return {
        ...overview,
        brokers,
        topics: described.map((t) => ({ ...t, mirrors: [] })),
        ...unreadableOf(unreadable)
      } satisfies TopicsReport
    }))

const ORDER_NAMES: Record<number, string> = {
  0: "0 (per broker)",
  2: "2 (total)",
  4: "4 (+FIFO client×broker)",
  5: "5 (+FIFO session)"
}
const ACK_NAMES: Record<number, string> = { 0: "0 (none)", 1: "1 (ordered)", 2: "2 (replicated)" }
/**
 * Its ACK level as named, or that its copy on disk stopped (ACK 2 refused until a head writes it
 * again). Level 2 is "rf copies": at rf 1 that is the ordered one, and calling it replicated would
 * have a user take `NAME:5:2` for a topic kept on disk.
 */
const ackText = (t: TopicDescription) =>
  t.diskCopyStopped !== undefined
    ? `${t.ackLevel} (copy on disk stopped: ${t.diskCopyStopped})`
    : t.ackLevel === 2 && t.replicationFactor < 2
    ? "2 (as 1: rf 1, no copy on disk)"
    : ACK_NAMES[t.ackLevel] ?? `${t.ackLevel}`

const held = (t: TopicDescription) => (t.end === t.earliest ? "none" : `${t.earliest}..${t.end - 1}`)
/** Readers with a durable cursor (each holds retention at it): a reader without one takes no line and is not counted. */
const durableReadersText = (t: TopicDescription) => {
  const durable = t.subscribers.filter((s) => s.alive && s.durable)
  return durable.length === 0
    ? "0"
    : `${durable.length} (furthest ${Math.max(...durable.map((s) => s.behindBatches))} batches behind)`
}
const consumersText = (t: TopicDescription) =>
  t.consumers.length === 0
    ? "0"
    : `${t.consumers.length} (furthest ${Math.max(...t.consumers.map((c) => c.lag))} behind${
      t.consumers.some((c) => c.cutOff) ? `, ${t.consumers.filter((c) => c.cutOff).length} cut off` : ""
    })`
const mirrorLine = (topic: string, m: MirrorStatus) =>
  `mirror ${topic} → stream ${m.stream} (${
    m.servers.join(",")
  }): ${m.state}, mirrored up to offset ${m.mirrored}, lag ${m.lagOffsets} offsets` +
  `${
    m.state === "mirroring" || m.state === "mirror-unavailable" ? ` / ${m.lagSeconds.toFixed(1)} s` : ""
  }, ${m.retries} retries, pid ${m.pid}` +
  (m.detail === undefined ? "" : `: ${m.detail}`)
/** Memory as a reader takes it in: MiB, or KiB below one (64 KiB, not 0.1 MiB). */
const mib = (bytes: number) =>
  bytes < 2 ** 20
    ? `${(bytes / 1024).toFixed(bytes % 1024 === 0 ? 0 : 1)} KiB`
    : `${(bytes / 2 ** 20).toFixed(bytes % 2 ** 20 === 0 ? 0 : 1)} MiB`

export interface TopicsOptions {
  readonly at: TopicsAt
  /** Only this topic: a row of the table, or with `detailed` everything about it. */
  readonly topic?: string
  readonly detailed: boolean
  readonly json: boolean
}

const subscriberLine = (s: TopicDescription["subscribers"][number]) =>
  `pid ${s.pid}${s.alive ? "" : " (gone)"}${s.durable ? `, ${s.behindBatches} batches behind` : ""}`
const consumerLine = (c: TopicDescription["consumers"][number]) =>
  `${c.name} at offset ${c.committed} (lag ${c.lag}${c.member === 0 ? ", no member" : `, member pid ${c.member}`}${
    c.cutOff ? ", cut off" : ""
  })`

/** Everything about one topic, a line a subject. */
const details = (t: TopicDescription): string =>
  [
    `topic ${t.name} (id ${t.id}, generation ${t.generation}): order ${ORDER_NAMES[t.order] ?? t.order}, ack ${
      ackText(t)
    }, rf ${t.replicationFactor}${
      t.diskRetention === undefined
        ? ""
        : `, the disk keeps ${
          [
            t.diskRetention.maxBytes === undefined ? "" : mib(t.diskRetention.maxBytes),
            t.diskRetention.maxAgeMs === undefined ? "" : `${t.diskRetention.maxAgeMs / 1000} s`
          ].filter((x) => x !== "").join(" and ")
        } at most`
    }`,
    `memory: ${mib(t.memoryBytes)} for ${t.writers ?? "its"} writer${t.writers === 1 ? "" : "s"}, ${
      mib(t.usedBytes)
    } held now (its records and ${t.lanes} lane${t.lanes === 1 ? "" : "s"} written; each lane's Blog ${
      mib(t.blogBytesPerLane)
    }); messages up to ${t.maxMessageBytes ?? "?"} bytes`,
    `retention: ${retentionText(t)}`,
    `offsets held: ${held(t)}${
      t.end === t.earliest ? "" : ` (${t.end - t.earliest} message${t.end - t.earliest === 1 ? "" : "s"})`
    }, ${t.orderedBatches} batch${t.orderedBatches === 1 ? "" : "es"} ordered`,
    `sessions: ${t.sessions} of ${t.sessionSlots}`,
    `durable readers: ${t.subscribers.length === 0 ? "none" : t.subscribers.map(subscriberLine).join("; ")}`,
    `consumers: ${t.consumers.length === 0 ? "none" : t.consumers.map(consumerLine).join("; ")}`,
    ...t.mirrors.map((m) => mirrorLine(t.name, m))
  ].join("\n")

/** What a topic keeps besides its memory, and what a full memory does to its publishers. */
const retentionText = (t: TopicDescription): string => {
  const r = t.retention
  const bounds = [
    r?.maxMessages === undefined ? "" : `its last ${r.maxMessages} messages`,
    r?.maxAgeMs === undefined ? "" : `messages younger than ${r.maxAgeMs / 1000} s`
  ].filter((x) => x !== "")
  return `${bounds.length === 0 ? "what its memory holds" : `at most ${bounds.join(" and ")}`}; a full memory ${
    r?.discard === "old"
      ? "drops the oldest whatever reads them (discard old)"
      : "makes publishers wait for the named consumers that hold it (discard new)"
  }`
}

/**
 * What an empty list says. Brokers list only the topics their user may read or administer, so a
 * user's empty list is not that there are none: it says so, and does not tell one that may see
 * none to create them (which needs the admin right), nor whether there are any.
 */
const noTopics = (report: TopicsReport, at: TopicsAt): string => {
  const create = "(cxlog topics create NAME, or cxlog head --topic NAME)"
  if (report.region !== undefined) return `region ${report.region} has no topics yet ${create}`
  const user = at.remote?.credentials?.user
  return user === undefined
    ? `the brokers ${report.brokers} show no topics yet ${create}`
    : `the brokers ${report.brokers} show user ${user} no topics: there are none yet, or none its read and admin rights cover (cxlog user list shows them, on the head's host)`
}

export const topics = (options: TopicsOptions) =>
  Effect.gen(function*() {
    const report: TopicsReport = yield* reportOf(options.at, options.topic)
    if (options.topic === undefined) {
      for (const why of report.unreadable ?? []) yield* Console.error(`cxlog topics: ${why}`)
    }
    const topics = options.topic === undefined ? report.topics : report.topics.filter((t) => t.name === options.topic)
    if (options.topic !== undefined && topics.length === 0) return yield* new TopicNotFound({ name: options.topic })
    if (options.json) {
      return yield* Console.log(JSON.stringify(options.detailed ? topics[0] : { ...report, topics }))
    }
    if (options.detailed) return yield* Console.log(details(topics[0]!))
    if (topics.length === 0) return yield* Console.log(noTopics(report, options.at))
    yield* Console.log(
      table(
        [
          "topic",
          "order",
          "ack",
          "rf",
          "memory",
          "offsets held",
          "batches",
          "sessions",
          "durable readers",
          "consumers"
        ],
        topics.map((
          t
        ) => [
          t.name,
          ORDER_NAMES[t.order] ?? `${t.order}`,
          ackText(t),
          t.replicationFactor,
          `${mib(t.memoryBytes)}, ${t.lanes} lane${t.lanes === 1 ? "" : "s"}`,
          held(t),
          t.orderedBatches,
          `${t.sessions}/${t.sessionSlots}`,
          durableReadersText(t),
          consumersText(t)
        ])
      )
    )
    const mirrorLines = topics.flatMap((t) => t.mirrors.map((m) => mirrorLine(t.name, m)))
    if (mirrorLines.length > 0) yield* Console.log(`\n${mirrorLines.join("\n")}`)
    const h = report.heap
    yield* Console.log(
      `\nmemory: ${mib(h.freeBytes)} of the region's ${mib(h.heapBytes)} heap free (the largest extent free now: ${
        mib(h.largestFreeBytes)
      })`
    )
  })
