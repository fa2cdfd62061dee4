/**
 * Rounds never overlap: three appender processes race for the round marker (taken by
 * compare-and-swap from 0) tens of thousands of times each beside a live head, which takes it
 * for its own rounds; inside, each counts itself in a shared word and checks the marker still
 * names it. A marker taken by anything weaker than one compare-and-swap lets two in at once.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as CxlMemoryLayers from "../../src/layers/region/CxlMemory.js"
import { bell, regionSize, smallConfig as config, testRegion, testTopics } from "../fixtures/log-harness.js"
import { spawnFixture, uniqueRegion } from "../helpers/Processes.js"

const RACERS = 3
const ROUNDS = 20_000
/** A doorbell line no process uses: the racers' shared words (who is inside, and the go word). */
const SCRATCH = bell(40)

describe("the round marker across processes", () => {
  it.scopedLive(
    `${RACERS} appenders race for it ${ROUNDS} times each beside a live head: never two inside at once`,
    () =>
      Effect.gen(function*() {
        const name = yield* uniqueRegion("round-race")
        const region = yield* CxlMemoryLayers.make({
          name,
          size: regionSize(config),
          mode: "create",
          params: testRegion(config).params
        })
        const topics = yield* testTopics(region, testRegion(config).area)
        yield* topics.create({ name: "audit", order: 5, ackLevel: 1, replicationFactor: 1 })
        // A ready head holding the lease: appenders take the marker only under one.
        const head = yield* spawnFixture("log-sequencer", [name, "0", "60000"])
        yield* head.next<{ starting: boolean }>()
        expect(yield* head.next<{ ready: boolean }>()).toMatchObject({ ready: true })
        const racers = yield* Effect.forEach(
          Array.from({ length: RACERS }, (_, i) => i),
          (i) => spawnFixture("round-racer", [name, `${2 + i}`, `${SCRATCH}`, `${ROUNDS}`])
        )
        for (const racer of racers) expect(yield* racer.next<{ ready: boolean }>()).toEqual({ ready: true })
        Atomics.store(region.i32, SCRATCH / 4 + 1, 1)
        const done = yield* Effect.forEach(
          racers,
          (racer) => racer.next<{ done: boolean; entered: number; overlaps: number; refused: number }>(120_000)
        )
        for (const d of done) {
          expect(d, JSON.stringify(done)).toMatchObject({ done: true, entered: ROUNDS, overlaps: 0 })
        }
        // They did race: the marker was refused while another held it (one racer may be lucky throughout).
        expect(
          done.reduce((n, d) => n + d.refused, 0),
          JSON.stringify(done)
        ).toBeGreaterThan(0)
      }),
    180_000
  )
})
