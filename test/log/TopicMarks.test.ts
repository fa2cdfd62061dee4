/**
 * Topic marks (TopicMarks.ts): a bit per topic under a summary bit per 1 024 topics. Every mark is
 * taken once, whichever group and summary word it is in; nothing is marked once all are taken; a
 * topic marked while the head takes the marks (after it passed that topic's word) stays for the
 * next take; the words of unmarked groups are not read.
 */
import { describe, expect, it } from "@effect/vitest"
import { defaultLogConfig } from "../../src/layers/log/Layout.js"
import { logRegionLayout } from "../../src/layers/log/LogRegion.js"
import { TopicMarks } from "../../src/layers/log/TopicMarks.js"
import { privateRegion } from "../../src/layers/region/CxlMemoryMemory.js"

/** 65 536 topic slots: 2 048 words under 64 groups, in two summary words. */
const layout = logRegionLayout(4096, defaultLogConfig, { entrySlots: 65_536, holderLines: 16, heapBytes: 1 << 20 })
const marksOver = () => {
  const region = privateRegion(Math.ceil(layout.bytes / 4096) * 4096)
  return { region, marks: new TopicMarks(region, layout.area) }
}
const taken = (marks: TopicMarks) => {
  const ids: Array<number> = []
  marks.take((id) => ids.push(id))
  return ids
}

describe("topic marks", () => {
  it("takes every mark once, in any group and summary word; then nothing is marked", () => {
    const { marks } = marksOver()
    const ids = [0, 31, 32, 1023, 1024, 5000, 32_767, 32_768, 40_000, 65_535]
    expect(marks.any()).toBe(false)
    for (const id of [...ids].reverse()) marks.mark(id)
    marks.mark(5000)
    expect(marks.any()).toBe(true)
    expect(taken(marks)).toEqual(ids)
    expect(marks.any()).toBe(false)
    expect(taken(marks)).toEqual([])
  })

  it("a topic marked while the marks are taken, after its word was passed, is there for the next take", () => {
    const { marks } = marksOver()
    marks.mark(2048)
    marks.mark(2049)
    const first: Array<number> = []
    marks.take((id) => {
      first.push(id)
      // A writer marks a topic of the same group and one of a group already passed.
      if (id === 2048) {
        marks.mark(2048)
        marks.mark(7)
      }
    })
    expect(first).toEqual([2048, 2049])
    expect(marks.any()).toBe(true)
    expect(taken(marks)).toEqual([7, 2048])
  })

  it("reads only the words of the groups the summary names", () => {
    const { marks, region } = marksOver()
    marks.mark(3000)
    // A bit in a word whose group's summary bit is clear (as a writer between its two stores): not taken yet.
    // The words start after the summary's line (16 words).
    const firstWord = layout.area.topicMarks / 4 + 16
    Atomics.or(region.u32, firstWord + (60_000 >>> 5), 1 << (60_000 & 31))
    expect(taken(marks)).toEqual([3000])
    // Its writer's summary store lands: the next take finds it.
    marks.mark(60_000)
    expect(taken(marks)).toEqual([60_000])
  })
})
