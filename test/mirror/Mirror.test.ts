/**
 * `cxlog mirror` against real JetStream: a 3-node `nats-server` cluster on loopback (Debian's
 * package, installed here where missing), a region with a head and a broker, the bundled CLI.
 * Each test audits the stream against the region: offsets 0..N−1 once each, in order, at
 * sequences 1..N, with the region's payloads and message ids.
 */
import { describe, expect, it } from "@effect/vitest"
import { jetstream, type JetStreamManager, jetstreamManager, StorageType } from "@nats-io/jetstream"
import { connect, headers } from "@nats-io/transport-node"
import { Effect, Fiber, Schedule, type Scope } from "effect"
import { execFileSync } from "node:child_process"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { readMirrored } from "../../src/layers/mirror/MirrorRecord.js"
import { type NatsCluster, startNatsCluster } from "../../src/programs/bench/peers/NatsCluster.js"
import { freePort } from "../../src/programs/bench/peers/PeerServer.js"
import { type CliRole, forkCli, runCli, runCliWithin, smallRegionEnv } from "../helpers/CliRoles.js"
import { ensureDebianBinary } from "../helpers/DebianPackages.js"
import { tempDir, uniqueRegion } from "../helpers/Processes.js"

const natsServer = ensureDebianBinary("nats-server", "nats-server")
const skip = "skip" in natsServer ? natsServer.skip : undefined
if ("path" in natsServer) process.env["CXLOG_NATS_SERVER"] = natsServer.path

const TOPIC = "m"
const STREAM = "cxlog-m"

interface Log {
  readonly env: Record<string, string>
  readonly brokers: string
  readonly regionId: string
  /** Topic m's generation: with the region's id, what its message ids name. */
  readonly generation: number
}

/** A region with topic m (order 5), its head and one broker; mirror status files in a directory of the test's own. */
const startLog = (label: string, extraEnv: Record<string, string> = {}): Effect.Effect<Log, Error, Scope.Scope> =>
  Effect.gen(function*() {
    const region = yield* uniqueRegion(label)
    const statusDir = yield* tempDir("cxlog-mirror-status-")
    const env = { ...extraEnv, CXLOG_REGION: region, CXLOG_MIRROR_STATUS_DIR: statusDir }
    const head = yield* forkCli(["head", "--topic", `${TOPIC}:5:1`], env)
    yield* head.event("ready")
    const broker = yield* forkCli(["broker", "--broker-id", "0", "--port", "0"], env)
    const port = (yield* broker.event("listening"))["port"] as number
    const topics = yield* runCli(["topics", "--json"], env)
    const listed = JSON.parse(topics.stdout) as { regionId: string; topics: Array<{ generation: number }> }
    return { env, brokers: `127.0.0.1:${port}`, regionId: listed.regionId, generation: listed.topics[0]!.generation }
  })

const publish = (log: Log, count: number, bytes = 16) =>
  Effect.map(
    runCli([
      "publish",
      "--brokers",
      log.brokers,
      "--topic",
      TOPIC,
      "--count",
      `${count}`,
      "--message-bytes",
      `${bytes}`
    ], log.env),
    (r) => {
      expect(r.code, r.stderr).toBe(0)
    }
  )

const mirrorArgs = (
  cluster: NatsCluster,
  ...extra: ReadonlyArray<string>
) => ["mirror", "--topic", TOPIC, "--to", cluster.urls.join(","), "--stream", STREAM, ...extra]

/** The region's messages 0..count−1 as `cxlog subscribe --format json` prints them. */
const regionPayloads = (log: Log, count: number) =>
  Effect.map(runCli(["subscribe", "--topic", TOPIC, "--limit", `${count}`, "--format", "json"], log.env), (r) => {
    expect(r.code, r.stderr).toBe(0)
    return r.stdout.trim().split("\n").map((line) =>
      JSON.parse(line) as { offset: number; payload?: string; payloadBase64?: string }
    )
  })

/** A JetStream cluster of three and a region with `count` messages of topic TOPIC, mirrored once up to them. */
const mirroredOnce = (label: string, count: number, extraEnv: Record<string, string> = {}) =>
  Effect.gen(function*() {
    const cluster = yield* startNatsCluster(3)
    const log = yield* startLog(label, extraEnv)
    yield* publish(log, count)
    const first = yield* runCli(mirrorArgs(cluster, "--until", `${count}`), log.env)
    expect(first.code, first.stderr).toBe(0)
    return { cluster, log }
  })

