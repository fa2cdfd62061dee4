import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import {
  defaultLogConfig,
  LOG_AREA_PARAMS,
  logAreaBytes,
  logAreaFromParams,
  logAreaParams,
  logConfigProblems,
  makeLogArea,
  resolveLogArea,
  validateLogConfig
} from "../../src/layers/log/Layout.js"
import { smallConfig } from "../fixtures/log-harness.js"

describe("log layout", () => {
  it.effect("the defaults are valid and the area is whole pages", () =>
    Effect.gen(function*() {
      yield* validateLogConfig(defaultLogConfig)
      expect(logAreaBytes(defaultLogConfig) % 4096).toBe(0)
      expect(logAreaBytes(smallConfig)).toBeLessThan(logAreaBytes(defaultLogConfig))
    }))

  it.effect("a configuration that cannot work is one typed error listing every problem and the effective configuration", () =>
    Effect.gen(function*() {
      const config = { ...smallConfig, blogBytes: 64 << 10, maxBatchBytes: 64 << 10, pbrSlots: 100, goiSlots: 1024 }
      const error = yield* Effect.flip(validateLogConfig(config))
      expect(error._tag).toBe("LogConfigInvalid")
      expect(error.problems).toHaveLength(2)
      expect(error.message).toContain("pbrSlots 100 must be a power of two")
      expect(error.message).toContain("cannot hold two batches of maxBatchBytes=65536")
      expect(error.message).toContain("effective configuration: maxTopics=4 maxBrokers=4 pbrSlots=100 blogBytes=65536 goiSlots=1024")
      expect(logConfigProblems({ ...smallConfig, goiSlots: 128 })[0]).toContain("smaller than maxBrokers × pbrSlots = 256")
      expect(logConfigProblems({ ...smallConfig, maxTopics: 0 })[0]).toContain("maxTopics must be a positive integer")
    }))

  it.effect("a region too small for the area is reported with the bytes it needs", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(resolveLogArea(8192, smallConfig, 1 << 20))
      expect(error.message).toContain(`needs ${logAreaBytes(smallConfig)} bytes at offset 8192`)
      const area = yield* resolveLogArea(8192, smallConfig, 8192 + logAreaBytes(smallConfig))
      expect(area.base).toBe(8192)
    }))

  it("records never overlap, stay inside the area and are line aligned", () => {
    const area = makeLogArea(8192, smallConfig)
    const c = smallConfig
    const spans: Array<[string, number, number]> = []
    for (let b = 0; b < c.maxBrokers; b++) spans.push([`owner ${b}`, area.brokerOwner(b), 64])
    for (let i = 0; i < c.listenerSlots; i++) spans.push([`listener ${i}`, area.listener(i), 64])
    for (let t = 0; t < c.maxTopics; t++) {
      spans.push([`descriptor ${t}`, area.descriptor(t), 128], [`order ${t}`, area.orderLine(t), 64])
      spans.push([`sessions ${t}`, area.sessions(t), c.sessionSlots * 64], [`goi ${t}`, area.goi(t), c.goiSlots * 64])
      for (let i = 0; i < c.subscriberSlots; i++) spans.push([`subscriber ${t}/${i}`, area.subscriber(t, i), 64])
      for (let b = 0; b < c.maxBrokers; b++) {
        spans.push([`broker line ${t}/${b}`, area.brokerLine(t, b), 64], [`sequencer line ${t}/${b}`, area.sequencerLine(t, b), 64])
        spans.push([`replica line ${t}/${b}`, area.replicaLine(t, b), 64])
        spans.push([`pbr ${t}/${b}`, area.pbr(t, b), c.pbrSlots * 128], [`blog ${t}/${b}`, area.blog(t, b), c.blogBytes])
      }
    }
    spans.sort((a, b) => a[1] - b[1])
    for (let i = 0; i < spans.length; i++) {
      const [name, offset, length] = spans[i]!
      expect(offset % 64, name).toBe(0)
      expect(offset).toBeGreaterThanOrEqual(8192)
      expect(offset + length).toBeLessThanOrEqual(8192 + area.bytes)
      if (i > 0) expect(offset, `${name} overlaps ${spans[i - 1]![0]}`).toBeGreaterThanOrEqual(spans[i - 1]![1] + spans[i - 1]![2])
    }
  })

  it("superblock parameters round-trip the base and the configuration", () => {
    const params = [7, 8, ...logAreaParams(12288, smallConfig)]
    expect(params).toHaveLength(2 + LOG_AREA_PARAMS)
    expect(logAreaFromParams(params, 2)).toEqual({ base: 12288, config: smallConfig })
  })
})
