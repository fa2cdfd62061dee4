/**
 * Room in a broker's PBR and Blog for one topic, as absolute positions (`AppendCursors`),
 * wherever they live: the arithmetic both the live appender and its fake run.
 *
 * PBR slots and Blog bytes are reused only when the sequencer has consumed them and every
 * live registered subscriber has read past them. Each batch starts on a 64-byte line; one
 * that would straddle the Blog's end starts at its beginning instead. A freed PBR slot's
 * payload stays readable until the Blog needs its bytes: the Blog tail (what readers check)
 * moves only when an append lacks Blog room, so the hot tier holds what the GOI and the Blog
 * hold, not merely what is still in the PBR (docs/log.md, "What the hot tier holds").
 */

/** What is full when a batch cannot be appended now. */
export type Full = "pbr" | "blog"

/** A broker's cursors over one topic's PBR and Blog, as absolute positions (the region's broker line, or the store's broker). */
export interface AppendCursors {
  /** The next PBR position; positions before `reclaimed` may be reused. */
  head: number
  reclaimed: number
  /** The next Blog byte; bytes before `blogTail` may be reused (readers take a batch starting before it as gone). */
  blogHead: number
  blogTail: number
  appendedMessages: number
  ringFullWaits: number
}

/** Where a batch of `bytes` (line-aligned) would start in the Blog, or what is full. */
export const reserve = (c: AppendCursors, bytes: number, pbrSlots: number, blogBytes: number): number | Full => {
  if (c.head - c.reclaimed >= pbrSlots) return "pbr"
  const offset = c.blogHead % blogBytes
  const position = offset + bytes > blogBytes ? c.blogHead + blogBytes - offset : c.blogHead
  return position + bytes - c.blogTail <= blogBytes ? position : "blog"
}

/** What reclaiming reads of a broker's PBR slots, wherever they live. */
export interface ReclaimSource {
  /** The lowest cursor of the topic's live durable subscribers (Infinity if none): nothing from it on is reused. */
  lowestCursor(): number
  /** The sequencer finished the slot at PBR position `pbrSeq`. */
  finished(pbrSeq: number): boolean
  /** Its global seq, or a `Dropped` code. */
  globalSeq(pbrSeq: number): number
  /** Where its payload starts in the Blog. */
  blogPosition(pbrSeq: number): number
}

/**
 * reclaim: frees the broker's finished slots before `consumed`, oldest first, up to the first
 * one a durable subscriber still needs. Their payloads stay where they are, readable, until
 * `releaseBlog` moves the tail past them. Returns how many it freed.
 */
export const reclaim = (c: AppendCursors, consumed: number, slots: ReclaimSource): number => {
  if (!(c.reclaimed < consumed)) return 0
  const lowest = slots.lowestCursor()
  const before = c.reclaimed
  while (c.reclaimed < consumed) {
    const pbrSeq = c.reclaimed
    if (!slots.finished(pbrSeq)) break
    const globalSeq = slots.globalSeq(pbrSeq)
    if (globalSeq >= 0 && globalSeq >= lowest) break
    c.reclaimed = pbrSeq + 1
  }
  return c.reclaimed - before
}

/**
 * releaseBlog: moves the Blog tail over freed payloads (those before the oldest slot still in
 * the PBR) as far as a batch of `bytes` at the next position needs, and an eighth of the Blog
 * further so the tail is published about eight times a lap, not at every append; never when
 * what is freed would not make that room. Returns whether the tail moved.
 */
export const releaseBlog = (c: AppendCursors, bytes: number, blogBytes: number, slots: ReclaimSource): boolean => {
  const offset = c.blogHead % blogBytes
  const position = offset + bytes > blogBytes ? c.blogHead + blogBytes - offset : c.blogHead
  const needed = position + bytes - blogBytes
  if (needed <= c.blogTail) return false
  const free = c.reclaimed < c.head ? slots.blogPosition(c.reclaimed) : c.blogHead
  if (free < needed) return false
  c.blogTail = Math.min(free, needed + blogBytes / 8)
  return true
}

/** The global seq of the batch `reclaim` stopped at because a durable cursor still needs it, or undefined (nothing held, or the sequencer's to finish). */
export const heldBatch = (c: AppendCursors, consumed: number, slots: ReclaimSource): number | undefined => {
  if (!(c.reclaimed < consumed) || !slots.finished(c.reclaimed)) return undefined
  const g = slots.globalSeq(c.reclaimed)
  return g >= 0 && g >= slots.lowestCursor() ? g : undefined
}
