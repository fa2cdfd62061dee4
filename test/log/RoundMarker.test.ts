/**
 * The round marker in the sequencer's lease line names a pid and its start tag; here a bare pid
 * (tag 0: the pid alone decides, as without /proc) (SequencerLease.ts `awaitEarlierRound`). A head SIGKILLed inside a round leaves it set; a later head must not
 * wait on it for ever when the pid is its own (given the killed head's pid: a restarted
 * container, a pid namespace) or names a live process that is no head inside a round (a reused
 * pid). A process stopped with the marker set fails the new head with a typed error naming it.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { spawn } from "node:child_process"
import { LeaseLine } from "../../src/layers/log/Records.js"
import { LeaseLineView } from "../../src/layers/log/RecordViews.js"
import * as CxlMemoryMemoryLayers from "../../src/layers/region/CxlMemoryMemory.js"
import { Offsets } from "../../src/layers/region/Superblock.js"
import { appendSimple, regionCluster, smallConfig } from "../fixtures/log-harness.js"

const lease = Offsets.sequencerLease
/** Bound of a takeover in these tests (one that waits on the marker for ever fails here). */
const BOUND_MS = 10_000

/** A region whose head was killed inside a round: its lease lapsed and its round marker says `marker`. */
const killedInRound = (marker: number) =>
  Effect.gen(function*() {
    const cluster = yield* regionCluster(CxlMemoryMemoryLayers.makeMemory)(smallConfig)
    const { memory } = cluster.region!
    yield* cluster.topics.create({ name: "t", order: 5, ackLevel: 1, replicationFactor: 1 })
    const old = yield* cluster.sequencer({ leaseMs: 60_000 })
    yield* old.step
    Atomics.store(memory.i32, (lease + LeaseLine.round) / 4, marker)
    new LeaseLineView(memory).setExpiresAtMs(lease, Date.now() - 1)
    return { cluster, memory, old }
  })

/** A takeover, bounded (its lease acquisition cannot be interrupted: past the bound the test fails while it goes on). */
const takeOver = <A, E, R>(taking: Effect.Effect<A, E, R>) =>
  taking.pipe(
    Effect.disconnect,
    Effect.timeoutFail({
      duration: BOUND_MS,
      onTimeout: () => new Error(`no takeover within ${BOUND_MS} ms: the new head waits on the marker`)
    })
  )

describe("the sequencer's round marker left by a killed head", () => {
  it.scopedLive("a marker naming the new head's own pid is stale: it takes over at once and orders", () =>
    Effect.gen(function*() {
      const { cluster, memory, old } = yield* killedInRound(process.pid)
      const fresh = yield* takeOver(cluster.sequencer({ leaseMs: 60_000 }))
      expect(fresh.epoch).toBe(old.epoch + 1)
      expect(Atomics.load(memory.i32, (lease + LeaseLine.round) / 4)).toBe(0)
      const appender = yield* cluster.appender(0)
      yield* appendSimple(appender, "t", 7, 1, 0)
      expect((yield* fresh.step).ordered).toBeGreaterThan(0)
    }))

  it.scopedLive("a marker naming a live process that is no head inside a round (our parent) is cleared after the bound", () =>
    Effect.gen(function*() {
      const { cluster, memory, old } = yield* killedInRound(process.ppid)
      const fresh = yield* takeOver(cluster.sequencer({ leaseMs: 60_000, earlierRoundWaitMs: 200 }))
      expect(fresh.epoch).toBe(old.epoch + 1)
      expect(Atomics.load(memory.i32, (lease + LeaseLine.round) / 4)).toBe(0)
    }))

  it.scopedLive("a marker naming a stopped process fails the new head, naming the process and the wait, and lets the lease go", () =>
    Effect.gen(function*() {
      const stopped = yield* Effect.acquireRelease(
        Effect.sync(() => spawn("sleep", ["60"], { stdio: "ignore" })),
        (child) => Effect.sync(() => child.kill("SIGKILL"))
      )
      stopped.kill("SIGSTOP")
      const { cluster, memory } = yield* killedInRound(stopped.pid!)
      const failure = yield* Effect.flip(takeOver(cluster.sequencer({ leaseMs: 60_000, earlierRoundWaitMs: 200 })))
      expect(failure).toMatchObject({ _tag: "SequencerEarlierRoundStopped", pid: stopped.pid })
      expect((failure as { waitedMs: number }).waitedMs).toBeGreaterThanOrEqual(200)
      expect(new LeaseLineView(memory).occurrence(lease)).toBe(0)
    }))
})
