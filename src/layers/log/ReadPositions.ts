/**
 * Where a reader stands in a topic's total order, over a `ReadTopic` wherever its bytes live: the
 * message offsets it holds (`boundsOf`), and where a subscription from an offset (`locate`) or a
 * time (`locateTime`) starts — a binary search over the retained window of the GOI. A trim's first
 * offset (`ReadTopic.firstOffset`) bounds them: nothing before it is held.
 */
import type { SubscribeOptions } from "../../services/log/LogReader.js"
import { findMessageTime } from "./MessageTime.js"
import type { ReadTopic } from "./ReadSource.js"
import { BatchView } from "./ReadViews.js"

/** Message offsets: the earliest retained and the end. */
export const boundsOf = (t: ReadTopic) => {
  const committed = t.committed()
  const first = t.firstHeld(committed)
  const total = t.total()
  const held = first < committed ? t.totalOrderOf(first) ?? total : total
  return { earliest: Math.min(total, Math.max(held, t.firstOffset())), end: total }
}

/** Finds where a subscription starts: the batch holding message offset `from` (binary search over the retained window). */
export const locate = (
  t: ReadTopic,
  from: SubscribeOptions["from"]
): { next: number; position: number; skip: number } | "out-of-range" => {
  const committed = t.committed()
  const first = t.firstHeld(committed)
  const total = t.total()
  if (from === "latest") return { next: committed, position: total, skip: 0 }
  const firstOrder = first < committed ? t.totalOrderOf(first) : total
  if (firstOrder === undefined) return "out-of-range"
  // A trim inside the first batch held: its first offset starts the topic.
  const trimmed = t.firstOffset()
  const earliest = Math.min(total, Math.max(firstOrder, trimmed))
  if (from === undefined || from === "earliest") {
    return earliest === firstOrder ? { next: first, position: firstOrder, skip: 0 } : locate(t, earliest)
  }
  if (!Number.isSafeInteger(from) || from < earliest || from > total) return "out-of-range"
  if (from === total) return { next: committed, position: total, skip: 0 }
  let lo = first
  let hi = committed - 1
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2)
    const order = t.totalOrderOf(mid)
    if (order === undefined) return "out-of-range"
    if (order <= from) lo = mid
    else hi = mid - 1
  }
  const order = t.totalOrderOf(lo)
  return order === undefined ? "out-of-range" : { next: lo, position: from, skip: from - order }
}

/** Batch `g`'s base timestamp (its first message's), or undefined once it has left the retained window. */
const baseTimeOf = (t: ReadTopic, g: number, view: BatchView): number | undefined => {
  if (t.load(g, view) !== "ok") return undefined
  let base: number | undefined
  findMessageTime(view.bytes, view.offset, view.length, 1, (ms) => {
    base = ms
    return true
  })
  return t.stillThere(g, view) ? base : undefined
}

/**
 * Where a subscription from time `ms` starts: the first retained message whose timestamp is at or
 * after `ms` (the end if none is yet). The batches are searched by their base timestamps, which
 * follow the total order as far as the publishers' clocks agree (docs/log.md, "Positions by
 * time"); within the batch found, its messages' own timestamps decide. "out-of-range" when the
 * window moved under every one of a few tries.
 */
export const locateTime = (
  t: ReadTopic,
  ms: number
): { next: number; position: number; skip: number } | "out-of-range" => {
  const view = new BatchView()
  for (let attempt = 0; attempt < 3; attempt++) {
    const committed = t.committed()
    const first = t.firstHeld(committed)
    if (first >= committed) return { next: committed, position: t.total(), skip: 0 }
    const firstBase = baseTimeOf(t, first, view)
    if (firstBase === undefined) continue
    const firstOrder = t.totalOrderOf(first)
    if (firstOrder === undefined) continue
    // Before every message held: the earliest, which a trim inside the first batch moves up.
    if (firstBase >= ms) {
      return firstOrder >= t.firstOffset()
        ? { next: first, position: firstOrder, skip: 0 }
        : locate(t, "earliest")
    }
    // The last batch whose base is at or before `ms`: the message sought is in it or starts the next.
    let lo = first
    let hi = committed - 1
    let moved = false
    while (lo < hi) {
      const mid = Math.ceil((lo + hi) / 2)
      const base = baseTimeOf(t, mid, view)
      if (base === undefined) {
        moved = true
        break
      }
      if (base <= ms) lo = mid
      else hi = mid - 1
    }
    if (moved || t.load(lo, view) !== "ok") continue
    const index = findMessageTime(view.bytes, view.offset, view.length, view.messageCount, (at) => at >= ms)
    const order = t.totalOrderOf(lo)
    if (!t.stillThere(lo, view) || order === undefined) continue
    if (index >= 0) return { next: lo, position: order + index, skip: index }
    if (lo + 1 >= committed) return { next: committed, position: t.total(), skip: 0 }
    const nextOrder = t.totalOrderOf(lo + 1)
    if (nextOrder !== undefined) return { next: lo + 1, position: nextOrder, skip: 0 }
  }
  return "out-of-range"
}
