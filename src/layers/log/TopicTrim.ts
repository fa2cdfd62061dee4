/**
 * Where a trim cuts a topic (`trimPoint`), over a `ReadTopic` wherever its bytes live: the first
 * batch and message offset it keeps. The same code serves `Topics.trim` and `purge`, and the head's
 * retention (TopicRetention.ts: `maxMessages` is a trim keeping that many, `maxAgeMs` one before
 * the first message that young).
 *
 * The cut is a message offset; its batch is found by a binary search over the GOI (each entry's
 * total order never changes), so the pair (first batch, first offset) always agrees, whatever
 * another process orders meanwhile. The end is taken from the last committed batch's own entry, not
 * from the order line, whose frontier and total are two words another process may be between.
 */
import type { TrimTarget } from "../../services/log/Topics.js"
import { locate, locateTime } from "./ReadPositions.js"
import type { ReadTopic } from "./ReadSource.js"
import { BatchView } from "./ReadViews.js"
import type { Retained } from "./RetentionLines.js"

/** The committed batches and the message offset after them, from one GOI entry; undefined if it left the window as it was read. */
const endOf = (t: ReadTopic, view: BatchView): { readonly committed: number; readonly end: number } | undefined => {
  const committed = t.committed()
  if (committed === 0) return { committed, end: 0 }
  if (t.load(committed - 1, view) !== "ok") return undefined
  const end = view.totalOrder + view.messageCount
  return t.stillThere(committed - 1, view) ? { committed, end } : undefined
}

/** The message offset `target` cuts before, given the topic's end; undefined when the window moved under a search. */
const cutOf = (t: ReadTopic, target: TrimTarget, end: number): number | undefined => {
  if ("beforeOffset" in target) return Math.min(target.beforeOffset, end)
  if ("keepMessages" in target) return Math.max(0, end - target.keepMessages)
  const at = locateTime(t, target.beforeTime)
  return at === "out-of-range" ? undefined : Math.min(at.position, end)
}

/**
 * What `t` keeps after a trim to `target`, never less than it kept (`now`): the batch holding the
 * cut offset and the offset itself. "moved" when the retained window moved under the search (the
 * caller tries again).
 */
export const trimPoint = (t: ReadTopic, target: TrimTarget, now: Retained): Retained | "moved" => {
  // Nothing held (purged, trimmed or aged to its end): no batch to read the end from, and nothing to cut.
  if (now.firstBatch >= t.committed()) return now
  const view = new BatchView()
  const bounds = endOf(t, view)
  if (bounds === undefined) return "moved"
  const { committed, end } = bounds
  const cut = cutOf(t, target, end)
  if (cut === undefined) return "moved"
  if (cut <= now.firstOffset) return now
  if (cut >= end) return { firstBatch: committed, firstOffset: end }
  const first = t.firstHeld(committed)
  const held = first < committed ? t.totalOrderOf(first) : end
  if (held === undefined) return "moved"
  // What the window no longer holds is gone already: the cut starts at the first batch held.
  if (cut <= held) return { firstBatch: Math.max(first, now.firstBatch), firstOffset: cut }
  const at = locate(t, cut)
  return at === "out-of-range" ? "moved" : { firstBatch: at.next, firstOffset: cut }
}

/** Tries a trim point gets before the window's moves fail it (each move is another process's round: rare). */
export const TRIM_TRIES = 5
