/**
 * The whole region, in order: superblock, process table, control rings (one request ring
 * per process slot, one broadcast ring, a few application rings), the log area, then the
 * directory of named objects and the heap their extents come from (docs/region.md).
 * The creator stores the configuration in the superblock parameters; every attacher
 * recomputes the same offsets from them.
 *
 * Ring ids: request ring of slot s = s; broadcast = maxProcesses; application ring k =
 * maxProcesses + 1 + k.
 */
import { Config, Data, Effect, Layer } from "effect"
import { CONTROL_LAYOUT_SETTINGS } from "../services/control/ControlSettings.js"
import { type RingAddress, ringFootprint } from "../services/control/Rings.js"
import { CxlMemory } from "../services/region/CxlMemory.js"
import { DIRECTORY_LAYOUT_SETTINGS } from "../services/region/RegionSettings.js"
import { type ControlConfig, type Layout, type RegionConfig, RegionLayout } from "../services/RegionLayout.js"
import { defaultsOf, settingsConfig } from "../Settings.js"
import {
  defaultLogConfig,
  LOG_AREA_PARAMS,
  logAreaBytes,
  logAreaFromParams,
  logAreaParams,
  logConfig,
  type LogConfigInvalid,
  resolveLogArea,
  validateLogConfig
} from "./log/Layout.js"
import {
  directoryAreaBytes,
  type DirectoryConfig,
  directoryConfigProblems,
  makeDirectoryArea
} from "./region/DirectoryRecords.js"
import { processTableBytes } from "./region/ProcessSlot.js"
import { SUPERBLOCK_BYTES } from "./region/Superblock.js"

// The contract lives in services/RegionLayout.ts; the package's RegionLayout namespace (index.ts) has always offered it here too.
export { type ControlConfig, type Layout, type RegionConfig, RegionLayout }

export const defaultControlConfig: ControlConfig = defaultsOf(CONTROL_LAYOUT_SETTINGS.settings)

export const defaultDirectoryConfig: DirectoryConfig = defaultsOf(DIRECTORY_LAYOUT_SETTINGS.settings)

export const defaultRegionConfig: RegionConfig = {
  control: defaultControlConfig,
  log: defaultLogConfig,
  directory: defaultDirectoryConfig
}

const CONTROL_FIELDS = [
  "maxProcesses",
  "requestRingBytes",
  "broadcastRingBytes",
  "appRings",
  "appRingBytes",
  "appRingReaders"
] as const

/** Readers per request ring: the coordinator, and a spare for a standby. */
export const REQUEST_RING_READERS = 2

export class RegionLayoutInvalid
  extends Data.TaggedError("RegionLayoutInvalid")<{ readonly reason: string; readonly config: RegionConfig }>
{
  override get message() {
    return `invalid region layout: ${this.reason}; effective configuration: ${
      [
        ...CONTROL_FIELDS.map((f) => `${f}=${this.config.control[f]}`),
        ...DIRECTORY_FIELDS.map((f) => `${f}=${this.config.directory[f]}`)
      ].join(" ")
    }`
  }
}

const align = (n: number, to: number) => Math.ceil(n / to) * to

const place = (config: RegionConfig) => {
  const c = config.control
  const processTable = { offset: SUPERBLOCK_BYTES, slots: c.maxProcesses }
  const requestStride = ringFootprint(c.requestRingBytes, REQUEST_RING_READERS)
  const requestBase = align(processTable.offset + processTableBytes(c.maxProcesses), 4096)
  const broadcastBase = requestBase + c.maxProcesses * requestStride
  const appStride = ringFootprint(c.appRingBytes, c.appRingReaders)
  const appBase = align(broadcastBase + ringFootprint(c.broadcastRingBytes, c.maxProcesses), 64)
  const logBase = align(appBase + c.appRings * appStride, 4096)
  const directoryBase = logBase + logAreaBytes(config.log, config.directory.entrySlots)
  return { processTable, requestStride, requestBase, broadcastBase, appStride, appBase, logBase, directoryBase }
}

const DIRECTORY_FIELDS = ["entrySlots", "holderLines", "heapBytes"] as const

/** Bytes a region needs for `config` (whole pages). */
export const regionBytes = (config: RegionConfig): number =>
  align(place(config).directoryBase + directoryAreaBytes(config.directory), 4096)

/**
 * The bytes before the directory's heap: what the region's creator reserves. The heap's pages are
 * reserved an extent at a time as the directory hands them out (DirectoryWriter.ts), so a region
 * takes the memory its objects hold, not its whole heap.
 */
export const regionFixedBytes = (config: RegionConfig): number =>
  makeDirectoryArea(place(config).directoryBase, config.directory).heap

/** The configuration as superblock parameters. */
export const regionParams = (config: RegionConfig): ReadonlyArray<number> => [
  ...CONTROL_FIELDS.map((f) => config.control[f]),
  ...logAreaParams(place(config).logBase, config.log),
  ...DIRECTORY_FIELDS.map((f) => config.directory[f])
]

