/**
 * A region of the log alone — its area, then a directory whose heap holds the topics — for
 * benches and tests that run the log's layers without the control plane. The product's regions
 * are laid out by RegionLayout.ts; every process of one such region computes the same layout
 * from the same configuration.
 */
import { Effect, type Scope } from "effect"
import type { TopicsShape } from "../../services/log/Topics.js"
import { CxlMemory } from "../../services/region/CxlMemory.js"
import { DirectoryWriter, type DirectoryWriterShape, type NotDirectoryWriter } from "../../services/region/Directory.js"
import { Doorbell } from "../../services/region/Doorbell.js"
import * as DirectoryLayers from "../region/Directory.js"
import { alignToPage, directoryAreaBytes, type DirectoryConfig, makeDirectoryArea } from "../region/DirectoryRecords.js"
import {
  defaultLogConfig,
  type LogArea,
  logAreaBytes,
  logAreaParams,
  type LogConfig,
  makeLogArea,
  withBlogBytes
} from "./Layout.js"
import { readTopic } from "./TopicDescriptors.js"
import { serveLanes } from "./TopicLanes.js"
import * as TopicsLayers from "./Topics.js"
import { heldBytes, topicShape } from "./TopicShape.js"

export interface LogRegionLayout {
  readonly area: LogArea
  /** The region's size: its log area and directory end there. */
  readonly bytes: number
  /** Its superblock parameters: the log area's. */
  readonly params: ReadonlyArray<number>
}

/** A small log (one broker slot, 1 MiB Blogs, 64 KiB batches) for regions that exercise the control plane, not the log. */
export const oneBrokerLogConfig: LogConfig = withBlogBytes({
  ...defaultLogConfig,
  maxBrokers: 1,
  pbrSlots: 64,
  goiSlots: 256,
  sessionSlots: 64,
  maxBatchBytes: 64 << 10
}, 1 << 20)

/** What a topic of the configuration's default memory and writers takes of the heap once every writer wrote it. */
export const defaultTopicBytes = (config: LogConfig): number => {
  const shape = topicShape(config, { memory: config.topicMemoryBytes, writers: config.topicWriters })
  if (typeof shape === "string") throw new Error(`the default topic cannot be made: ${shape}`)
  return heldBytes(shape, shape.writers)
}

/** A directory with room for `topics` topics of the configuration's memory, every lane of each written. */
export const directoryFor = (config: LogConfig, topics: number): DirectoryConfig => ({
  entrySlots: 2 ** Math.max(4, Math.ceil(Math.log2((topics * 8) / 7 + 1))),
  holderLines: 16,
  heapBytes: Math.max(1, topics) * defaultTopicBytes(config)
})

/** The log area at `logBase`, then the directory on the next page. */
export const logRegionLayout = (logBase: number, config: LogConfig, directory: DirectoryConfig): LogRegionLayout => {
  const directoryBase = alignToPage(logBase + logAreaBytes(config, directory.entrySlots))
  return {
    area: makeLogArea(logBase, config, makeDirectoryArea(directoryBase, directory)),
    bytes: directoryBase + directoryAreaBytes(directory),
    params: logAreaParams(logBase, config)
  }
}

/**
 * Topics with this process as the directory's writer at `epoch`, as a head is (a bench or test
 * plays one), answering writers' lane requests (on this process's doorbell) for the scope; and the
 * writer. It frees deleted topics' memory when an allocation needs it, not at a tick: a test's
 * clock set years ahead would otherwise run every tick in between.
 */
export const writingLog = (
  area: LogArea,
  epoch = 1
): Effect.Effect<
  { readonly topics: TopicsShape<never>; readonly writer: DirectoryWriterShape },
  NotDirectoryWriter,
  CxlMemory | Doorbell | Scope.Scope
> =>
  Effect.gen(function*() {
    const writer = yield* DirectoryLayers.makeWriter({ area: area.directory, epoch, reclaimEveryMs: 0 })
    const region = yield* CxlMemory
    const doorbell = yield* Doorbell
    yield* serveLanes(region, area, writer, doorbell, (t) => readTopic(region, area, t))
    const topics = yield* TopicsLayers.make(area).pipe(Effect.provideService(DirectoryWriter, writer))
    return { topics, writer }
  })

/** `writingLog`'s topics. */
export const writingTopics = (
  area: LogArea,
  epoch = 1
): Effect.Effect<TopicsShape<never>, NotDirectoryWriter, CxlMemory | Doorbell | Scope.Scope> =>
  Effect.map(writingLog(area, epoch), ({ topics }) => topics)
