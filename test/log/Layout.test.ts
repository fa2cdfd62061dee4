import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import {
  defaultLogConfig,
  defaultTopicShape,
  GOI_ENTRY_BYTES,
  LOG_AREA_PARAMS,
  logAreaBytes,
  logAreaFromParams,
  logAreaParams,
  logConfigProblems,
  PBR_SLOT_BYTES,
  placeFor,
  resolveLogArea,
  SESSION_LINE_BYTES,
  TOPIC_DESCRIPTOR_BYTES,
  validateLogConfig
} from "../../src/layers/log/Layout.js"
import * as Views from "../../src/layers/log/RecordViews.js"
import { LANE_LINES_BYTES, laneTableBytes, type TopicShape } from "../../src/layers/log/TopicShape.js"
import { LINE_BYTES } from "../../src/services/region/CxlMemory.js"
import { SMALL_BLOG_BYTES, smallConfig, TEST_TOPICS, testRegion } from "../fixtures/log-harness.js"

describe("log layout", () => {
  it.effect("the defaults are valid and the area is whole pages", () =>
    Effect.gen(function*() {
      yield* validateLogConfig(defaultLogConfig)
      expect(logAreaBytes(defaultLogConfig, 16384) % 4096).toBe(0)
      expect(logAreaBytes(smallConfig, 16384)).toBeLessThanOrEqual(logAreaBytes(defaultLogConfig, 16384))
    }))

  it.effect("a configuration that cannot work is one typed error listing every problem and the effective configuration", () =>
    Effect.gen(function*() {
      const config = { ...smallConfig, pbrSlots: 100, goiSlots: 16 }
      const error = yield* Effect.flip(validateLogConfig(config))
      expect(error._tag).toBe("LogConfigInvalid")
      expect(error.problems).toHaveLength(2)
      expect(error.message).toContain("pbrSlots 100 (CXLOG_LOG_PBR_SLOTS) must be a power of two")
      expect(error.message).toContain("goiSlots 16 (CXLOG_LOG_GOI_SLOTS) is smaller than maxBrokers × 8 = 32")
      expect(error.message).toContain(
        `effective configuration: maxBrokers=4 pbrSlots=100 topicMemoryBytes=${config.topicMemoryBytes} topicWriters=4 goiSlots=16`
      )
      expect(logConfigProblems({ ...smallConfig, topicMemoryBytes: 16 << 10 })).toEqual([
        "a topic of the default memory and writers cannot be made: memory 16KiB gives each of 4 writer lanes less than 8KiB: give it at least 32KiB"
      ])
      expect(logConfigProblems({ ...smallConfig, maxBrokers: 0 })[0]).toContain("maxBrokers must be a positive integer")
    }))

  it.effect("a region too small for the area is reported with the bytes it needs", () =>
    Effect.gen(function*() {
      const directory = testRegion(smallConfig).area.directory
      const error = yield* Effect.flip(resolveLogArea(8192, smallConfig, 8192 + 64, directory))
      const bytes = logAreaBytes(smallConfig, directory.config.entrySlots)
      expect(error.message).toContain(`needs ${bytes} bytes at offset 8192`)
      const area = yield* resolveLogArea(8192, smallConfig, 8192 + bytes, directory)
      expect(area.base).toBe(8192)
    }))

  it("records never overlap, stay inside the area, their topic's main extent or its lanes, and are line aligned", () => {
    const area = testRegion(smallConfig).area
    const c = smallConfig
    const shape = defaultTopicShape(c) as TopicShape
    const spans: Array<[string, number, number]> = []
    const inside = (name: string, offset: number, length: number, from: number, bytes: number) => {
      expect(offset % 64, name).toBe(0)
      expect(offset, name).toBeGreaterThanOrEqual(from)
      expect(offset + length, name).toBeLessThanOrEqual(from + bytes)
      spans.push([name, offset, length])
    }
    for (let b = 0; b < c.maxBrokers; b++) inside(`owner ${b}`, area.brokerOwner(b), LINE_BYTES, area.base, area.bytes)
    for (let i = 0; i < c.listenerSlots; i++) {
      inside(`listener ${i}`, area.listener(i), LINE_BYTES, area.base, area.bytes)
    }
    inside("lane answers", area.laneAnswers, LINE_BYTES + c.maxBrokers * 8, area.base, area.bytes)
    inside("topic marks", area.topicMarks, area.directory.config.entrySlots / 8, area.base, area.bytes)
    // Each topic's main extent, then a lane for every writer, one after the other, as the directory would hand them out.
    const topicBytes = shape.mainBytes + shape.writers * shape.laneBytes
    for (let t = 0; t < TEST_TOPICS; t++) {
      const offset = area.directory.heap + t * topicBytes
      const place = placeFor(c, shape, offset, shape.mainBytes, t + 1)
      for (let b = 0; b < shape.writers; b++) place.lanes[b] = offset + shape.mainBytes + b * shape.laneBytes
      area.place(t, place)
    }
    expect(area.blogBytes(0)).toBeGreaterThanOrEqual(SMALL_BLOG_BYTES)
    for (let t = 0; t < TEST_TOPICS; t++) {
      const main = area.placeOf(t).offset
      const inMain = (name: string, offset: number, length: number) =>
        inside(name, offset, length, main, shape.mainBytes)
      inMain(`descriptor ${t}`, area.descriptor(t), TOPIC_DESCRIPTOR_BYTES)
      inMain(`order ${t}`, area.orderLine(t), LINE_BYTES)
      inMain(`registry ${t}`, area.registryLine(t), LINE_BYTES)
      inMain(`retention ${t}`, area.retentionLine(t), LINE_BYTES)
      inMain(`lane table ${t}`, area.laneTable(t), laneTableBytes(c.maxBrokers))
      inMain(`sessions ${t}`, area.sessions(t), shape.sessionSlots * SESSION_LINE_BYTES)
      inMain(`goi ${t}`, area.goi(t), shape.goiSlots * GOI_ENTRY_BYTES)
      for (let i = 0; i < c.subscriberSlots; i++) inMain(`subscriber ${t}/${i}`, area.subscriber(t, i), LINE_BYTES)
      for (let b = 0; b < shape.writers; b++) {
        const lane = area.laneOf(t, b)
        const inLane = (name: string, offset: number, length: number) =>
          inside(name, offset, length, lane, shape.laneBytes)
        inLane(`broker line ${t}/${b}`, area.brokerLine(t, b), LINE_BYTES)
        inLane(`sequencer line ${t}/${b}`, area.sequencerLine(t, b), LINE_BYTES)
        inLane(`replica line ${t}/${b}`, area.replicaLine(t, b), LINE_BYTES)
        expect(area.pbr(t, b) - lane).toBe(LANE_LINES_BYTES)
        inLane(`pbr ${t}/${b}`, area.pbr(t, b), shape.pbrSlots * PBR_SLOT_BYTES)
        inLane(`blog ${t}/${b}`, area.blog(t, b), area.blogBytes(t))
      }
    }
    spans.sort((a, b) => a[1] - b[1])
    for (let i = 0; i < spans.length; i++) {
      const [name, offset] = spans[i]!
      if (i > 0) {
        expect(offset, `${name} overlaps ${spans[i - 1]![0]}`).toBeGreaterThanOrEqual(
          spans[i - 1]![1] + spans[i - 1]![2]
        )
      }
    }
  })

  it("a lane not read is a defect with a message, never another topic's bytes", () => {
    const area = testRegion(smallConfig).area
    const shape = defaultTopicShape(smallConfig) as TopicShape
    area.place(0, placeFor(smallConfig, shape, area.directory.heap, shape.mainBytes, 1))
    expect(area.laneOf(0, 1)).toBe(0)
    expect(() => area.pbr(0, 1)).toThrow("the lane of writer 1 of topic 0 is used before this process read it")
    expect(() => area.orderLine(3)).toThrow("the place of topic 3 is used before this process read it")
  })

  it("superblock parameters round-trip the base and the configuration", () => {
    const params = [7, 8, ...logAreaParams(12288, smallConfig)]
    expect(params).toHaveLength(2 + LOG_AREA_PARAMS)
    expect(logAreaFromParams(params, 2)).toEqual({ base: 12288, config: smallConfig })
  })
})

