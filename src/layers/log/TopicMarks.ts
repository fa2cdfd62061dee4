/**
 * Topic marks: a bit per topic id (a directory slot) that a writer sets as it publishes an
 * append to the topic. A head round looks only at the marked topics and those its last look left
 * work in, not at every topic a writer ever wrote: with ten thousand topics, a batch costs the
 * round one topic, not ten thousand. (A writer that orders its own topic, AppenderRounds.ts,
 * leaves its mark too: the head's next look at it finds nothing new, cheaply.)
 *
 * The bits sit under a summary (a bit per 32 words, 1 024 topics): whether any topic is marked
 * is one load, and a round reads only the words of the groups marked, not 512 words for 16 384
 * topics every time it wakes.
 *
 * Why it is safe: a writer commits its batch, then sets the bit (and its summary bit), then reads
 * the head's `waiting` word before it rings; the head sets `waiting`, then looks at the summary (`any`). Atomics are
 * sequentially consistent, so either the head sees the bit or the writer sees `waiting`. The head
 * takes a word's bits by exchanging it with 0 before it scans their topics, so a bit set after
 * that stays for the next round, and its batch (committed before the bit) is seen by that scan or
 * the next. A writer that dies between its commit and its bit leaves its batch to the head's
 * once-a-second sweep of every topic.
 *
 * Only over a cache-coherent region: where atomics do not reach across hosts, the head's rounds
 * look at every topic.
 */
import { type CxlMemoryShape, LINE_BYTES } from "../../services/region/CxlMemory.js"
import type { LogArea } from "./Layout.js"

export class TopicMarks {
  /** The summary words: bit g of the summary says some word of group g (words 32g..32g+31) may have a bit set. */
  private readonly summary: number
  private readonly summaryWords: number
  private readonly first: number
  private readonly words: number

  constructor(private readonly region: CxlMemoryShape, area: LogArea) {
    this.words = Math.ceil(area.directory.config.entrySlots / 32)
    this.summaryWords = Math.ceil(this.words / 32)
    this.summary = area.topicMarks / 4
    this.first = this.summary + Math.ceil((this.summaryWords * 4) / LINE_BYTES) * (LINE_BYTES / 4)
  }

  /**
   * Marks topic `id`: the head's next round looks at it. The topic's bit first, then its group's
   * summary bit (the head takes them in the other order, so a bit it misses keeps its summary bit
   * for the next round). A bit already set is only read: writers of a busy topic then share its
   * line instead of taking it in turn (a load that reads the bit set comes before the head's
   * exchange that takes it, so that exchange follows the caller's commit).
   */
  mark(id: number): void {
    setOnce(this.region.u32, this.first + (id >>> 5), 1 << (id & 31))
    const group = id >>> 10
    setOnce(this.region.u32, this.summary + (group >>> 5), 1 << (group & 31))
  }

  /** Whether any topic is marked: the summary alone (a word per 32 768 topics). */
  any(): boolean {
    const { u32 } = this.region
    for (let s = 0; s < this.summaryWords; s++) if (Atomics.load(u32, this.summary + s) !== 0) return true
    return false
  }

  /** Takes every mark (each set bit cleared as it is taken), calling `visit` with its topic id: only the groups the summary names are read. */
  take(visit: (id: number) => void): void {
    const { u32 } = this.region
    for (let s = 0; s < this.summaryWords; s++) {
      if (Atomics.load(u32, this.summary + s) === 0) continue
      let groups = Atomics.exchange(u32, this.summary + s, 0)
      while (groups !== 0) {
        const low = groups & -groups
        groups ^= low
        const group = s * 32 + (31 - Math.clz32(low))
        const end = Math.min(this.words, group * 32 + 32)
        for (let w = group * 32; w < end; w++) this.takeWord(w, visit)
      }
    }
  }

  private takeWord(w: number, visit: (id: number) => void): void {
    const { u32 } = this.region
    const at = this.first + w
    if (Atomics.load(u32, at) === 0) return
    let bits = Atomics.exchange(u32, at, 0)
    while (bits !== 0) {
      const low = bits & -bits
      visit(w * 32 + (31 - Math.clz32(low)))
      bits ^= low
    }
  }
}

/** Sets `bit` of word `at`, reading it first: a bit already set costs a load, not a write to a shared line. */
const setOnce = (u32: Uint32Array, at: number, bit: number): void => {
  if ((Atomics.load(u32, at) & bit) === 0) Atomics.or(u32, at, bit)
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
