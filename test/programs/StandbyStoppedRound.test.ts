/**
 * A standby head whose takeover finds the last head stopped inside a round (the round marker in
 * the lease line names a live, stopped process: SequencerEarlierRoundStopped) goes on standing
 * by: it lets the lease go, warns, tries again, and takes over once that process is gone. (An
 * active head started with --attach still fails with the typed error: RoundMarker.test.ts.)
 * The standby runs as the CLI runs it (test/fixtures/standby-head.ts) with a 300 ms wait on the
 * marker instead of 60 s; the head is the bundled CLI.
 */
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Layer, Queue } from "effect"
import { LeaseLine } from "../../src/layers/log/Records.js"
import { LeaseLineView } from "../../src/layers/log/RecordViews.js"
import { isPidStopped } from "../../src/layers/region/ProcessInfo.js"
import { Offsets } from "../../src/layers/region/Superblock.js"
import { attachRegion } from "../../src/layers/Roles.js"
import { CxlMemory, type CxlMemoryShape } from "../../src/services/region/CxlMemory.js"
import { forkCli, smallRegionEnv } from "../helpers/CliRoles.js"
import { type Child, spawnFixture, uniqueRegion } from "../helpers/Processes.js"

const lease = Offsets.sequencerLease

/** Waits (bounded) until `child` has logged `count` lines matching `pattern`; fails at once, with what it printed last, if it exits first. */
const logged = (child: Child, pattern: RegExp, count: number, timeoutMs: number) => {
  let last: unknown
  const seen = Effect.gen(function*() {
    let n = 0
    while (n < count) {
      last = yield* Queue.take(child.messages)
      const text = (last as { text?: unknown }).text
      if (typeof text === "string" && pattern.test(text)) n++
    }
  })
  const exited = Effect.flatMap(
    Deferred.await(child.exited),
    (exit) =>
      Effect.fail(
        new Error(
          `the standby exited (code ${exit.code}) before logging ${pattern} ${count} times; last: ${
            JSON.stringify(last)
          }; stderr: ${child.stderr()}`
        )
      )
  )
  return Effect.raceFirst(seen, exited).pipe(
    Effect.timeoutFail({
      duration: timeoutMs,
      onTimeout: () => new Error(`the standby logged ${pattern} fewer than ${count} times within ${timeoutMs} ms`)
    })
  )
}

/** `f` with the region mapped in this process. */
const inRegion = <A, E>(region: string, f: (memory: CxlMemoryShape) => Effect.Effect<A, E>) =>
  Effect.flatMap(CxlMemory, f).pipe(Effect.scoped, Effect.provide(Layer.fresh(attachRegion({ name: region }))))

describe("a standby head and a last head stopped inside a round", () => {
  it.scopedLive(
    "the standby stands by (warns and tries again) instead of exiting, and takes over once the stopped head is gone",
    () =>
      Effect.gen(function*() {
        const region = yield* uniqueRegion("stoppedround")
        const env = { ...smallRegionEnv, CXLOG_REGION: region, CXLOG_SEQUENCER_LEASE_MS: "1000" }
        const head = yield* forkCli(["head", "--topic", "t:5:1"], env)
        expect((yield* head.event("ready"))["epoch"]).toBe(1)
        const standby = yield* spawnFixture("standby-head", [region, "300"], env)
        yield* logged(standby, /head: standing by for region/, 1, 30_000)

        yield* inRegion(region, (memory) =>
          Effect.gen(function*() {
            head.child.kill("SIGSTOP")
            yield* Effect.sleep("5 millis").pipe(
              Effect.repeat({ until: () => isPidStopped(head.pid) }),
              Effect.timeoutFail({
                duration: 10_000,
                onTimeout: () => new Error(`the head (pid ${head.pid}) was not stopped within 10 s of SIGSTOP`)
              })
            )
            // Stopped inside a round: its marker names it (set here in case the stop fell between rounds).
            Atomics.store(memory.i32, (lease + LeaseLine.round) / 4, head.pid)
          }))

        // Two takeovers refused on the marker, the standby still running between and after them.
        const refused = new RegExp(
          `process ${head.pid}, named by an earlier head's round marker, has been stopped inside its round .* standing by`
        )
        yield* logged(standby, refused, 2, 30_000)
        expect(standby.process.exitCode).toBe(null)

        head.child.kill("SIGKILL")
        yield* logged(standby, new RegExp(`head: region ${region} .*sequencer epoch`), 1, 30_000)
        expect(yield* inRegion(region, (memory) => Effect.sync(() => new LeaseLineView(memory).pid(lease)))).toBe(
          standby.process.pid
        )
      }),
    90_000
  )
})
