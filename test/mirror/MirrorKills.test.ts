/**
 * `cxlog mirror` SIGKILLed at random points of its stream and started again: it resumes from the
 * stream's last message, and the stream still holds every offset once, in order
 * (test/helpers/MirrorCluster.ts audits it).
 */
import { describe, expect, it } from "@effect/vitest"
import { type JetStreamManager, jetstreamManager } from "@nats-io/jetstream"
import { connect } from "@nats-io/transport-node"
import { Effect } from "effect"
import { type NatsCluster, startNatsCluster } from "../../src/programs/bench/peers/NatsCluster.js"
import { type CliRole, forkCli, runCli } from "../helpers/CliRoles.js"
import { audit, mirrorArgs, publish, skip, startLog, STREAM, suiteTitle } from "../helpers/MirrorCluster.js"

/** One JetStream connection held for the scope, made before any mirror starts: polls on it set nothing up. */
const heldManager = (cluster: NatsCluster) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const nc = await connect({ servers: [...cluster.urls], noAsyncTraces: true })
      return { nc, jsm: await jetstreamManager(nc, { timeout: 2_000 }) }
    }),
    ({ nc }) => Effect.promise(() => nc.close().catch(() => undefined))
  )

/** Messages in the stream now, through a held connection (0 while the stream does not exist). */
const heldCount = (jsm: JetStreamManager) => jsm.streams.info(STREAM).then((info) => info.state.messages, () => 0)

/**
 * SIGKILLs `mirror` as soon as the stream holds `atLeast` messages, polled every few milliseconds
 * on a held connection, so the kill lands within a few hundred messages of that point.
 */
const killAtCount = (jsm: JetStreamManager, mirror: CliRole, atLeast: number) =>
  Effect.flatMap(
    Effect.tryPromise({
      try: async () => {
        const deadline = Date.now() + 30_000
        for (;;) {
          const count = await heldCount(jsm)
          if (count >= atLeast) return
          if (mirror.child.exitCode !== null) {
            throw new Error(
              `the mirror exited (${mirror.child.exitCode}) with ${count} of ${atLeast} messages in the stream: ${mirror.output()}`
            )
          }
          if (Date.now() > deadline) {
            throw new Error(`the stream holds ${count} messages after 30 s, expected ${atLeast}`)
          }
          await new Promise((resolve) => setTimeout(resolve, 5))
        }
      },
      catch: (e) => (e instanceof Error ? e : new Error(String(e)))
    }),
    () => Effect.zipRight(Effect.sync(() => mirror.child.kill("SIGKILL")), mirror.exited)
  )

describe.skipIf(skip !== undefined)(suiteTitle("killed and restarted"), () => {
  it.scopedLive(
    "SIGKILLed at random points 10 times and restarted: still every offset once, in order",
    () =>
      Effect.gen(function*() {
        const cluster = yield* startNatsCluster(3)
        const log = yield* startLog("mirrorkill")
        // Room for ten kills however late a poll of the count sees one (each poll can take 100 ms and more on
        // a loaded machine, and a killed run publishes at most 16 at a time): kills land within the first half.
        const total = 60_000
        yield* publish(log, total)
        // The stream made first (its R3 group elects a leader meanwhile), by a mirror that stops after one message:
        // counting a stream still being made blocks, and a mirror would run far past its kill point meanwhile.
        const made = yield* runCli(mirrorArgs(cluster, "--until", "1"), log.env)
        expect(made.code, made.stderr).toBe(0)
        const { jsm } = yield* heldManager(cluster)
        const killedAt: Array<number> = []
        for (let kill = 0; kill < 10; kill++) {
          const before = yield* Effect.promise(() => heldCount(jsm))
          const mirror = yield* forkCli(mirrorArgs(cluster, "--max-in-flight", "16"), log.env)
          // Past its resume, at a random point of its publishes counted in messages, not in time: a
          // time would cover more of the stream on a faster machine, and the last kills land after its end.
          yield* killAtCount(jsm, mirror, before + 1 + Math.floor(Math.random() * 1_000))
          killedAt.push(yield* Effect.promise(() => heldCount(jsm)))
        }
        // Every kill fell mid-stream: the mirror had more to publish.
        expect(killedAt.filter((n) => n < total)).toHaveLength(10)
        const last = yield* runCli(mirrorArgs(cluster, "--until", `${total}`), log.env)
        expect(last.code, last.stderr).toBe(0)
        yield* audit(cluster, log, total)
      }),
    240_000
  )
})
