/**
 * `cxlog mirror` while JetStream loses nodes: one of three killed mid-stream (the mirror goes on),
 * all three stopped (mirror-unavailable in its status and metrics, then it catches up when they
 * return); nothing lost either way (test/helpers/MirrorCluster.ts audits the stream).
 */
import { describe, expect, it } from "@effect/vitest"
import { jetstreamManager, StorageType } from "@nats-io/jetstream"
import { Effect, Fiber } from "effect"
import { startNatsCluster } from "../../src/programs/bench/peers/NatsCluster.js"
import { freePort } from "../../src/programs/bench/peers/PeerServer.js"
import { forkCli } from "../helpers/CliRoles.js"
import {
  audit,
  awaitStreamCount,
  mirrorArgs,
  publish,
  skip,
  startLog,
  stopMirror,
  STREAM,
  suiteTitle,
  TOPIC,
  topicsMirror,
  withJetStream
} from "../helpers/MirrorCluster.js"

const scrape = (port: number) =>
  Effect.tryPromise(() => fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text())).pipe(
    Effect.orElseSucceed(() => "")
  )

describe.skipIf(skip !== undefined)(suiteTitle("JetStream nodes lost"), () => {
  it.scopedLive(
    "one node of three killed mid-stream: the mirror goes on, nothing lost",
    () =>
      Effect.gen(function*() {
        const cluster = yield* startNatsCluster(3)
        const log = yield* startLog("mirrornode")
        const mirror = yield* forkCli(mirrorArgs(cluster, "--request-timeout-ms", "2000"), log.env)
        const publishing = yield* Effect.fork(publish(log, 6_000))
        yield* awaitStreamCount(cluster, 1_000, mirror)
        yield* cluster.nodes[0]!.kill
        yield* Fiber.join(publishing).pipe(Effect.timeoutFail({
          duration: "120 seconds",
          onTimeout: () => new Error("publishing 6 000 messages took over 120 s")
        }))
        yield* awaitStreamCount(cluster, 6_000, mirror)
        yield* stopMirror(mirror)
        yield* audit(cluster, log, 6_000)
      }),
    300_000
  )

  it.scopedLive(
    "all three nodes lost: mirror-unavailable (status, metrics), then it catches up when they return",
    () =>
      Effect.gen(function*() {
        const cluster = yield* startNatsCluster(3)
        const log = yield* startLog("mirrornodes")
        // An operator's stream whose duplicate window (1 s) the outage outlasts, as any outage longer than
        // the default 2 min does: restarted, JetStream no longer knows its last message id (#34).
        yield* withJetStream(cluster, async (nc) => {
          const jsm = await jetstreamManager(nc, { timeout: 10_000 })
          await jsm.streams.add({
            name: STREAM,
            subjects: [`cxlog.${TOPIC}`],
            num_replicas: 3,
            storage: StorageType.File,
            duplicate_window: 1_000_000_000
          })
        })
        // The kernel's free pick, not a random number (one in use failed the mirror's start: EADDRINUSE).
        const metricsPort = yield* freePort
        const mirror = yield* forkCli(
          mirrorArgs(cluster, "--metrics-port", `${metricsPort}`, "--request-timeout-ms", "2000"),
          log.env
        )
        yield* publish(log, 2_000)
        yield* awaitStreamCount(cluster, 2_000, mirror)

        // Stopped, not killed: a nats-server before 2.10 cannot fsync each write, and all three killed
        // at once may lose messages they acknowledged. The mirror then stops rather than leave the
        // gap (MirrorGap: "offsets 1947..1999 would be missing"); this test is about the outage.
        for (const node of cluster.nodes) yield* node.stop
        yield* publish(log, 2_000)
        let unavailable: { state: string; lagOffsets: number } | undefined
        let metrics = ""
        for (const deadline = Date.now() + 30_000; Date.now() < deadline && mirror.child.exitCode === null;) {
          unavailable = yield* topicsMirror(log)
          metrics = yield* scrape(metricsPort)
          // The status is written every 500 ms: wait for one written after the 2 000 messages were published.
          if (
            unavailable?.state === "mirror-unavailable" && unavailable.lagOffsets === 2_000 &&
            /cxlog_mirror_unavailable\{[^}]*\} 1/.test(metrics)
          ) {
            break
          }
          yield* Effect.sleep(100)
        }
        expect(mirror.child.exitCode, mirror.output()).toBeNull()
        expect(unavailable?.state).toBe("mirror-unavailable")
        expect(unavailable?.lagOffsets).toBe(2_000)
        expect(metrics).toMatch(/cxlog_mirror_unavailable\{[^}]*\} 1/)
        expect(metrics).toMatch(/cxlog_mirror_retries\{[^}]*\} [1-9]/)

        for (const node of cluster.nodes) yield* node.start
        yield* awaitStreamCount(cluster, 4_000, mirror, 120_000)
        yield* stopMirror(mirror)
        yield* audit(cluster, log, 4_000)
      }),
    600_000
  )
})
