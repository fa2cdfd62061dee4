/**
 * A consumer group's object as a process opens it: its directory entry, the config its header
 * holds (checked: a foreign or damaged extent is `GroupCorrupt`, and no offset of it is used),
 * and the views of its tables over the region's bytes.
 */
import { Effect } from "effect"
import { GroupCorrupt, GroupNotFound } from "../../services/groups/ConsumerGroups.js"
import type { CxlMemoryShape } from "../../services/region/CxlMemory.js"
import type { DirectoryEntry, DirectoryShape } from "../../services/region/Directory.js"
import { GroupBuckets } from "./GroupBuckets.js"
import { GroupClaims } from "./GroupClaims.js"
import { type Counter, decodeHeader, type GroupConfig, type GroupLayout, groupLayout } from "./GroupLayout.js"
import { ClaimLiveness, GroupMembers } from "./GroupMembers.js"
import { GroupPending } from "./GroupPending.js"
import { GroupWords } from "./GroupWords.js"

export interface GroupObject {
  readonly name: string
  readonly entry: DirectoryEntry
  readonly config: GroupConfig
  readonly layout: GroupLayout
  readonly words: GroupWords
  readonly members: GroupMembers
  readonly pending: GroupPending
  readonly buckets: GroupBuckets
  readonly claims: GroupClaims
  /** The frontier of a group without keys: the next offset to hand out. */
  readonly frontier: () => number
  readonly counter: (which: Counter) => number
  readonly count: (which: Counter, n?: number) => void
}

/** The group of `entry`, over `region`; why not when its extent does not read as one. */
export const groupOf = (
  region: CxlMemoryShape,
  entry: DirectoryEntry,
  liveness: ClaimLiveness
): GroupObject | GroupCorrupt => {
  const { offset, bytes } = entry.extent
  if (offset < 0 || offset % 64 !== 0 || offset + bytes > region.size) {
    return new GroupCorrupt({ group: entry.name, reason: `its extent [${offset}, +${bytes}) lies outside the region` })
  }
  const config = decodeHeader(region.bytes, offset, bytes)
  if (typeof config === "string") return new GroupCorrupt({ group: entry.name, reason: config })
  const layout = groupLayout(offset, config)
  const words = new GroupWords(region)
  const members = new GroupMembers(words, layout, liveness)
  const claims = new GroupClaims(words, layout)
  return {
    name: entry.name,
    entry,
    config,
    layout,
    words,
    members,
    pending: new GroupPending(words, layout, members),
    buckets: new GroupBuckets(words, layout),
    claims,
    frontier: () => claims.read().offset,
    counter: (which) => words.number64(layout.counter(which)),
    count: (which, n = 1) => words.add64(layout.counter(which), n)
  }
}

/** Opens the group named `name` through `directory`. */
export const openGroup = (
  region: CxlMemoryShape,
  directory: DirectoryShape,
  name: string,
  liveness: ClaimLiveness
): Effect.Effect<GroupObject, GroupNotFound | GroupCorrupt> =>
  directory.lookup("group", name).pipe(
    Effect.catchTag("ObjectNotFound", () => Effect.fail(new GroupNotFound({ group: name }))),
    Effect.flatMap((entry) => {
      const group = groupOf(region, entry, liveness)
      return group instanceof GroupCorrupt ? Effect.fail(group) : Effect.succeed(group)
    })
  )
