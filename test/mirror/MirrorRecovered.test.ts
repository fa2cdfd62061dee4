/**
 * A region made again from the head's data directory (the region lost, `cxlog head --data-dir`
 * recovering it) has a new id but the same log: the same topic, offsets and messages. Its mirror
 * goes on in the stream it was writing, every offset once, in order. A region made afresh, whose
 * messages at those offsets are others (published at other times), is still refused.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { startNatsCluster } from "../../src/programs/bench/peers/NatsCluster.js"
import { forkCli, loseRegion, runCli } from "../helpers/CliRoles.js"
import { mirrorArgs, readStream, skip, streamCount, TOPIC } from "../helpers/MirrorCluster.js"
import { tempDir, uniqueRegion } from "../helpers/Processes.js"

describe.skipIf(skip !== undefined)(
  "cxlog mirror into a one-node JetStream: a region made again from its data directory",
  () => {
    it.scopedLive(
      "the mirror continues its stream in the recovered region (same messages, another region id); a region made afresh is refused",
      () =>
        Effect.gen(function*() {
          const cluster = yield* startNatsCluster(1)
          const region = yield* uniqueRegion("mirrorrecov")
          const dir = yield* tempDir("cxlog-mirror-recover-")
          const env = { CXLOG_REGION: region, CXLOG_MIRROR_STATUS_DIR: yield* tempDir("cxlog-mirror-status-") }
          const publish = (count: number, onEnv = env) =>
            Effect.map(
              runCli(["publish", "--local", "--topic", TOPIC, "--count", `${count}`, "--ack", "2"], onEnv),
              (r) => expect(r.code, r.stderr).toBe(0)
            )
          const mirror = (until: number, onEnv = env) =>
            runCli(mirrorArgs(cluster, "--replicas", "1", "--until", `${until}`), onEnv)

          const head = yield* forkCli(["head", "--topic", `${TOPIC}:5:2:2`, "--data-dir", dir], env)
          yield* head.event("ready")
          yield* publish(300)
          const first = yield* mirror(300)
          expect(first.code, first.stderr).toBe(0)

          yield* loseRegion(region, head)
          const recovered = yield* forkCli(["head", "--data-dir", dir], env)
          yield* recovered.event("ready")
          yield* publish(200)
          const again = yield* mirror(500)
          expect(again.code, again.stderr).toBe(0)
          expect(again.stderr).toContain("holds the same message there")
          const stream = yield* readStream(cluster)
          expect(stream.map((m) => m.offset)).toEqual(Array.from({ length: 500 }, (_, i) => i))
          expect(stream.map((m) => m.sequence)).toEqual(Array.from({ length: 500 }, (_, i) => i + 1))

          // Another log under the topic's name: offsets 0..599 of its own, the same test values published later.
          const fresh = { ...env, CXLOG_REGION: yield* uniqueRegion("mirrorfresh") }
          const freshHead = yield* forkCli(["head", "--topic", `${TOPIC}:5:1`], fresh)
          yield* freshHead.event("ready")
          yield* publish(600, fresh)
          const refused = yield* mirror(600, fresh)
          expect(refused.code).toBe(1)
          expect(refused.stderr).toMatch(/its last message \(sequence 500\) is .* not this mirror's/)
          expect(yield* streamCount(cluster)).toBe(500)
        }),
      120_000
    )
  }
)