/** A control field as a problem names it: its name, its value, and the variable that sets it. */
const namedControl = (config: ControlConfig, field: (typeof CONTROL_FIELDS)[number]) =>
  `${field} ${config[field]} (${CONTROL_LAYOUT_SETTINGS.settings[field].env})`

const validateControl = (config: RegionConfig) => {
  const c = config.control
  const ring = (field: "requestRingBytes" | "broadcastRingBytes" | "appRingBytes") =>
    c[field] >= 4096 && c[field] % 64 === 0 ? "" : `${namedControl(c, field)} must be a multiple of 64, at least 4096`
  const problems = [
    c.maxProcesses >= 2 && c.maxProcesses <= 1024 ? "" : `${namedControl(c, "maxProcesses")} must be in [2, 1024]`,
    ring("requestRingBytes"),
    ring("broadcastRingBytes"),
    c.appRings >= 0 && c.appRings <= 256 ? "" : `${namedControl(c, "appRings")} must be in [0, 256]`,
    ring("appRingBytes"),
    c.appRingReaders >= 1 && c.appRingReaders <= 64 ? "" : `${namedControl(c, "appRingReaders")} must be in [1, 64]`
  ].filter((p) => p !== "")
  problems.push(...directoryConfigProblems(config.directory))
  return problems.length === 0
    ? Effect.void
    : Effect.fail(new RegionLayoutInvalid({ reason: problems.join("; "), config }))
}

/** Whether `config` can be laid out at all, as `resolve` checks first: a caller can ask before any process makes the region. */
export const validate = (config: RegionConfig) =>
  Effect.zipRight(validateControl(config), validateLogConfig(config.log))

/** Places everything for `config` in a region of `size` bytes. */
export const resolve = (config: RegionConfig, size: number) =>
  Effect.gen(function*() {
    yield* validate(config)
    const p = place(config)
    const directory = makeDirectoryArea(p.directoryBase, config.directory)
    const log = yield* resolveLogArea(p.logBase, config.log, size, directory)
    const c = config.control
    const requestRing = (slot: number): RingAddress => ({
      id: slot,
      offset: p.requestBase + slot * p.requestStride,
      dataBytes: c.requestRingBytes,
      readerSlots: REQUEST_RING_READERS
    })
    const broadcastRing: RingAddress = {
      id: c.maxProcesses,
      offset: p.broadcastBase,
      dataBytes: c.broadcastRingBytes,
      readerSlots: c.maxProcesses
    }
    const appRing = (k: number): RingAddress => ({
      id: c.maxProcesses + 1 + k,
      offset: p.appBase + k * p.appStride,
      dataBytes: c.appRingBytes,
      readerSlots: c.appRingReaders
    })
    const layout: Layout = {
      config,
      processTable: p.processTable,
      requestRing,
      broadcastRing,
      appRing,
      isRequestRing: (id) => id >= 0 && id < c.maxProcesses,
      ring: (id) =>
        id >= 0 && id < c.maxProcesses
          ? requestRing(id)
          : id === c.maxProcesses
          ? broadcastRing
          : id > c.maxProcesses && id <= c.maxProcesses + c.appRings
          ? appRing(id - c.maxProcesses - 1)
          : undefined,
      log,
      directory,
      totalBytes: regionBytes(config)
    }
    return layout
  })

/** Reads the configuration back from superblock parameters. */
export const configFromParams = (params: ReadonlyArray<number>): RegionConfig => {
  const control = Object.fromEntries(
    CONTROL_FIELDS.map((f, i) => [f, params[i] ?? Number.NaN])
  ) as unknown as ControlConfig
  const at = CONTROL_FIELDS.length + LOG_AREA_PARAMS
  const directory = Object.fromEntries(
    DIRECTORY_FIELDS.map((f, i) => [f, params[at + i] ?? Number.NaN])
  ) as unknown as DirectoryConfig
  return { control, log: logAreaFromParams(params, CONTROL_FIELDS.length).config, directory }
}

export const REGION_PARAMS = CONTROL_FIELDS.length + LOG_AREA_PARAMS + DIRECTORY_FIELDS.length

/** Computes the layout from the attached region's superblock parameters. */
export const layer: Layer.Layer<RegionLayout, RegionLayoutInvalid | LogConfigInvalid, CxlMemory> = Layer.effect(
  RegionLayout,
  Effect.flatMap(CxlMemory, (region) => resolve(configFromParams(region.params), region.size))
)

/** The control configuration from its variables (services/control/ControlSettings.ts), defaulting each field. */
export const controlConfig: Config.Config<ControlConfig> = settingsConfig(CONTROL_LAYOUT_SETTINGS.settings)

/** The directory configuration from its variables (services/region/RegionSettings.ts), defaulting each field. */
export const directoryConfig: Config.Config<DirectoryConfig> = settingsConfig(DIRECTORY_LAYOUT_SETTINGS.settings)

export const regionConfig: Config.Config<RegionConfig> = Config.all({
  control: controlConfig,
  log: logConfig,
  directory: directoryConfig
})
