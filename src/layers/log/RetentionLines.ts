/**
 * What a topic holds for readers, as its head's retention line says (TopicRetention.ts moves it):
 * the first batch and the first message offset. Read under the line's sequence lock by every
 * process that reads or reclaims the topic; written by the head alone. Nothing below them is read,
 * and no cursor holds what lies below them: their memory is free for what comes next.
 */
import type { TopicInfo } from "../../services/log/Topics.js"
import { type CxlMemoryShape, LINE_BYTES } from "../../services/region/CxlMemory.js"
import type { LogArea } from "./Layout.js"
import { lowestDurableCursor } from "./Participants.js"
import { RetentionLineView } from "./RecordViews.js"

/** A topic's first batch (global seq) and first message offset held. */
export interface Retained {
  readonly firstBatch: number
  readonly firstOffset: number
}

export const NOTHING_TRIMMED: Retained = { firstBatch: 0, firstOffset: 0 }

const views = new WeakMap<CxlMemoryShape, RetentionLineView>()
const viewOf = (region: CxlMemoryShape) => {
  let view = views.get(region)
  if (view === undefined) views.set(region, view = new RetentionLineView(region))
  return view
}

/** Tries before a version left odd is read through: a head that died inside its write (the next head's write closes it). */
const READ_TRIES = 1_000

/**
 * Topic `t`'s retention line, read whole: a write in progress (a few stores) is waited out. One
 * left open by a dead head is read as it stands, each field whole: both only move forward, and a
 * batch read below the true trim is still checked intact by the reader's own seqlock.
 */
export const readRetained = (region: CxlMemoryShape, area: LogArea, t: number): Retained => {
  const view = viewOf(region)
  const at = area.retentionLine(t)
  for (let tries = 0;; tries++) {
    region.invalidate(at, LINE_BYTES)
    const before = view.version(at)
    const firstBatch = view.firstBatch(at)
    const firstOffset = view.firstOffset(at)
    if ((before % 2 === 0 && view.version(at) === before) || tries >= READ_TRIES) return { firstBatch, firstOffset }
  }
}

/** Writes topic `t`'s retention line (the head's): odd version, the fields, even version (one a dead head left odd is closed). */
export const writeRetained = (region: CxlMemoryShape, area: LogArea, t: number, retained: Retained): void => {
  const view = viewOf(region)
  const at = area.retentionLine(t)
  const current = view.version(at)
  const version = current % 2 === 0 ? current : current + 1
  view.storeVersion(at, version + 1)
  view.setFirstBatch(at, retained.firstBatch)
  view.setFirstOffset(at, retained.firstOffset)
  region.publish(at, LINE_BYTES)
  view.storeVersion(at, version + 2)
  region.publish(at, 4)
}

/**
 * The lowest batch of topic `info` that its readers still hold (Infinity when none does): under
 * discard `old` nothing a reader has is held; under `new`, its live durable cursors and named
 * consumers hold from their cursor, but never below what a trim dropped.
 */
export const heldFrom = (
  region: CxlMemoryShape,
  area: LogArea,
  info: TopicInfo,
  alive: (pid: number, occurrence: number) => boolean
): number => {
  if (info.retention?.discard === "old") return Infinity
  const lowest = lowestDurableCursor(region, area, info.id, alive)
  return lowest === Infinity ? Infinity : Math.max(lowest, readRetained(region, area, info.id).firstBatch)
}