/** Every record view with the span of its record. */
const recordViews = (words: Views.RecordWords): ReadonlyArray<[string, object, number]> => [
  ["PBR slot", new Views.PbrSlotView(words), PBR_SLOT_BYTES],
  ["GOI entry", new Views.GoiEntryView(words), GOI_ENTRY_BYTES],
  ["session line", new Views.SessionLineView(words), SESSION_LINE_BYTES],
  ["registry line", new Views.RegistryLineView(words), LINE_BYTES],
  ["order line", new Views.OrderLineView(words), LINE_BYTES],
  ["broker line", new Views.BrokerLineView(words), LINE_BYTES],
  ["sequencer line", new Views.SequencerLineView(words), LINE_BYTES],
  ["lease line", new Views.LeaseLineView(words), LINE_BYTES],
  ["lane answers", new Views.LaneAnswersView(words), LINE_BYTES],
  ["participant line", new Views.ParticipantLineView(words), LINE_BYTES],
  ["subscriber line", new Views.SubscriberLineView(words), LINE_BYTES],
  ["topic descriptor", new Views.DescriptorView(words), TOPIC_DESCRIPTOR_BYTES]
]

const bufferWords = (bytes: number) => {
  const buffer = new ArrayBuffer(bytes)
  return {
    i32: new Int32Array(buffer),
    u32: new Uint32Array(buffer),
    f64: new Float64Array(buffer),
    bytes: new Uint8Array(buffer)
  }
}

