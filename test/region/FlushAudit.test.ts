/**
 * Non-coherent mode: every publication point writes back what it wrote before its commit
 * word. The flush audit records each `publish` range and checks, at every PBR and GOI
 * commit, that the record was written back first.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as CxlMemoryLayers from "../../src/layers/region/CxlMemory.js"
import * as CxlMemoryMemoryLayers from "../../src/layers/region/CxlMemoryMemory.js"
import { makeFlushAudit } from "../../src/layers/region/FlushAudit.js"
import { appendSimple, drain, type LogCluster, readAll, regionCluster } from "../fixtures/log-harness.js"
import { expectedCacheInstructions } from "../helpers/CacheInstructions.js"

/** Mode 5 traffic with reordering (held batches) and a duplicate over 4 brokers; returns the batches read. */
const traffic = (cluster: LogCluster) =>
  Effect.gen(function*() {
    yield* cluster.topics.create({ name: "t", order: 5, ackLevel: 1, replicationFactor: 1 })
    const appenders = yield* Effect.forEach([0, 1, 2, 3], (b) => cluster.appender(b))
    const sequencer = yield* cluster.sequencer()
    for (let seq = 0; seq < 40; seq++) {
      const swapped = seq % 5 === 3 ? seq + 1 : seq % 5 === 4 ? seq - 1 : seq
      yield* appendSimple(appenders[swapped % 4]!, "t", 1, 0, swapped)
      if (seq % 7 === 0) yield* appendSimple(appenders[(seq + 1) % 4]!, "t", 1, 0, seq)
      if (seq % 3 === 0) yield* sequencer.step
    }
    yield* drain(sequencer)
    return yield* readAll(cluster.reader, "t")
  })

const natively = expectedCacheInstructions()
const cases = [
  ["native region", CxlMemoryLayers.make, natively],
  ["fake region", CxlMemoryMemoryLayers.makeMemory, { publish: "none", invalidate: "none" }]
] as const

for (const [label, open, instructions] of cases) {
  describe(`flush audit: ${label}`, () => {
    it.scoped("non-coherent: every committed PBR and GOI record was flushed first", () =>
      Effect.gen(function*() {
        const cluster = yield* regionCluster(open)(undefined, { coherence: "non-coherent", flushAudit: true })
        const read = yield* traffic(cluster)
        expect(read.map((b) => b.batchSeq)).toEqual(Array.from({ length: 40 }, (_, i) => i))
        // One commit per appended batch (Blog + header), two per ordered batch (GOI entry, PBR finish), one per duplicate.
        expect(cluster.audit!.checked()).toBe(46 + 2 * 40 + 6)
        expect(cluster.audit!.violations()).toEqual([])
      }))

    it.scoped("non-coherent: the sequencer and readers invalidate with an evicting instruction, publications write back with the best one", () =>
      Effect.gen(function*() {
        const cluster = yield* regionCluster(open)(undefined, { coherence: "non-coherent", flushAudit: true })
        yield* traffic(cluster)
        const used = cluster.audit!.instructions()
        expect(Object.keys(used.publish)).toEqual([instructions.publish])
        expect(Object.keys(used.invalidate)).toEqual([instructions.invalidate])
        expect(used.invalidate[instructions.invalidate]).toBeGreaterThan(0)
      }))

    it.scoped("the audit catches commits whose records were not written back (a coherent region flushes nothing)", () =>
      Effect.gen(function*() {
        const cluster = yield* regionCluster(open)(undefined, { coherence: "coherent", flushAudit: true })
        yield* traffic(cluster)
        expect(cluster.audit!.violations().length).toBe(cluster.audit!.checked())
        expect(cluster.audit!.violations()[0]).toMatch(/committed before it was flushed/)
      }))

    it.scoped("a partly flushed record is a violation", () =>
      Effect.gen(function*() {
        const cluster = yield* regionCluster(open)(undefined, { coherence: "non-coherent" })
        const region = cluster.region!.memory
        const audit = yield* makeFlushAudit(region)
        region.publish(8192, 64)
        audit.beforeCommit("whole", [8192, 60])
        region.publish(8192, 32)
        audit.beforeCommit("half", [8192, 60])
        region.publish(8192, 32)
        region.publish(8224, 32)
        audit.beforeCommit("two pieces", [8192, 60])
        expect(audit.violations()).toEqual(["half [8192, +60) committed before it was flushed"])
      }))
  })
}
