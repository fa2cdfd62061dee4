/**
 * Where the shared log lives in the region: its configuration (sizes, with defaults and
 * validation) and `makeLogArea`, which gives every offset of the log area from a base offset,
 * down to one record (`pbrSlotOffset`, `goiEntryOffset`, `sessionLineOffset`). Each topic's
 * parts are where its shape puts them (TopicShape.ts); field layouts inside each record are in
 * Records.ts, their typed accessors in RecordViews.ts.
 *
 * Log area, from `base` (64-byte lines):
 *   broker owner lines   maxBrokers × 64        (each writer process its own line: brokers, local publishers)
 *   listener lines       listenerSlots × 64     (each waiting process its own line)
 *   lane answers         64 + maxBrokers × 8    (the head: TopicLanes.ts)
 *   topic marks          a bit per directory slot (topics the head must look at: TopicMarks.ts)
 * Each topic is an object of the region's directory: a main extent of the heap, and a lane
 * extent per writer that has written it (TopicShape.ts).
 */
import { Config, Data, Effect } from "effect"
import type { LogArea, LogConfig, TopicPlace } from "../../services/log/LogArea.js"
import { LOG_LAYOUT_SETTINGS } from "../../services/log/LogSettings.js"
import { LINE_BYTES } from "../../services/region/CxlMemory.js"
import type { DirectoryArea } from "../../services/region/DirectoryArea.js"
import { defaultsOf, settingsConfig } from "../../Settings.js"
import { alignLine, LaneAnswers } from "./Records.js"
import {
  GOI_ENTRY_BYTES,
  laneBlog,
  mainGeometry,
  PBR_SLOT_BYTES,
  SESSION_LINE_BYTES,
  type TopicShape,
  topicShape
} from "./TopicShape.js"

// The interfaces are the contract (services/log/LogArea.ts); the log layers take them from here.
export type { LogArea, LogConfig, TopicPlace }
export { GOI_ENTRY_BYTES, PBR_SLOT_BYTES, SESSION_LINE_BYTES, TOPIC_DESCRIPTOR_BYTES } from "./TopicShape.js"

export const defaultLogConfig: LogConfig = defaultsOf(LOG_LAYOUT_SETTINGS.settings)

/** The most writer slots (`maxBrokers`: brokers and local publishers) a region has. */
export const MAX_WRITER_SLOTS = 64

