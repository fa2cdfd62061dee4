/**
 * A region of the log alone — its area, then a directory whose heap holds the topics — for
 * benches and tests that run the log's layers without the control plane. The product's regions
 * are laid out by RegionLayout.ts; every process of one such region computes the same layout
 * from the same configuration.
 */
import { Effect, type Scope } from "effect"
import type { TopicsShape } from "../../services/log/Topics.js"
import type { CxlMemory } from "../../services/region/CxlMemory.js"
import { DirectoryWriter, type NotDirectoryWriter } from "../../services/region/Directory.js"
import * as DirectoryLayers from "../region/Directory.js"
import { directoryAreaBytes, type DirectoryConfig, makeDirectoryArea } from "../region/DirectoryRecords.js"
import {
  defaultLogConfig,
  type LogArea,
  logAreaBytes,
  logAreaParams,
  type LogConfig,
  makeLogArea,
  roundedTopicBytes,
  withBlogBytes
} from "./Layout.js"
import * as TopicsLayers from "./Topics.js"

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

const alignPage = (n: number) => Math.ceil(n / 4096) * 4096

/** A directory with room for `topics` topics of the configuration's memory. */
export const directoryFor = (config: LogConfig, topics: number): DirectoryConfig => ({
  entrySlots: 2 ** Math.max(4, Math.ceil(Math.log2((topics * 8) / 7 + 1))),
  holderLines: 16,
  heapBytes: Math.max(1, topics) * roundedTopicBytes(config.topicMemoryBytes)
})

/** The log area at `logBase`, then the directory on the next page. */
export const logRegionLayout = (logBase: number, config: LogConfig, directory: DirectoryConfig): LogRegionLayout => {
  const directoryBase = alignPage(logBase + logAreaBytes(config))
  return {
    area: makeLogArea(logBase, config, makeDirectoryArea(directoryBase, directory)),
    bytes: directoryBase + directoryAreaBytes(directory),
    params: logAreaParams(logBase, config)
  }
}

/**
 * Topics with this process as the directory's writer at `epoch`, as a head is (a bench or test
 * plays one). It frees deleted topics' memory when an allocation needs it, not at a tick: a test's
 * clock set years ahead would otherwise run every tick in between.
 */
export const writingTopics = (
  area: LogArea,
  epoch = 1
): Effect.Effect<TopicsShape<never>, NotDirectoryWriter, CxlMemory | Scope.Scope> =>
  Effect.flatMap(
    DirectoryLayers.makeWriter({ area: area.directory, epoch, reclaimEveryMs: 0 }),
    (writer) => TopicsLayers.make(area).pipe(Effect.provideService(DirectoryWriter, writer))
  )
