/**
 * Property tests of the ordering semantics: random arrivals over 4 brokers with reordering,
 * duplicates and missing batches, sequencer rounds at random points, then a hold timeout.
 * For every mode the GOI is one contiguous total order without duplicates that loses
 * nothing except what fenced sessions report, and respects the mode's guarantee.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, FastCheck as fc, TestClock } from "effect"
import * as CxlMemoryMemoryLayers from "../../src/layers/region/CxlMemoryMemory.js"
import {
  appendSimple,
  drain,
  type LogCluster,
  memoryCluster,
  readAll,
  regionCluster,
  smallConfig
} from "../fixtures/log-harness.js"

const config = { ...smallConfig, maxTopics: 1, pbrSlots: 128, goiSlots: 512 }
const HOLD_MS = 1_000

interface Arrival {
  readonly session: number
  readonly seq: number
  readonly broker: number
}

interface Scenario {
  readonly arrivals: ReadonlyArray<Arrival>
  /** Whether a sequencer round runs after arrival i. */
  readonly stepAfter: ReadonlyArray<boolean>
  readonly sessions: number
}

const scenario: fc.Arbitrary<Scenario> = fc.array(fc.integer({ min: 1, max: 12 }), { minLength: 1, maxLength: 3 })
  .chain((lengths) => {
    const batches = lengths.flatMap((n, session) => Array.from({ length: n }, (_, seq) => ({ session, seq })))
    const copy = fc.record({ broker: fc.integer({ min: 0, max: 3 }), key: fc.double({ min: 0, max: 1, noNaN: true }) })
    const fate = fc.record({
      missing: fc.integer({ min: 0, max: 9 }).map((x) => x === 0),
      first: copy,
      duplicate: fc.option(copy, { freq: 5 })
    })
    return fc.tuple(
      fc.array(fate, { minLength: batches.length, maxLength: batches.length }),
      fc.array(fc.boolean(), { minLength: 80, maxLength: 80 })
    )
      .map(([fates, stepAfter]) => {
        const keyed: Array<Arrival & { key: number }> = []
        fates.forEach((f, i) => {
          if (f.missing) return
          const { session, seq } = batches[i]!
          keyed.push({ session, seq, broker: f.first.broker, key: f.first.key })
          if (f.duplicate !== null) keyed.push({ session, seq, broker: f.duplicate.broker, key: f.duplicate.key })
        })
        keyed.sort((a, b) => a.key - b.key)
        return {
          arrivals: keyed.map(({ session, seq, broker }) => ({ session, seq, broker })),
          stepAfter,
          sessions: lengths.length
        }
      })
  })

const check = (
  order: 0 | 2 | 4 | 5,
  make: () => Effect.Effect<LogCluster, unknown, import("effect").Scope.Scope>,
  s: Scenario
) =>
  Effect.scoped(Effect.gen(function*() {
    const cluster = yield* make()
    yield* cluster.topics.create({ name: "p", order, ackLevel: 1, replicationFactor: 1 })
    const appenders = yield* Effect.forEach([0, 1, 2, 3], (b) => cluster.appender(b))
    const sequencer = yield* cluster.sequencer({ holdTimeoutMs: HOLD_MS })
    for (let i = 0; i < s.arrivals.length; i++) {
      const a = s.arrivals[i]!
      yield* appendSimple(appenders[a.broker]!, "p", 100 + a.session, 1, a.seq, 1 + (a.seq % 3))
      if (s.stepAfter[i % s.stepAfter.length]) yield* sequencer.step
    }
    yield* drain(sequencer)
    yield* TestClock.adjust(HOLD_MS + 1)
    yield* drain(sequencer)
    const goi = yield* readAll(cluster.reader, "p")

    // One contiguous total order, intact.
    let total = 0
    goi.forEach((b, g) => {
      expect(b.globalSeq).toBe(g)
      expect(b.totalOrder).toBe(total)
      expect(b.crcOk).toBe(true)
      total += b.messageCount
    })
    // No duplicate.
    const keys = goi.map((b) => `${b.clientId}/${b.batchSeq}`)
    expect(new Set(keys).size).toBe(keys.length)

    for (let session = 0; session < s.sessions; session++) {
      const clientId = 100 + session
      const appended = new Set(s.arrivals.filter((a) => a.session === session).map((a) => a.seq))
      const ordered = goi.filter((b) => b.clientId === clientId).map((b) => b.batchSeq)
      const acks = yield* cluster.acks.sessionAcks("p", clientId, 1)
      if (appended.size === 0) continue
      // Loses nothing except what a fenced session reports: everything from its frontier on.
      for (const seq of appended) {
        if (!ordered.includes(seq)) {
          expect(acks.fenced && seq >= acks.ordered, `session ${session} lost batch ${seq}`).toBe(true)
        }
      }
      // The ACK frontier is the contiguous ordered prefix.
      let prefix = 0
      while (ordered.includes(prefix)) prefix++
      expect(acks.ordered).toBe(prefix)
      if (order === 5) {
        expect(ordered).toEqual(Array.from({ length: ordered.length }, (_, i) => i))
        // Fenced only because a gap really stayed open.
        if (acks.fenced) expect(appended.has(acks.ordered)).toBe(false)
        else expect(ordered.length).toBe(appended.size)
      } else {
        expect(acks.fenced).toBe(false)
      }
      if (order === 4 || order === 0) {
        // Each broker's batches keep their arrival order.
        for (let broker = 0; broker < 4; broker++) {
          const arrivalIndex = (seq: number) =>
            s.arrivals.findIndex((a) => a.session === session && a.seq === seq && a.broker === broker)
          const fromBroker = goi.filter((b) => b.clientId === clientId && b.brokerId === broker).map((b) =>
            arrivalIndex(b.batchSeq)
          )
          expect(fromBroker).toEqual([...fromBroker].sort((x, y) => x - y))
        }
      }
    }
  }))

const makers = {
  "fake region": () => regionCluster(CxlMemoryMemoryLayers.makeMemory)(config),
  layerMemory: () => memoryCluster(config)
}

for (const [label, make] of Object.entries(makers)) {
  describe(`ordering properties: ${label}`, () => {
    for (const order of [0, 2, 4, 5] as const) {
      it.effect.prop(`mode ${order}`, { s: scenario }, ({ s }) => check(order, make, s), {
        fastCheck: { numRuns: process.env["CXLOG_STRESS"] ? 1_000 : 60 }
      })
    }
  })
}