const FIELDS = [
  "maxBrokers",
  "pbrSlots",
  "topicMemoryBytes",
  "topicWriters",
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

/** The shape a topic of the configuration's default memory and writers takes, or why it cannot. */
export const defaultTopicShape = (config: LogConfig): TopicShape | string =>
  topicShape(config, { memory: config.topicMemoryBytes, writers: config.topicWriters })

/** A field of the configuration as a problem names it: its name, its value, and the variable that sets it. */
const named = (config: LogConfig, field: (typeof FIELDS)[number]) =>
  `${field} ${config[field]} (${LOG_LAYOUT_SETTINGS.settings[field].env})`

/** Every reason `config` cannot work (empty when it can). */
export const logConfigProblems = (config: LogConfig): ReadonlyArray<string> => {
  const problems: Array<string> = []
  for (const field of FIELDS) {
    const value = config[field]
    if (!Number.isSafeInteger(value) || value < 1) {
      problems.push(`${field} must be a positive integer (got ${value}; ${LOG_LAYOUT_SETTINGS.settings[field].env})`)
    }
  }
  if (problems.length > 0) return problems
  if (config.maxBrokers > MAX_WRITER_SLOTS) {
    problems.push(`${named(config, "maxBrokers")} exceeds ${MAX_WRITER_SLOTS}`)
  }
  if (!isPowerOfTwo(config.pbrSlots) || config.pbrSlots < 8) {
    problems.push(`${named(config, "pbrSlots")} must be a power of two ≥ 8`)
  }
  if (!isPowerOfTwo(config.sessionSlots)) problems.push(`${named(config, "sessionSlots")} must be a power of two`)
  if (config.maxBatchBytes % 8 !== 0 || config.maxBatchBytes < 64) {
    problems.push(`${named(config, "maxBatchBytes")} must be a multiple of 8 and at least 64`)
  }
  // Every topic's writers may each hold the fewest PBR slots a lane has, with a gap open (order 5).
  if (config.goiSlots < config.maxBrokers * 8) {
    problems.push(
      `${named(config, "goiSlots")} is smaller than maxBrokers × 8 = ${
        config.maxBrokers * 8
      } (a topic of every writer slot holding its fewest batches): raise goiSlots or lower maxBrokers`
    )
  }
  if (problems.length > 0) return problems
  const shape = defaultTopicShape(config)
  if (typeof shape === "string") problems.push(`a topic of the default memory and writers cannot be made: ${shape}`)
  return problems
}

export const validateLogConfig = (config: LogConfig): Effect.Effect<LogConfig, LogConfigInvalid> => {
  const problems = logConfigProblems(config)
  return problems.length === 0 ? Effect.succeed(config) : Effect.fail(new LogConfigInvalid({ problems, config }))
}

const PAGE = 4096
const alignPage = (n: number) => Math.ceil(n / PAGE) * PAGE

/** The configuration a topic's shape depends on (its caps). */
export type ShapeConfig = Omit<LogConfig, "topicMemoryBytes" | "topicWriters">

/** The memory that gives each lane of a topic written by every writer slot a Blog of at least `blogBytes`. */
export const topicMemoryFor = (config: ShapeConfig, blogBytes: number): number => {
  const writers = config.maxBrokers
  for (let lane = 8192; lane <= 2 ** 40; lane *= 2) {
    const made = topicShape(config, { memory: lane * writers, writers })
    if (typeof made !== "string" && laneBlog(made.laneBytes, made.pbrSlots).bytes >= blogBytes) return made.memoryBytes
  }
  throw new Error(`no topic memory gives Blogs of ${blogBytes} bytes`)
}

/**
 * `config` whose default topics have a lane for every writer slot, each with a Blog of at least
 * `blogBytes` (benches and tests size them so).
 */
export const withBlogBytes = (config: ShapeConfig, blogBytes: number): LogConfig => ({
  ...config,
  topicWriters: config.maxBrokers,
  topicMemoryBytes: topicMemoryFor(config, blogBytes)
})

const answersBytes = (c: LogConfig) => LINE_BYTES + alignLine(c.maxBrokers * LaneAnswers.bytes)
const headerBytes = (c: LogConfig) => (c.maxBrokers + c.listenerSlots) * LINE_BYTES
/** A bit per topic id (a directory slot), in 32-bit words, after a line of summary bits (one per 32 words: TopicMarks.ts). */
const marksBytes = (topicSlots: number) => {
  const words = Math.ceil(topicSlots / 32)
  return alignLine(Math.ceil(words / 32) * 4) + alignLine(words * 4)
}

/**
 * Bytes the log area needs for `config` and a directory of `topicSlots` entry slots (a multiple
 * of 4096): its lines and topic marks; the topics are in the directory's heap.
 */
export const logAreaBytes = (config: LogConfig, topicSlots: number): number =>
  alignPage(headerBytes(config) + answersBytes(config) + marksBytes(topicSlots))

const notRead = (what: string, t: number): never => {
  throw new Error(`${what} of topic ${t} is used before this process read it from the region`)
}

/** The log area at `base` (64-byte aligned) for a validated `config`, its topics in `directory`'s heap. */
export const makeLogArea = (base: number, config: LogConfig, directory: DirectoryArea): LogArea => {
  const g = mainGeometry(config, 0)
  // By id (a directory slot): an array's index, on every record's offset of the hot paths.
  const places = new Array<TopicPlace | undefined>(directory.config.entrySlots)
  const placeOf = (t: number): TopicPlace => places[t] ?? notRead("the place", t)
  const topic = (t: number) => placeOf(t).offset
  const lane = (t: number, b: number) => placeOf(t).lanes[b] || notRead(`the lane of writer ${b}`, t)
  return {
    base,
    config,
    bytes: logAreaBytes(config, directory.config.entrySlots),
    directory,
    brokerOwner: (b) => base + b * LINE_BYTES,
    listener: (i) => base + (config.maxBrokers + i) * LINE_BYTES,
    laneAnswers: base + headerBytes(config),
    topicMarks: base + headerBytes(config) + answersBytes(config),
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
    retentionLine: (t) => topic(t) + g.retentionLine,
    laneTable: (t) => topic(t) + g.laneTable,
    laneOf: (t, b) => placeOf(t).lanes[b]!,
    brokerLine: (t, b) => lane(t, b),
    sequencerLine: (t, b) => lane(t, b) + LINE_BYTES,
    replicaLine: (t, b) => lane(t, b) + 2 * LINE_BYTES,
    subscriber: (t, i) => topic(t) + g.subscribers + i * LINE_BYTES,
    sessions: (t) => topic(t) + g.sessions,
    goi: (t) => placeOf(t).goi,
    pbr: (t, b) => lane(t, b) + 3 * LINE_BYTES,
    blog: (t, b) => lane(t, b) + placeOf(t).blogAt
  }
}

/** Where topic `t` of `shape` lives, for `LogArea.place`: its main extent, and no lane read yet. */
export const placeFor = (
  config: LogConfig,
  shape: TopicShape,
  offset: number,
  bytes: number,
  generation: number
): TopicPlace => {
  const blog = laneBlog(shape.laneBytes, shape.pbrSlots)
  return {
    offset,
    bytes,
    shape,
    generation,
    goi: offset + mainGeometry(config, shape.sessionSlots).goi,
    blogAt: blog.at,
    blogBytes: blog.bytes,
    lanes: new Array<number>(config.maxBrokers).fill(0)
  }
}

/** The PBR slot that holds absolute position `pbrSeq` of (topic, broker). */
export const pbrSlotOffset = (area: LogArea, topic: number, broker: number, pbrSeq: number): number =>
  area.pbr(topic, broker) + (pbrSeq % area.placeOf(topic).shape.pbrSlots) * PBR_SLOT_BYTES

/** The GOI entry that holds global seq `g` of the topic. */
export const goiEntryOffset = (area: LogArea, topic: number, g: number): number => {
  const place = area.placeOf(topic)
  return place.goi + (g % place.shape.goiSlots) * GOI_ENTRY_BYTES
}

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
    if (!Number.isSafeInteger(base) || base < 0 || base % LINE_BYTES !== 0) {
      return yield* new LogConfigInvalid({
        problems: [`the log area's base ${base} is not a 64-byte aligned offset`],
        config
      })
    }
    const bytes = logAreaBytes(config, directory.config.entrySlots)
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
