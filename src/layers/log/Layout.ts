/**
 * Where the shared log lives in the region: its configuration (sizes, with defaults and
 * validation), the pure size functions, and `makeLogArea`, which gives every offset of the log
 * area from a base offset, down to one record (`pbrSlotOffset`, `goiEntryOffset`,
 * `sessionLineOffset`). Field layouts inside each record are in Records.ts, their typed
 * accessors in RecordViews.ts.
 *
 * Log area, from `base` (64-byte lines):
 *   broker owner lines   maxBrokers × 64        (each broker process its own line)
 *   listener lines       listenerSlots × 64     (each waiting process its own line)
 * Each topic is an object of the region's directory, in an extent of the heap of its own
 * (its memory, a power of two of 4 KiB pages):
 *   descriptor           192                    (head)
 *   order line           64                     (sequencer)
 *   registry line        64                     (brokers, atomically: session epochs and live sessions)
 *   per broker           3 × 64                 (broker line, sequencer line, replica line)
 *   subscriber cursors   subscriberSlots × 64   (each subscriber its own line)
 *   session table        sessionSlots × 128     (sequencer)
 *   GOI                  goiSlots × 64          (sequencer)
 *   per broker           PBR pbrSlots × 128, then its Blog (that broker; PBR line 1: sequencer)
 * The Blogs share what the records and PBRs leave of the extent, equally (`blogBytesOf`).
 */
import { Config, Data, Effect } from "effect"
import type { LogArea, LogConfig, TopicPlace } from "../../services/log/LogArea.js"
import { LOG_LAYOUT_SETTINGS } from "../../services/log/LogSettings.js"
import { LINE_BYTES } from "../../services/region/CxlMemory.js"
import type { DirectoryArea } from "../../services/region/DirectoryArea.js"
import { defaultsOf, settingsConfig } from "../../Settings.js"
import { blockBytes, orderFor } from "../region/BuddyAllocator.js"
import { alignLine } from "./Records.js"

// The interfaces are the contract (services/log/LogArea.ts); the log layers take them from here.
export type { LogArea, LogConfig, TopicPlace }

export const defaultLogConfig: LogConfig = defaultsOf(LOG_LAYOUT_SETTINGS.settings)

const FIELDS = [
  "maxBrokers",
  "pbrSlots",
  "topicMemoryBytes",
  "goiSlots",
  "sessionSlots",
  "subscriberSlots",
  "listenerSlots",
  "maxBatchBytes"
] as const satisfies ReadonlyArray<keyof LogConfig>

/** The effective configuration as one line, `name=value …`. */
export const describeLogConfig = (config: LogConfig): string => FIELDS.map((f) => `${f}=${config[f]}`).join(" ")

/** The log configuration cannot work; every problem is listed next to the effective configuration. */
export class LogConfigInvalid extends Data.TaggedError("LogConfigInvalid")<{
  readonly problems: ReadonlyArray<string>
  readonly config: LogConfig
}> {
  override get message() {
    return `invalid log configuration:\n${this.problems.map((p) => `  - ${p}`).join("\n")}\neffective configuration: ${
      describeLogConfig(this.config)
    }`
  }
}

const isPowerOfTwo = (n: number) => Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0

/** Every reason `config` cannot work (empty when it can). */
export const logConfigProblems = (config: LogConfig): ReadonlyArray<string> => {
  const problems: Array<string> = []
  for (const field of FIELDS) {
    const value = config[field]
    if (!Number.isSafeInteger(value) || value < 1) problems.push(`${field} must be a positive integer (got ${value})`)
  }
  if (problems.length > 0) return problems
  if (config.maxBrokers > 64) problems.push(`maxBrokers ${config.maxBrokers} exceeds 64`)
  if (!isPowerOfTwo(config.pbrSlots) || config.pbrSlots < 8) {
    problems.push(`pbrSlots ${config.pbrSlots} must be a power of two ≥ 8`)
  }
  if (!isPowerOfTwo(config.goiSlots)) problems.push(`goiSlots ${config.goiSlots} must be a power of two`)
  if (!isPowerOfTwo(config.sessionSlots)) problems.push(`sessionSlots ${config.sessionSlots} must be a power of two`)
  if (config.maxBatchBytes % 8 !== 0 || config.maxBatchBytes < 16) {
    problems.push(`maxBatchBytes ${config.maxBatchBytes} must be a multiple of 8 and at least 16`)
  }
  if (blogBytesOf(config, config.topicMemoryBytes) < minBlogBytes(config)) {
    problems.push(
      `topicMemoryBytes ${config.topicMemoryBytes} leaves each of ${config.maxBrokers} writer lanes less than two batches of maxBatchBytes=${config.maxBatchBytes}: give topics at least ${
        minTopicBytes(config)
      } bytes, or lower maxBatchBytes`
    )
  }
  // Mode 5 may hold every PBR slot of every broker while a gap is open; closing the gap must
  // then fit in the GOI, or ordering would stall for good.
  if (config.goiSlots < config.maxBrokers * config.pbrSlots) {
    problems.push(
      `goiSlots ${config.goiSlots} is smaller than maxBrokers × pbrSlots = ${
        config.maxBrokers * config.pbrSlots
      } (the batches mode 5 may hold): raise goiSlots or lower pbrSlots / maxBrokers`
    )
  }
  return problems
}

