/**
 * Topic marks: a bit per topic id (a directory slot) that a writer sets as it publishes an
 * append to the topic. A head round looks only at the marked topics and those its last look left
 * work in, not at every topic a writer ever wrote: with ten thousand topics, a batch costs the
 * round one topic, not ten thousand. (A writer that orders its own topic, AppenderRounds.ts,
 * leaves its mark too: the head's next look at it finds nothing new, cheaply.)
 *
 * Why it is safe: a writer commits its batch, then sets the bit, then reads the head's `waiting`
 * word before it rings; the head sets `waiting`, then looks at the bits (`any`). Atomics are
 * sequentially consistent, so either the head sees the bit or the writer sees `waiting`. The head
 * takes a word's bits by exchanging it with 0 before it scans their topics, so a bit set after
 * that stays for the next round, and its batch (committed before the bit) is seen by that scan or
 * the next. A writer that dies between its commit and its bit leaves its batch to the head's
 * once-a-second sweep of every topic.
 *
 * Only over a cache-coherent region: where atomics do not reach across hosts, the head's rounds
 * look at every topic.
 */
import type { CxlMemoryShape } from "../../services/region/CxlMemory.js"
import type { LogArea } from "./Layout.js"

export class TopicMarks {
  private readonly first: number
  private readonly words: number

  constructor(private readonly region: CxlMemoryShape, area: LogArea) {
    this.first = area.topicMarks / 4
    this.words = Math.ceil(area.directory.config.entrySlots / 32)
  }

  /**
   * Marks topic `id`: the head's next round looks at it. A bit already set is only read: writers of
   * a busy topic then share its line instead of taking it in turn (a load that reads the bit set
   * comes before the head's exchange that takes it, so that exchange follows the caller's commit).
   */
  mark(id: number): void {
    const at = this.first + (id >>> 5)
    const bit = 1 << (id & 31)
    if ((Atomics.load(this.region.u32, at) & bit) === 0) Atomics.or(this.region.u32, at, bit)
  }

  /** Whether any topic is marked. */
  any(): boolean {
    const { u32 } = this.region
    for (let w = 0; w < this.words; w++) if (Atomics.load(u32, this.first + w) !== 0) return true
    return false
  }

  /** Takes every mark (each set bit cleared as it is taken), calling `visit` with its topic id. */
  take(visit: (id: number) => void): void {
    const { u32 } = this.region
    for (let w = 0; w < this.words; w++) {
      const at = this.first + w
      if (Atomics.load(u32, at) === 0) continue
      let bits = Atomics.exchange(u32, at, 0)
      while (bits !== 0) {
        const low = bits & -bits
        visit(w * 32 + (31 - Math.clz32(low)))
        bits ^= low
      }
    }
  }
}

const byRegion = new WeakMap<CxlMemoryShape, TopicMarks>()

/** The marks of `region`'s topics, made once per mapping; undefined where they cannot be trusted (not cache-coherent). */
export const topicMarks = (region: CxlMemoryShape, area: LogArea): TopicMarks | undefined => {
  if (region.coherence !== "coherent") return undefined
  let marks = byRegion.get(region)
  if (marks === undefined) {
    marks = new TopicMarks(region, area)
    byRegion.set(region, marks)
  }
  return marks
}
