/**
 * A session line's ahead bitmap (its second 64 bytes, orders 0/2/4): bit i (word i >> 5, bit
 * i & 31) says batch next + 1 + i of the session is ordered above its frontier `next`.
 */
import { Data } from "effect"
import { AHEAD_WINDOW } from "./Records.js"
import type { SessionLineView } from "./RecordViews.js"
import type { SessionFields } from "./SessionFields.js"

/** A defect of the caller: a batch ordered ahead further above the frontier than the bitmap reaches. */
export class AheadOutOfWindow
  extends Data.TaggedError("AheadOutOfWindow")<{ readonly seq: number; readonly next: number }>
{
  override get message() {
    return `session line: batch ${this.seq} is outside the ahead window of frontier ${this.next}`
  }
}

/** Bitmap words of the ahead line. */
export const AHEAD_WORDS = AHEAD_WINDOW / 32

/** The bitmap words `aheadWords` fills (one table writes at a time). */
const aheadScratch = new Uint32Array(AHEAD_WORDS)

/**
 * The session's ahead bitmap as words (in a shared scratch array), or undefined when it has none.
 * A seq outside the window is a defect of the caller (the engine holds a batch further out), thrown
 * before the line is touched.
 */
export const aheadWords = (fields: SessionFields): Uint32Array | undefined => {
  if (fields.ahead === undefined || fields.ahead.size === 0) return undefined
  aheadScratch.fill(0)
  for (const seq of fields.ahead) {
    const i = seq - fields.next - 1
    if (!(i >= 0 && i < AHEAD_WINDOW)) throw new AheadOutOfWindow({ seq, next: fields.next })
    aheadScratch[i >>> 5]! |= 1 << (i & 31)
  }
  return aheadScratch
}

/** The ahead bitmap of the session line at `line` as batch seqs (a frontier that is not a count reads as none). */
export const readAhead = (lines: SessionLineView, line: number, next: number): ReadonlySet<number> => {
  const ahead = new Set<number>()
  if (!Number.isSafeInteger(next) || next < 0) return ahead
  for (let w = 0; w < AHEAD_WORDS; w++) {
    const word = lines.aheadWord(line, w)
    if (word === 0) continue
    for (let bit = 0; bit < 32; bit++) if ((word >>> bit) & 1) ahead.add(next + 1 + w * 32 + bit)
  }
  return ahead
}
