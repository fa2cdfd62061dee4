import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import {
  blogBytesOf,
  defaultLogConfig,
  GOI_ENTRY_BYTES,
  LOG_AREA_PARAMS,
  logAreaBytes,
  logAreaFromParams,
  logAreaParams,
  logConfigProblems,
  minTopicBytes,
  PBR_SLOT_BYTES,
  resolveLogArea,
  roundedTopicBytes,
  SESSION_LINE_BYTES,
  TOPIC_DESCRIPTOR_BYTES,
  validateLogConfig,
  withBlogBytes
} from "../../src/layers/log/Layout.js"
import * as Views from "../../src/layers/log/RecordViews.js"
import { LINE_BYTES } from "../../src/services/region/CxlMemory.js"
import { SMALL_BLOG_BYTES, smallConfig, TEST_TOPICS, testRegion } from "../fixtures/log-harness.js"

describe("log layout", () => {
  it.effect("the defaults are valid and the area is whole pages", () =>
    Effect.gen(function*() {
      yield* validateLogConfig(defaultLogConfig)
      expect(logAreaBytes(defaultLogConfig) % 4096).toBe(0)
      expect(logAreaBytes(smallConfig)).toBeLessThanOrEqual(logAreaBytes(defaultLogConfig))
    }))

  it.effect("a configuration that cannot work is one typed error listing every problem and the effective configuration", () =>
    Effect.gen(function*() {
      const config = withBlogBytes(
        { ...smallConfig, maxBatchBytes: 64 << 10, pbrSlots: 100, goiSlots: 1024 },
        64 << 10
      )
      const error = yield* Effect.flip(validateLogConfig(config))
      expect(error._tag).toBe("LogConfigInvalid")
      expect(error.problems).toHaveLength(2)
      expect(error.message).toContain("pbrSlots 100 must be a power of two")
      expect(error.message).toContain(
        `topicMemoryBytes ${config.topicMemoryBytes} leaves each of 4 writer lanes less than two batches of maxBatchBytes=65536: give topics at least ${
          minTopicBytes(config)
        } bytes`
      )
      expect(error.message).toContain(
        `effective configuration: maxBrokers=4 pbrSlots=100 topicMemoryBytes=${config.topicMemoryBytes} goiSlots=1024`
      )
      expect(logConfigProblems({ ...smallConfig, goiSlots: 128 })[0]).toContain(
        "smaller than maxBrokers × pbrSlots = 256"
      )
      expect(logConfigProblems({ ...smallConfig, maxBrokers: 0 })[0]).toContain("maxBrokers must be a positive integer")
    }))

  it.effect("a region too small for the area is reported with the bytes it needs", () =>
    Effect.gen(function*() {
      const directory = testRegion(smallConfig).area.directory
      const error = yield* Effect.flip(resolveLogArea(8192, smallConfig, 8192 + 64, directory))
      expect(error.message).toContain(`needs ${logAreaBytes(smallConfig)} bytes at offset 8192`)
      const area = yield* resolveLogArea(8192, smallConfig, 8192 + logAreaBytes(smallConfig), directory)
      expect(area.base).toBe(8192)
    }))

  it("records never overlap, stay inside the area or their topic's extent and are line aligned", () => {
    const area = testRegion(smallConfig).area
    const c = smallConfig
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
    // Topics in extents of the heap, one after the other, as the directory would hand them out.
    const extent = roundedTopicBytes(c.topicMemoryBytes)
    const blogBytes = blogBytesOf(c, c.topicMemoryBytes)
    expect(blogBytes).toBe(SMALL_BLOG_BYTES)
    for (let t = 0; t < TEST_TOPICS; t++) {
      area.place(t, { offset: area.directory.heap + t * extent, bytes: extent, blogBytes, generation: t + 1 })
    }
    const topicSpans: Array<[string, number, number]> = []
    for (let t = 0; t < TEST_TOPICS; t++) {
      topicSpans.push([`descriptor ${t}`, area.descriptor(t), TOPIC_DESCRIPTOR_BYTES], [
        `order ${t}`,
        area.orderLine(t),
        LINE_BYTES
      ])
      topicSpans.push([`sessions ${t}`, area.sessions(t), c.sessionSlots * SESSION_LINE_BYTES], [
        `goi ${t}`,
        area.goi(t),
        c.goiSlots * GOI_ENTRY_BYTES
      ])
      for (let i = 0; i < c.subscriberSlots; i++) {
        topicSpans.push([`subscriber ${t}/${i}`, area.subscriber(t, i), LINE_BYTES])
      }
      for (let b = 0; b < c.maxBrokers; b++) {
        topicSpans.push([`broker line ${t}/${b}`, area.brokerLine(t, b), LINE_BYTES], [
          `sequencer line ${t}/${b}`,
          area.sequencerLine(t, b),
          LINE_BYTES
        ])
        topicSpans.push([`replica line ${t}/${b}`, area.replicaLine(t, b), LINE_BYTES])
        topicSpans.push([`pbr ${t}/${b}`, area.pbr(t, b), c.pbrSlots * PBR_SLOT_BYTES], [
          `blog ${t}/${b}`,
          area.blog(t, b),
          blogBytes
        ])
      }
      for (const [name, offset, length] of topicSpans.splice(0)) {
        inside(name, offset, length, area.placeOf(t).offset, c.topicMemoryBytes)
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

  it("superblock parameters round-trip the base and the configuration", () => {
    const params = [7, 8, ...logAreaParams(12288, smallConfig)]
    expect(params).toHaveLength(2 + LOG_AREA_PARAMS)
    expect(logAreaFromParams(params, 2)).toEqual({ base: 12288, config: smallConfig })
  })
})

/** Every record view with the span of its record. */
const recordViews = (words: Views.RecordWords): ReadonlyArray<[string, object, number]> => [
  ["PBR slot", new Views.PbrSlotView(words, 8), PBR_SLOT_BYTES],
  ["GOI entry", new Views.GoiEntryView(words), GOI_ENTRY_BYTES],
  ["session line", new Views.SessionLineView(words), SESSION_LINE_BYTES],
  ["registry line", new Views.RegistryLineView(words), LINE_BYTES],
  ["order line", new Views.OrderLineView(words), LINE_BYTES],
  ["broker line", new Views.BrokerLineView(words), LINE_BYTES],
  ["sequencer line", new Views.SequencerLineView(words), LINE_BYTES],
  ["lease line", new Views.LeaseLineView(words), LINE_BYTES],
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
    const slots = new Views.PbrSlotView(words, 8)
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
