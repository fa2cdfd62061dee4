/**
 * Where `cxlog mirror` must not write, it stops with a typed error and writes nothing: a foreign
 * writer's message in its stream (the expected-sequence fence), a stream of another generation of
 * the topic, a missing topic, a stream JetStream refuses, a server without JetStream, a stream that
 * lost its last messages.
 */
import { describe, expect, it } from "@effect/vitest"
import { jetstream, jetstreamManager } from "@nats-io/jetstream"
import { headers } from "@nats-io/transport-node"
import { Effect } from "effect"
import { NATS, natsServerBinary } from "../../src/programs/bench/peers/NatsCluster.js"
import { startPeerServer } from "../../src/programs/bench/peers/PeerServer.js"
import { forkCli, runCli, runCliWithin } from "../helpers/CliRoles.js"
import {
  mirrorArgs,
  mirroredOnce,
  publish,
  skip,
  STREAM,
  streamCount,
  suiteTitle,
  TOPIC,
  topicsMirror,
  withJetStream
} from "../helpers/MirrorCluster.js"

describe.skipIf(skip !== undefined)(suiteTitle("fences and refusals"), () => {
  it.scopedLive(
    "the expected-sequence fence: a foreign writer's message stops the mirror with a typed error, and it writes nothing after it",
    () =>
      Effect.gen(function*() {
        const { cluster, log } = yield* mirroredOnce("mirrorfence", 1_000)
        // A running mirror: the foreign message lands between two of its appends.
        const running = yield* forkCli(mirrorArgs(cluster), log.env)
        while (!running.output().includes("mirroring from offset 1000")) {
          expect(running.child.exitCode, running.output()).toBeNull()
          yield* Effect.sleep(50)
        }
        yield* withJetStream(cluster, async (nc) => {
          const h = headers()
          h.set("Nats-Msg-Id", "someone-else/1")
          await jetstream(nc).publish(`cxlog.${TOPIC}`, new TextEncoder().encode("foreign"), { headers: h })
        })
        yield* publish(log, 500)
        const exited = yield* running.exited.pipe(
          Effect.timeoutFail({
            duration: 60_000,
            onTimeout: () => new Error(`the mirror went on after a foreign message: ${running.output()}`)
          })
        )
        expect(exited.code).toBe(1)
        expect(running.output()).toMatch(/MirrorStreamForeign|another writer appended it; nothing was written/)
        expect(yield* streamCount(cluster)).toBe(1_001)
        // Started again, it refuses before writing anything.
        const again = yield* runCli(mirrorArgs(cluster), log.env)
        expect(again.code).toBe(1)
        expect(again.stderr).toMatch(
          /stream cxlog-m: its last message \(sequence 1001\) is "someone-else\/1" on cxlog\.m, not this mirror's/
        )
        expect(yield* streamCount(cluster)).toBe(1_001)
        expect((yield* topicsMirror(log))?.state).toBe("fenced")
      }),
    180_000
  )

  it.scopedLive(
    "a topic deleted and created again under its name is another log: its mirror into the old stream is fenced; a missing topic makes no stream; a stream JetStream refuses, or a server without JetStream, ends the mirror at once",
    () =>
      Effect.gen(function*() {
        const { cluster, log } = yield* mirroredOnce("mirrorregen", 200)
        for (
          const args of [["topics", "delete", TOPIC], ["topics", "create", `${TOPIC}:5:1`]]
        ) {
          const changed = yield* runCli(args, log.env)
          expect(changed.code, changed.stderr).toBe(0)
        }
        // Offsets start again at 0: continued in the old stream, 0..199 would be dropped as duplicates of the old ones.
        yield* publish(log, 300)
        const again = yield* runCliWithin(mirrorArgs(cluster, "--until", "300"), log.env, 60_000)
        expect(again.code).toBe(1)
        expect(again.stderr).toContain(
          `is "${log.regionId}/${TOPIC}/${log.generation}/199" on cxlog.${TOPIC}, not this mirror's (${log.regionId}/${TOPIC}/`
        )
        expect(again.stderr).toContain("another generation of the topic (deleted and created again)")
        expect(yield* streamCount(cluster)).toBe(200)
        // A topic that does not exist: refused before any stream is made for it.
        const missing = yield* runCliWithin(
          ["mirror", "--topic", "nosuch", "--to", cluster.urls.join(","), "--stream", "NOSUCH"],
          log.env,
          60_000
        )
        expect(missing.code).toBe(1)
        expect(missing.stderr).toContain("nosuch")
        // A start past the topic's end (300): refused as such, not as a mirror behind retention, and no stream made
        // (its own subject, so JetStream would take it).
        const ahead = yield* runCliWithin(
          [
            "mirror",
            "--topic",
            TOPIC,
            "--to",
            cluster.urls.join(","),
            "--stream",
            "AHEAD",
            "--subject",
            "ahead.m",
            "--from",
            "301"
          ],
          log.env,
          60_000
        )
        expect(ahead.code).toBe(1)
        expect(ahead.stderr).toContain(
          `topic ${TOPIC} ends at offset 300: the mirror to stream AHEAD cannot start at offset 301, past its end`
        )
        expect(ahead.stderr).not.toContain("behind retention")
        // A consumer name the log refuses: said before any stream is made (it made the stream, then failed).
        const unnamed = yield* runCliWithin(
          ["mirror", "--topic", TOPIC, "--to", cluster.urls.join(","), "--stream", "UNNAMED", "--subject", "unnamed.m"]
            .concat(["--consumer", "c".repeat(25)]),
          log.env,
          60_000
        )
        expect(unnamed.code).toBe(1)
        expect(unnamed.stderr).toContain(`consumer name "${"c".repeat(25)}": must be 1 to 24 bytes of UTF-8, not 25`)
        const streams = yield* withJetStream(cluster, async (nc) => {
          const names: Array<string> = []
          for await (const name of (await jetstreamManager(nc, { timeout: 10_000 })).streams.names()) names.push(name)
          return names
        })
        expect(streams).toEqual([STREAM])
        // A stream JetStream refuses (its name; a subject another stream takes) ends the mirror at once,
        // where it backed off for --retry-for (15 minutes).
        for (
          const [stream, says] of [["a.b", "has no '.'"], ["OTHER", `another stream takes subject cxlog.${TOPIC}`]]
        ) {
          const refused = yield* runCliWithin(
            ["mirror", "--topic", TOPIC, "--to", cluster.urls.join(","), "--stream", stream!],
            log.env,
            60_000
          )
          expect(refused.code).toBe(1)
          expect(refused.stderr).toContain(`stream ${stream}: JetStream refused it`)
          expect(refused.stderr).toContain(says)
        }
        // A server that answers without JetStream (started without -js) is its configuration, not an outage:
        // the mirror ends at once naming the fix, where it backed off for --retry-for as if the server were starting.
        const plain = yield* startPeerServer(
          NATS,
          yield* natsServerBinary,
          (port) => ["-a", "127.0.0.1", "-p", `${port}`]
        )
        const started = Date.now()
        const disabled = yield* runCliWithin(
          ["mirror", "--topic", TOPIC, "--to", `nats://127.0.0.1:${plain.port}`, "--retry-for", "30s"],
          log.env,
          60_000
        )
        expect(disabled.code).toBe(1)
        expect(disabled.stderr).toContain(`JetStream is not enabled at nats://127.0.0.1:${plain.port}`)
        expect(disabled.stderr).toContain("start nats-server with -js")
        expect(Date.now() - started).toBeLessThan(20_000)
      }),
    180_000
  )

  it.scopedLive(
    "a stream that lost its last messages (deleted in it): the mirror stops with MirrorGap naming the offsets, and writes nothing",
    () =>
      Effect.gen(function*() {
        const { cluster, log } = yield* mirroredOnce("mirrorgap", 1_000)
        // What a stream's loss looks like to the mirror: its consumer committed 1 000, the stream ends at 989.
        yield* withJetStream(cluster, async (nc) => {
          const jsm = await jetstreamManager(nc, { timeout: 10_000 })
          for (let seq = 991; seq <= 1_000; seq++) await jsm.streams.deleteMessage(STREAM, seq)
        })
        yield* publish(log, 100)
        const again = yield* runCli(mirrorArgs(cluster), log.env)
        expect(again.code).toBe(1)
        expect(again.stderr).toMatch(
          /stream cxlog-m ends before offset 990 of topic m, but the mirror's consumer committed up to 1000: offsets 990\.\.999 would be missing/
        )
        expect(yield* streamCount(cluster)).toBe(990)
        expect((yield* topicsMirror(log))?.state).toBe("failed")
      }),
    180_000
  )
})