export const validateLogConfig = (config: LogConfig): Effect.Effect<LogConfig, LogConfigInvalid> => {
  const problems = logConfigProblems(config)
  return problems.length === 0 ? Effect.succeed(config) : Effect.fail(new LogConfigInvalid({ problems, config }))
}

const LINE = LINE_BYTES
const PAGE = 4096
export const PBR_SLOT_BYTES = 128
export const GOI_ENTRY_BYTES = 64
export const SESSION_LINE_BYTES = 128
export const TOPIC_DESCRIPTOR_BYTES = 192
const alignPage = (n: number) => Math.ceil(n / PAGE) * PAGE

/** Where each part of a topic starts in its extent; the same for every topic of a region but its Blogs' size. */
interface TopicGeometry {
  readonly orderLine: number
  readonly registryLine: number
  readonly brokerLines: number
  readonly subscribers: number
  readonly sessions: number
  readonly goi: number
  readonly pbrs: number
  readonly pbrBytes: number
}

/** The configuration a topic's shape depends on (all of it but the default memory). */
type TopicShapeConfig = Omit<LogConfig, "topicMemoryBytes">

const topicGeometry = (c: TopicShapeConfig): TopicGeometry => {
  const orderLine = TOPIC_DESCRIPTOR_BYTES
  const registryLine = orderLine + LINE
  const brokerLines = registryLine + LINE
  const subscribers = brokerLines + c.maxBrokers * 3 * LINE
  const sessions = subscribers + c.subscriberSlots * LINE
  const goi = alignPage(sessions + c.sessionSlots * SESSION_LINE_BYTES)
  const pbrs = alignPage(goi + c.goiSlots * GOI_ENTRY_BYTES)
  return {
    orderLine,
    registryLine,
    brokerLines,
    subscribers,
    sessions,
    goi,
    pbrs,
    pbrBytes: alignPage(c.pbrSlots * PBR_SLOT_BYTES)
  }
}

/** The heap hands out powers of two of 4 KiB pages: what a topic asking for `bytes` holds. */
export const roundedTopicBytes = (bytes: number): number => blockBytes(orderFor(bytes))

/** Each writer lane's Blog in a topic of `extentBytes` memory: what the records and PBRs leave, shared equally, in whole pages. */
export const blogBytesOf = (config: TopicShapeConfig, memoryBytes: number): number => {
  const g = topicGeometry(config)
  const perLane = Math.floor((memoryBytes - g.pbrs) / config.maxBrokers) - g.pbrBytes
  return Math.max(0, Math.floor(perLane / PAGE) * PAGE)
}

/** The smallest Blog: two of the largest batches, so one can be written while the other is read. */
export const minBlogBytes = (config: TopicShapeConfig): number => alignPage(2 * alignLine(config.maxBatchBytes))

/** The memory a topic needs for Blogs of `blogBytes` each (before rounding to a power of two). */
export const topicBytesFor = (config: TopicShapeConfig, blogBytes: number): number => {
  const g = topicGeometry(config)
  return g.pbrs + config.maxBrokers * (g.pbrBytes + blogBytes)
}

/** The least memory a topic can have (before rounding to a power of two). */
export const minTopicBytes = (config: TopicShapeConfig): number => topicBytesFor(config, minBlogBytes(config))

/** `config` whose topics' Blogs are each `blogBytes` unless their create says otherwise (benches and tests size them so). */
export const withBlogBytes = (config: TopicShapeConfig, blogBytes: number): LogConfig => ({
  ...config,
  topicMemoryBytes: topicBytesFor(config, blogBytes)
})

const headerBytes = (c: LogConfig) => alignPage((c.maxBrokers + c.listenerSlots) * LINE)

/** Bytes the log area needs for `config` (a multiple of 4096): its lines; the topics are in the directory's heap. */
export const logAreaBytes = (config: LogConfig): number => headerBytes(config)

