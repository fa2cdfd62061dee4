/**
 * The region's live topics as one process lists them, kept from look to look: each list reads
 * the directory's changes since the last (DirectoryFollower.ts) and the descriptor of each topic
 * new since, where walking every entry slot and decoding every descriptor at every list made the
 * head's retention pass (once a second) cost as much as its topics, 30 ms at 10 000 of them, on the
 * thread that creates topics. A descriptor is written once, before its topic's name is published,
 * so a topic read once is known until its entry goes. In the order they were created, as a table's would be.
 */
import type { TopicInfo } from "../../services/log/Topics.js"
import type { CxlMemoryShape } from "../../services/region/CxlMemory.js"
import { DirectoryFollower } from "../region/DirectoryFollower.js"
import { DirectoryTable } from "../region/DirectoryTable.js"
import type { LogArea } from "./Layout.js"
import { readTopicEntry } from "./TopicDescriptors.js"

interface Listed {
  readonly info: TopicInfo
  readonly createdAtMs: number
}

const byCreation = (a: Listed, b: Listed) => a.createdAtMs - b.createdAtMs || a.info.generation - b.info.generation

/** A function listing the region's live topics; each call costs the changes since the previous one, and a copy. */
export const topicLister = (region: CxlMemoryShape, area: LogArea): () => ReadonlyArray<TopicInfo> => {
  const follower = new DirectoryFollower(region, area.directory, "topic")
  const table = new DirectoryTable(region, area.directory)
  /** The live topics by id (directory slot). */
  const topics = new Map<number, Listed>()
  /** The list in creation order, while no topic came or went since it was sorted. */
  let sorted: ReadonlyArray<TopicInfo> | undefined

  return () => {
    const { created, deleted } = follower.changes()
    for (const gone of deleted) {
      const known = topics.get(gone.slot)
      if (known === undefined || known.info.generation > gone.generation) continue
      topics.delete(gone.slot)
      sorted = undefined
    }
    for (const made of created) {
      const { entry } = table.read(made.slot)
      // Gone or replaced since the journal said so: the next list is told.
      if (entry === undefined || entry.generation !== made.generation) continue
      // A descriptor that fails its checks is not listed (a corrupt region is never trusted).
      const info = readTopicEntry(region, area, entry)
      if (info === undefined) continue
      topics.set(made.slot, { info, createdAtMs: entry.createdAtMs })
      sorted = undefined
    }
    sorted ??= [...topics.values()].sort(byCreation).map((listed) => listed.info)
    return sorted
  }
}
