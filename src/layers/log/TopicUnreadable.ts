/**
 * Deleting a region's topic that cannot be read: its descriptor damaged (its entry sound), or its
 * directory entry itself damaged while it still says the topic's name. What such a topic held cannot
 * be read; deleting it is the way to its name and memory again (docs/region.md).
 */
import { Effect } from "effect"
import { type TopicInfo, TopicNotFound } from "../../services/log/Topics.js"
import { type CxlMemoryShape, LINE_BYTES } from "../../services/region/CxlMemory.js"
import type { DirectoryWriterShape, NotDirectoryWriter } from "../../services/region/Directory.js"
import { DirectoryTable } from "../region/DirectoryTable.js"
import type { LogArea } from "./Layout.js"
import { DescriptorState } from "./Records.js"
import { DescriptorView } from "./RecordViews.js"
import { readTopicEntry } from "./TopicDescriptors.js"
import { TOPIC_DESCRIPTOR_BYTES } from "./TopicShape.js"

/**
 * Deletes the topic of that name whose directory entry is sound and whose descriptor is not (so no
 * `TopicInfo` can be had of it), as a readable one is deleted (`removeReadable`). Its descriptor is marked
 * deleted only where the entry's extent lies in the heap (where else it would be another part's bytes).
 */
export const removeUnreadableTopic = (
  region: CxlMemoryShape,
  area: LogArea,
  writer: DirectoryWriterShape,
  name: string,
  why: string,
  removeReadable: (info: TopicInfo) => Effect.Effect<void, TopicNotFound | NotDirectoryWriter>
) =>
  Effect.suspend(() => {
    const table = new DirectoryTable(region, area.directory)
    const { corrupt, found } = table.probe("topic", name)
    if (found === undefined) return removeCorruptEntry(table, writer, name, corrupt, why)
    // Read whole since the look that sent it here: deleted as any topic is.
    const readable = readTopicEntry(region, area, found)
    if (readable !== undefined) return removeReadable(readable)
    const at = found.extent.offset
    const { heap, config } = area.directory
    if (at >= heap && at + TOPIC_DESCRIPTOR_BYTES <= heap + config.heapBytes) {
      new DescriptorView(region).storeState(at, DescriptorState.deleted)
      region.publish(at, LINE_BYTES)
    }
    return writer.remove(found).pipe(Effect.catchTag("ObjectDeleted", () => Effect.fail(new TopicNotFound({ name }))))
  })

/**
 * Deletes the topic of that name whose directory entry itself is corrupt (`corrupt`, the first of
 * its name's hash that does not decode) when the entry still says the name: of the topic kind's hash
 * and this name, it is this topic's. It is removed by its slot and generation as any object is, so
 * its readers let go of it and its memory is what the page map says that entry owns, never another
 * object's. An entry whose name cannot be read names no topic: it is not deleted.
 */
const removeCorruptEntry = (
  table: DirectoryTable,
  writer: DirectoryWriterShape,
  name: string,
  corrupt: number,
  why: string
) => {
  const entry = corrupt < 0 ? undefined : table.undecoded(corrupt)
  if (entry?.name !== name) return Effect.fail(new TopicNotFound({ name, unreadable: why }))
  // Only its slot, generation, kind and name are used by a removal; its extent is the page map's.
  const removed = {
    slot: corrupt,
    generation: entry.generation,
    kind: "topic",
    name,
    extent: { offset: 0, bytes: 0 },
    params: [],
    createdAtMs: 0
  } as const
  return writer.remove(removed).pipe(Effect.catchTag("ObjectDeleted", () => Effect.fail(new TopicNotFound({ name }))))
}