/** The log area at `base` (64-byte aligned) for a validated `config`, its topics in `directory`'s heap. */
export const makeLogArea = (base: number, config: LogConfig, directory: DirectoryArea): LogArea => {
  const g = topicGeometry(config)
  // By id (a directory slot): an array's index, on every record's offset of the hot paths.
  const places = new Array<TopicPlace | undefined>(directory.config.entrySlots)
  const placeOf = (t: number): TopicPlace => {
    const found = places[t]
    if (found === undefined) throw new Error(`topic ${t} is used before this process read it from the directory`)
    return found
  }
  const topic = (t: number) => placeOf(t).offset
  const lane = (t: number, b: number) => {
    const p = placeOf(t)
    return p.offset + g.pbrs + b * (g.pbrBytes + p.blogBytes)
  }
  return {
    base,
    config,
    bytes: logAreaBytes(config),
    directory,
    brokerOwner: (b) => base + b * LINE,
    listener: (i) => base + (config.maxBrokers + i) * LINE,
    place: (t, place) => {
      places[t] = place
    },
    placeOf,
    placed: (t) => places[t],
    blogBytes: (t) => placeOf(t).blogBytes,
    topic,
    descriptor: topic,
    orderLine: (t) => topic(t) + g.orderLine,
    registryLine: (t) => topic(t) + g.registryLine,
    brokerLine: (t, b) => topic(t) + g.brokerLines + b * 3 * LINE,
    sequencerLine: (t, b) => topic(t) + g.brokerLines + (b * 3 + 1) * LINE,
    replicaLine: (t, b) => topic(t) + g.brokerLines + (b * 3 + 2) * LINE,
    subscriber: (t, i) => topic(t) + g.subscribers + i * LINE,
    sessions: (t) => topic(t) + g.sessions,
    goi: (t) => topic(t) + g.goi,
    pbr: lane,
    blog: (t, b) => lane(t, b) + g.pbrBytes
  }
}

/** The PBR slot that holds absolute position `pbrSeq` of (topic, broker). */
export const pbrSlotOffset = (area: LogArea, topic: number, broker: number, pbrSeq: number): number =>
  area.pbr(topic, broker) + (pbrSeq % area.config.pbrSlots) * PBR_SLOT_BYTES

/** The GOI entry that holds global seq `g` of the topic. */
export const goiEntryOffset = (area: LogArea, topic: number, g: number): number =>
  area.goi(topic) + (g % area.config.goiSlots) * GOI_ENTRY_BYTES

/** Session line `slot` of the topic's session table. */
export const sessionLineOffset = (area: LogArea, topic: number, slot: number): number =>
  area.sessions(topic) + slot * SESSION_LINE_BYTES

/**
 * Validates `config`, places the area at `base` and checks that it fits a region of
 * `regionBytes`; every problem is reported with the effective configuration.
 */
export const resolveLogArea = (
  base: number,
  config: LogConfig,
  regionBytes: number,
  directory: DirectoryArea
): Effect.Effect<LogArea, LogConfigInvalid> =>
  Effect.gen(function*() {
    yield* validateLogConfig(config)
    if (!Number.isSafeInteger(base) || base < 0 || base % LINE !== 0) {
      return yield* new LogConfigInvalid({
        problems: [`the log area's base ${base} is not a 64-byte aligned offset`],
        config
      })
    }
    const bytes = logAreaBytes(config)
    if (base + bytes > regionBytes) {
      return yield* new LogConfigInvalid({
        problems: [
          `the log area needs ${bytes} bytes at offset ${base}, but the region has ${regionBytes} bytes (needs ≥ ${
            base + bytes
          })`
        ],
        config
      })
    }
    return makeLogArea(base, config, directory)
  })

/** The area as superblock parameters: base, then the config fields in a fixed order. */
export const logAreaParams = (
  base: number,
  config: LogConfig
): ReadonlyArray<number> => [base, ...FIELDS.map((f) => config[f])]

export const LOG_AREA_PARAMS = 1 + FIELDS.length

/** Reads `logAreaParams` back from superblock parameters starting at index `at`. */
export const logAreaFromParams = (
  params: ReadonlyArray<number>,
  at = 0
): { readonly base: number; readonly config: LogConfig } => {
  const config = Object.fromEntries(FIELDS.map((f, i) => [f, params[at + 1 + i] ?? Number.NaN])) as unknown as LogConfig
  return { base: params[at] ?? Number.NaN, config }
}

/** The log configuration from its `CXLOG_LOG_*` variables (services/log/LogSettings.ts), defaulting each field. */
export const logConfig: Config.Config<LogConfig> = settingsConfig(LOG_LAYOUT_SETTINGS.settings)