const withJetStream = <A>(
  cluster: NatsCluster,
  use: (nc: Awaited<ReturnType<typeof connect>>) => Promise<A>
): Effect.Effect<A, Error> =>
  Effect.tryPromise({
    try: async () => {
      const nc = await connect({ servers: [...cluster.urls], noAsyncTraces: true })
      try {
        return await use(nc)
      } finally {
        await nc.close()
      }
    },
    catch: (e) => (e instanceof Error ? e : new Error(String(e)))
  })

/** Stops `mirror` with SIGTERM and waits for its exit, failing (naming the wait) if it has not exited within 30 s. */
const stopMirror = (mirror: CliRole) =>
  Effect.zipRight(
    Effect.sync(() => mirror.child.kill("SIGTERM")),
    mirror.exited.pipe(Effect.timeoutFail({
      duration: "30 seconds",
      onTimeout: () => new Error(`the mirror did not exit within 30 s of SIGTERM: ${mirror.output()}`)
    }))
  )

/** Messages in the stream now (0 while it does not exist or JetStream does not answer). */
const streamCount = (cluster: NatsCluster) =>
  withJetStream(
    cluster,
    async (nc) => (await (await jetstreamManager(nc, { timeout: 2_000 })).streams.info(STREAM)).state.messages
  ).pipe(Effect.orElseSucceed(() => 0))

/** Waits until the stream holds `atLeast` messages; fails when `mirror` exits first, with what it said. */
const awaitStreamCount = (cluster: NatsCluster, atLeast: number, mirror?: CliRole, timeoutMs = 90_000) =>
  Effect.gen(function*() {
    const deadline = Date.now() + timeoutMs
    let count = 0
    while ((count = yield* streamCount(cluster)) < atLeast) {
      if (mirror !== undefined && mirror.child.exitCode !== null) {
        return yield* Effect.fail(
          new Error(
            `the mirror exited (${mirror.child.exitCode}) with ${count} of ${atLeast} messages in the stream: ${mirror.output()}`
          )
        )
      }
      if (Date.now() > deadline) {
        return yield* Effect.fail(
          new Error(`the stream holds ${count} messages after ${timeoutMs} ms, expected ${atLeast}`)
        )
      }
      yield* Effect.sleep(100)
    }
    return count
  })

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

/** How long one reading of the stream may take, and how many more tries it gets (a second apart). */
const READ_BACK_MS = 60_000
const READ_BACK_RETRIES = 4
/** Messages asked for at once while reading the stream back. */
const READ_BACK_WINDOW = 256

/**
 * Every message of the stream, in sequence order, each asked of the stream's leader by its
 * sequence. Reading back is the audit's instrument, so it makes no consumer: for about 20 s after
 * a node of the cluster is SIGKILLed, nats-server 2.9 can leave a new consumer's creation
 * unanswered (the request times out) while the stream itself answers. A read that failed or has
 * not finished within READ_BACK_MS (the stream's leader being elected after a kill or a restart)
 * is made again with a new connection, a second later, up to READ_BACK_RETRIES times; then it
 * fails with the last error.
 */
const readStream = (cluster: NatsCluster) =>
  readStreamOnce(cluster).pipe(
    Effect.timeoutFail({
      duration: READ_BACK_MS,
      onTimeout: () => new Error(`reading the stream back did not finish within ${READ_BACK_MS} ms`)
    }),
    Effect.retry({ schedule: Schedule.spaced("1 second"), times: READ_BACK_RETRIES })
  )

const readStreamOnce = (cluster: NatsCluster) =>
  withJetStream(cluster, async (nc) => {
    const jsm = await jetstreamManager(nc)
    const total = (await jsm.streams.info(STREAM)).state.messages
    const out: Array<ReturnType<typeof readMirrored>> = []
    for (let first = 1; first <= total; first += READ_BACK_WINDOW) {
      const window = Array.from({ length: Math.min(READ_BACK_WINDOW, total - first + 1) }, async (_, i) => {
        const seq = first + i
        const m = await jsm.streams.getMessage(STREAM, { seq })
        if (m === null) throw new Error(`the stream holds ${total} messages and none at sequence ${seq}`)
        return readMirrored({ seq: m.seq, data: m.data, headers: m.header })
      })
      out.push(...await Promise.all(window))
    }
    return out
  })

