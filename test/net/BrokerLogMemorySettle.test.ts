/**
 * The memory log's `settle` steps its sequencer until a round moves nothing. A round that only
 * lapsed a session (orders 0/2/4: batches ordered above a gap, quiet past the gap bound) moved
 * something, so settle goes on past it.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, TestClock } from "effect"
import { settleRounds } from "../../src/layers/net/BrokerLogMemory.js"
import type { SequencerRound, SequencerShape } from "../../src/services/log/Sequencer.js"
import { appendSimple, memoryCluster } from "../fixtures/log-harness.js"

describe("BrokerLogMemory settle", () => {
  it.scoped("a round that only lapsed a session is work: settle runs rounds until one moves nothing", () =>
    Effect.gen(function*() {
      const cluster = yield* memoryCluster()
      yield* cluster.topics.create({ name: "t", order: 2, ackLevel: 1, replicationFactor: 1 })
      const appender = yield* cluster.appender(1)
      const sequencer = yield* cluster.sequencer({ sessionIdleMs: 5_000, sessionGapIdleMs: 20_000 })
      // Client 7's batch 1 is ordered above its gap (batch 0 never came).
      yield* appendSimple(appender, "t", 7, 1, 1, 2)
      expect(yield* sequencer.step).toMatchObject({ ordered: 1 })
      yield* TestClock.adjust("21000 millis")

      const rounds: Array<SequencerRound> = []
      const recording: SequencerShape = {
        ...sequencer,
        step: Effect.tap(sequencer.step, (round) => Effect.sync(() => rounds.push(round)))
      }
      yield* settleRounds(recording)
      expect(rounds[0]).toMatchObject({ ordered: 0, released: 0, lapsed: 1 })
      expect(rounds).toHaveLength(2)
      expect(rounds[1]).toMatchObject({
        ordered: 0,
        duplicates: 0,
        held: 0,
        fenced: 0,
        dropped: 0,
        released: 0,
        lapsed: 0
      })
    }))
})
