/**
 * `cxlog mirror` carries a topic into JetStream: 100 000 messages published while it runs, and a
 * mirror reading over TCP from a broker; each stream audited against the region
 * (test/helpers/MirrorCluster.ts).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { startNatsCluster } from "../../src/programs/bench/peers/NatsCluster.js"
import { forkCli, runCli, runCliWithin } from "../helpers/CliRoles.js"
import {
  audit,
  awaitStreamCount,
  mirrorArgs,
  publish,
  skip,
  startLog,
  stopMirror,
  suiteTitle,
  topicsMirror
} from "../helpers/MirrorCluster.js"

describe.skipIf(skip !== undefined)(suiteTitle("every offset once, in order"), () => {
  it.scopedLive(
    "100 000 messages published while the mirror runs: the stream holds offsets 0..N−1 once, in order, payloads equal",
    () =>
      Effect.gen(function*() {
        const cluster = yield* startNatsCluster(3)
        const log = yield* startLog("mirror100k")
        const mirror = yield* forkCli(mirrorArgs(cluster), log.env)
        yield* publish(log, 100_000)
        yield* awaitStreamCount(cluster, 100_000, mirror, 150_000)
        // The mirror writes its status every 500 ms: `cxlog topics` shows it caught up within a few refreshes.
        let status = yield* topicsMirror(log)
        for (const deadline = Date.now() + 15_000; status?.lagOffsets !== 0 && Date.now() < deadline;) {
          yield* Effect.sleep(200)
          status = yield* topicsMirror(log)
        }
        expect(status?.state).toBe("mirroring")
        expect(status?.lagOffsets).toBe(0)
        yield* stopMirror(mirror)
        yield* audit(cluster, log, 100_000)
      }),
    240_000
  )

  it.scopedLive(
    "over TCP from a broker (--brokers, --region-id): the same stream, message ids naming the region",
    () =>
      Effect.gen(function*() {
        const cluster = yield* startNatsCluster(3)
        const log = yield* startLog("mirrortcp")
        yield* publish(log, 2_000)
        const remote = yield* runCliWithin(
          mirrorArgs(cluster, "--brokers", log.brokers, "--region-id", log.regionId, "--until", "2000"),
          log.env,
          60_000
        )
        expect(remote.code, remote.stderr).toBe(0)
        yield* audit(cluster, log, 2_000)
        const half = yield* runCli(mirrorArgs(cluster, "--brokers", log.brokers), log.env)
        expect(half.code).toBe(2)
        expect(half.stderr).toMatch(/--brokers and --region-id go together/)
      }),
    180_000
  )
})