/** The stream holds offsets 0..count−1 once each, in order, at sequences 1..count, with the region's payloads. */
const audit = (cluster: NatsCluster, log: Log, count: number) =>
  Effect.gen(function*() {
    const stream = yield* readStream(cluster)
    const region = yield* regionPayloads(log, count)
    expect(stream.length).toBe(count)
    const problems: Array<string> = []
    for (let i = 0; i < count && problems.length < 5; i++) {
      const m = stream[i]!
      const r = region[i]!
      const payload = r.payload === undefined ? Buffer.from(r.payloadBase64 ?? "", "base64") : Buffer.from(r.payload)
      if (
        m.sequence !== i + 1 || m.offset !== i || m.msgId !== `${log.regionId}/${TOPIC}/${log.generation}/${i}` ||
        !payload.equals(Buffer.from(m.payload))
      ) {
        problems.push(
          `sequence ${m.sequence}: offset ${m.offset}, id ${m.msgId}, ${m.payload.length} bytes (expected offset ${i})`
        )
      }
    }
    expect(problems).toEqual([])
  })

const topicsMirror = (log: Log) =>
  Effect.map(runCli(["topics", "--json"], log.env), (r) => {
    const report = JSON.parse(r.stdout) as {
      topics: Array<{ mirrors: Array<{ state: string; mirrored: number; lagOffsets: number; detail?: string }> }>
    }
    return report.topics[0]?.mirrors[0]
  })

const scrape = (port: number) =>
  Effect.tryPromise(() => fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text())).pipe(
    Effect.orElseSucceed(() => "")
  )

describe.skipIf(skip !== undefined)(
  `cxlog mirror into a 3-node JetStream cluster${skip === undefined ? "" : ` (skipped: ${skip})`}`,
  () => {
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
      "a topic deleted and created again under its name is another log: its mirror into the old stream is fenced; a missing topic makes no stream; a stream JetStream refuses ends the mirror at once",
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

    it.scopedLive(
      "docs/mirror.md's reader prints the region's order; a mirror behind retention stops with a typed error naming the offsets, and cxlog topics says so",
      () =>
        Effect.gen(function*() {
          const { cluster, log } = yield* mirroredOnce("mirrorbehind", 100, smallRegionEnv)
          // docs/mirror.md's reader, with nothing but the NATS client: the region's order and values.
          const script = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "scripts", "read-mirror.mjs")
          const read = execFileSync(process.execPath, [script, cluster.urls.join(","), STREAM], {
            encoding: "utf8",
            timeout: 60_000
          })
          const region = yield* runCli(["subscribe", "--topic", TOPIC, "--from", "0", "--limit", "100"], log.env)
          expect(region.code, region.stderr).toBe(0)
          expect(read.split("\n")).toHaveLength(101)
          expect(read).toBe(region.stdout)
          // Without its consumer the region holds nothing for the mirror: 3 MiB through a 1 MiB Blog.
          const removed = yield* runCli(["consumers", "--topic", TOPIC, "--remove", `mirror-${STREAM}`], log.env)
          expect(removed.code, removed.stderr).toBe(0)
          yield* publish(log, 3_000, 1024)
          const behind = yield* runCli(mirrorArgs(cluster), log.env)
          expect(behind.code).toBe(1)
          expect(behind.stderr).toMatch(
            /the mirror to stream cxlog-m is behind retention: it needs offset 100, the region holds offsets from \d+ on/
          )
          const status = yield* topicsMirror(log)
          expect(status?.state).toBe("behind-retention")
          expect(status?.mirrored).toBe(100)
          const text = yield* runCli(["topics"], log.env)
          expect(text.stdout).toMatch(/mirror m → stream cxlog-m .*: behind-retention, mirrored up to offset 100/)
          expect(yield* streamCount(cluster)).toBe(100)
        }),
      180_000
    )
  }
)