describe("record views", () => {
  it("each field has its own place inside its record: every field written reads back, nothing lands outside", () => {
    const words = bufferWords(3 * 256)
    const at = 256
    for (const [record, view, span] of recordViews(words)) {
      words.bytes.fill(0)
      const methods = view as unknown as Record<string, (at: number, v?: number) => number>
      // One writer per field (set, store, or add onto zero) and the reader of the same name.
      const fields = new Map<string, string>()
      for (const name of Object.getOwnPropertyNames(Object.getPrototypeOf(view))) {
        const reader = /^(?:set|store|add)([A-Z].*)$/.exec(name)?.[1]?.replace(/^./, (c) => c.toLowerCase())
        if (reader !== undefined && typeof methods[reader] === "function" && !fields.has(reader)) {
          fields.set(reader, name)
        }
      }
      expect(fields.size, record).toBeGreaterThan(0)
      // Distinct small values fit every field type (u32, i32, f64), so two fields sharing bytes show up.
      const written = [...fields].map(([reader, writer], i) => {
        methods[writer]!.call(view, at, i + 1)
        return [reader, i + 1] as const
      })
      for (const [reader, value] of written) expect(methods[reader]!.call(view, at), `${record}: ${reader}`).toBe(value)
      const outside = [...words.bytes.subarray(0, at), ...words.bytes.subarray(at + span)]
      expect(outside.every((b) => b === 0), `${record} writes outside its ${span} bytes`).toBe(true)
    }
  })

  it("commit words name their position: a PBR slot's commit and finish, a GOI entry's global seq", () => {
    const words = bufferWords(PBR_SLOT_BYTES)
    const slots = new Views.PbrSlotView(words)
    expect(slots.committed(0, 0)).toBe(false)
    slots.commit(0, 9)
    expect([slots.committed(0, 9), slots.committed(0, 1), slots.committed(0, 17)]).toEqual([true, false, false])
    expect(slots.finished(0, 9)).toBe(false)
    slots.finish(0, 9)
    expect([slots.finished(0, 9), slots.finished(0, 17)]).toEqual([true, false])
    const entries = new Views.GoiEntryView(words)
    const g = 2 ** 40 + 5
    entries.setSeqHigh(0, g)
    entries.commitSeq(0, g)
    expect([entries.holds(0, g), entries.holds(0, g + 1), entries.holds(0, g + 2 ** 31)]).toEqual([true, false, false])
    entries.markRewriting(0)
    expect(entries.holds(0, g)).toBe(false)
  })
})
