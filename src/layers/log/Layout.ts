/**
 * Where the shared log lives in the region: its configuration (sizes, with defaults and
 * validation), the pure size function `logAreaBytes`, and `makeLogArea`, which gives every
 * offset of the log area from a base offset, down to one record (`pbrSlotOffset`,
 * `goiEntryOffset`, `sessionLineOffset`). Field layouts inside each record are in
 * Records.ts, their typed accessors in RecordViews.ts.
 *
 * Log area, from `base` (64-byte lines; big areas start on 4 KiB pages):
 *   broker owner lines   maxBrokers × 64        (each broker process its own line)
 *   listener lines       listenerSlots × 64     (each waiting process its own line)
 *   topics               maxTopics × topicStride
 * One topic:
 *   descriptor           192                    (head)
 *   order line           64                     (sequencer)
 *   registry line        64                     (brokers, atomically: session epochs and live sessions)
 *   per broker           3 × 64                 (broker line, sequencer line, replica line)
 *   subscriber cursors   subscriberSlots × 64   (each subscriber its own line)
 *   session table        sessionSlots × 128     (sequencer)
 *   GOI                  goiSlots × 64          (sequencer)
 *   per broker           PBR pbrSlots × 128, then Blog blogBytes (that broker; PBR line 1: sequencer)
 */
import { Config, Data, Effect } from "effect"
import type { LogArea, LogConfig } from "../../services/log/LogArea.js"
import { LOG_LAYOUT_SETTINGS } from "../../services/log/LogSettings.js"
import { LINE_BYTES } from "../../services/region/CxlMemory.js"
import { defaultsOf, settingsConfig } from "../../Settings.js"
import { alignLine } from "./Records.js"

// The interfaces are the contract (services/log/LogArea.ts); the log layers take them from here.
export type { LogArea, LogConfig }

export const defaultLogConfig: LogConfig = defaultsOf(LOG_LAYOUT_SETTINGS.settings)

const FIELDS = [
  "maxTopics",
  "maxBrokers",
  "pbrSlots",
  "blogBytes",
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
  if (config.maxTopics > 256) problems.push(`maxTopics ${config.maxTopics} exceeds 256`)
  if (config.maxBrokers > 64) problems.push(`maxBrokers ${config.maxBrokers} exceeds 64`)
  if (!isPowerOfTwo(config.pbrSlots) || config.pbrSlots < 8) {
    problems.push(`pbrSlots ${config.pbrSlots} must be a power of two ≥ 8`)
  }
  if (!isPowerOfTwo(config.goiSlots)) problems.push(`goiSlots ${config.goiSlots} must be a power of two`)
  if (!isPowerOfTwo(config.sessionSlots)) problems.push(`sessionSlots ${config.sessionSlots} must be a power of two`)
  if (config.maxBatchBytes % 8 !== 0 || config.maxBatchBytes < 16) {
    problems.push(`maxBatchBytes ${config.maxBatchBytes} must be a multiple of 8 and at least 16`)
  }
  if (config.blogBytes % 4096 !== 0) problems.push(`blogBytes ${config.blogBytes} must be a multiple of 4096`)
  if (config.blogBytes < 2 * alignLine(config.maxBatchBytes)) {
    problems.push(
      `the Blog of ${config.blogBytes} bytes per (topic, broker) cannot hold two batches of maxBatchBytes=${config.maxBatchBytes}: raise blogBytes or lower maxBatchBytes`
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
  if (problems.length === 0 && !Number.isSafeInteger(logAreaBytesUnchecked(config))) {
    problems.push("the log area exceeds 2^53 bytes")
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

interface TopicGeometry {
  readonly orderLine: number
  readonly registryLine: number
  readonly brokerLines: number
  readonly subscribers: number
  readonly sessions: number
  readonly goi: number
  readonly pbrs: number
  readonly pbrStride: number
  readonly pbrBytes: number
  readonly stride: number
}

const topicGeometry = (c: LogConfig): TopicGeometry => {
  const orderLine = TOPIC_DESCRIPTOR_BYTES
  const registryLine = orderLine + LINE
  const brokerLines = registryLine + LINE
  const subscribers = brokerLines + c.maxBrokers * 3 * LINE
  const sessions = subscribers + c.subscriberSlots * LINE
  const goi = alignPage(sessions + c.sessionSlots * SESSION_LINE_BYTES)
  const pbrs = alignPage(goi + c.goiSlots * GOI_ENTRY_BYTES)
  const pbrBytes = alignPage(c.pbrSlots * PBR_SLOT_BYTES)
  const pbrStride = pbrBytes + c.blogBytes
  return {
    orderLine,
    registryLine,
    brokerLines,
    subscribers,
    sessions,
    goi,
    pbrs,
    pbrStride,
    pbrBytes,
    stride: pbrs + c.maxBrokers * pbrStride
  }
}

const headerBytes = (c: LogConfig) => alignPage((c.maxBrokers + c.listenerSlots) * LINE)

const logAreaBytesUnchecked = (c: LogConfig) => headerBytes(c) + c.maxTopics * topicGeometry(c).stride

/** Bytes the log area needs for `config` (a multiple of 4096). Validate the config first. */
export const logAreaBytes = (config: LogConfig): number => logAreaBytesUnchecked(config)

/** The log area at `base` (64-byte aligned) for a validated `config`. */
export const makeLogArea = (base: number, config: LogConfig): LogArea => {
  const g = topicGeometry(config)
  const topicsBase = base + headerBytes(config)
  const topic = (t: number) => topicsBase + t * g.stride
  return {
    base,
    config,
    bytes: logAreaBytes(config),
    brokerOwner: (b) => base + b * LINE,
    listener: (i) => base + (config.maxBrokers + i) * LINE,
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
    pbr: (t, b) => topic(t) + g.pbrs + b * g.pbrStride,
    blog: (t, b) => topic(t) + g.pbrs + b * g.pbrStride + g.pbrBytes
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
  regionBytes: number
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
    return makeLogArea(base, config)
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
