/**
 * The region's live topics as one process lists them, kept from list to list: each list reads
 * the directory's changes since the last (DirectoryFollower.ts) and the descriptor of each topic
 * new since. Walking every entry slot and decoding every descriptor instead costs 70–110 ms at
 * 10 000 topics, and the head's retention pass lists once a second on the thread that creates
 * topics; this costs nothing while nothing changed, and a copy of the list (1–4 ms at 10 000) when
 * something did. A descriptor is written once, before its topic's name is published, so a topic
 * read once is known until its entry goes. In the order they were created, as a table's would be.
 */
import type { TopicInfo, UnreadableTopic } from "../../services/log/Topics.js"
import type { CxlMemoryShape } from "../../services/region/CxlMemory.js"
import { mib, TAKEOVER_DELETES } from "../../services/region/Directory.js"
import { DirectoryFollower } from "../region/DirectoryFollower.js"
import { heapBlocks, spaceHolders } from "../region/DirectorySpace.js"
import { DirectoryTable, encodeName, nameHash } from "../region/DirectoryTable.js"
import type { LogArea } from "./Layout.js"
import { readTopicEntry } from "./TopicDescriptors.js"

/** A topic listed, with what a list sorts and filters by beside it (topic infos differ in shape: their fields are slow to reach). */
interface Listed {
  readonly id: number
  readonly generation: number
  readonly createdAtMs: number
  readonly info: TopicInfo
}

const byCreation = (a: Listed, b: Listed) => a.createdAtMs - b.createdAtMs || a.generation - b.generation

/** A function listing the region's live topics; each call costs the changes since the previous one, and a copy. */
export const topicLister = (region: CxlMemoryShape, area: LogArea): () => ReadonlyArray<TopicInfo> => {
  const follower = new DirectoryFollower(region, area.directory, "topic")
  const table = new DirectoryTable(region, area.directory)
  /** The live topics by id (directory slot). */
  const topics = new Map<number, Listed>()
  /** The live topics in creation order, and some gone since (dropped at the next list). */
  let ordered: Array<Listed> = []
  let gone = false
  /** A topic came out of order (a listing tells them by slot): sort at the next list. */
  let unsorted = false
  /** The last list, while no topic came or went since. */
  let listed: ReadonlyArray<TopicInfo> | undefined

  return () => {
    const { created, deleted } = follower.changes()
    for (const change of deleted) {
      const known = topics.get(change.slot)
      if (known === undefined || known.generation > change.generation) continue
      topics.delete(change.slot)
      gone = true
      listed = undefined
    }
    for (const made of created) {
      const { entry } = table.read(made.slot)
      // Gone or replaced since the journal said so: the next list is told.
      if (entry === undefined || entry.generation !== made.generation) continue
      // A descriptor that fails its checks is not listed (a corrupt region is never trusted).
      const info = readTopicEntry(region, area, entry)
      if (info === undefined) continue
      const topic: Listed = { id: made.slot, generation: made.generation, createdAtMs: entry.createdAtMs, info }
      // The one it replaces in its slot, if any, was told as deleted just before.
      if (topics.has(made.slot)) gone = true
      topics.set(made.slot, topic)
      const last = ordered[ordered.length - 1]
      if (last !== undefined && byCreation(last, topic) > 0) unsorted = true
      ordered.push(topic)
      listed = undefined
    }
    if (listed !== undefined) return listed
    // Topics are created one after another: most lists only append, and sort nothing.
    if (gone) ordered = ordered.filter((topic) => topics.get(topic.id) === topic)
    if (unsorted) ordered.sort(byCreation)
    gone = false
    unsorted = false
    listed = ordered.map((topic) => topic.info)
    return listed
  }
}

/**
 * A function naming the region's topics that a list (`listed`) left out because they cannot be
 * read, each with why (`find`'s answer for its name). Only the live entries no listed topic holds
 * are decoded, so a region whose topics all read costs two passes over the slots' state words (and a
 * few words of each live entry). An entry whose own fields are out of range is said by the name it
 * still says when that name's hash is the topic kind's; one whose name cannot be read names no topic,
 * and is said by its slot (it may be a topic's), with the memory it holds and what frees it: the
 * head's takeover, since no name deletes it.
 */
export const unreadableTopics = (
  region: CxlMemoryShape,
  area: LogArea,
  find: (name: string) => TopicInfo | string | undefined
) => {
  const table = new DirectoryTable(region, area.directory)
  return (listed: ReadonlyArray<TopicInfo>): ReadonlyArray<UnreadableTopic> => {
    const held = new Set(listed.map((t) => `${t.id}:${t.generation}`))
    const unreadable: Array<UnreadableTopic> = []
    for (const { generation, slot } of table.liveSlots("topic")) {
      if (held.has(`${slot}:${generation}`)) continue
      const { entry } = table.read(slot)
      if (entry === undefined || entry.kind !== "topic") continue
      const why = find(entry.name)
      // Readable by now (made since the list), or deleted since: nothing left out.
      if (typeof why === "string") unreadable.push({ name: entry.name, reason: why })
    }
    // Entries that cannot be read themselves but still say a topic's name (its hash the topic kind's): said by
    // that name, as its lookup says it (what deletes it). One whose name cannot be read says no topic.
    const nameless: Array<number> = []
    for (const slot of table.unreadableSlots()) {
      const said = table.undecoded(slot)
      if (said === undefined) continue
      const name = said.name
      if (name === undefined) nameless.push(slot)
      if (name === undefined || said.hash !== nameHash("topic", encodeName(name))) continue
      const why = find(name)
      if (typeof why === "string") unreadable.push({ name, reason: why })
    }
    if (nameless.length > 0) unreadable.push(...namelessEntries(region, area, table, nameless))
    return unreadable
  }
}

/** The live entries at `slots`, whose names cannot be read, said by slot with the memory the page map says each holds. */
const namelessEntries = (
  region: CxlMemoryShape,
  area: LogArea,
  table: DirectoryTable,
  slots: ReadonlyArray<number>
): ReadonlyArray<UnreadableTopic> => {
  const held = new Map<number, number>()
  for (const h of spaceHolders(region, area.directory, heapBlocks(region, area.directory), table)) {
    if (h.kind === "unreadable" && h.slot !== undefined) held.set(h.slot, h.bytes)
  }
  return slots.map((slot) => ({
    name: "",
    slot,
    reason: `it holds ${
      mib(held.get(slot) ?? 0)
    } of the region's memory, and no topic's name deletes it: ${TAKEOVER_DELETES}`
  }))
}
