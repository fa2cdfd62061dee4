/**
 * What the tests of `cxlog mirror` against real JetStream (test/mirror/Mirror*.test.ts) share: a
 * 3-node `nats-server` cluster on loopback (Debian's package, installed by the suite's global
 * setup where missing), a region with a head and a broker, the bundled CLI, and the audit of a
 * stream against the region: offsets 0..N−1 once each, in order, at sequences 1..N, with the
 * region's payloads and message ids.
 */
import { expect } from "@effect/vitest"
import { jetstreamManager } from "@nats-io/jetstream"
import { connect } from "@nats-io/transport-node"
import { Effect, Schedule, type Scope } from "effect"
import { readMirrored } from "../../src/layers/mirror/MirrorRecord.js"
import { type NatsCluster, startNatsCluster } from "../../src/programs/bench/peers/NatsCluster.js"
import { type CliRole, forkCli, runCli } from "./CliRoles.js"
import { ensureDebianBinary } from "./DebianPackages.js"
import { tempDir, uniqueRegion } from "./Processes.js"

const natsServer = ensureDebianBinary("nats-server", "nats-server")
/** Why the tests cannot run here (no nats-server), if they cannot. */
export const skip = "skip" in natsServer ? natsServer.skip : undefined
if ("path" in natsServer) process.env["CXLOG_NATS_SERVER"] = natsServer.path

export const TOPIC = "m"
export const STREAM = "cxlog-m"

export interface Log {
  readonly env: Record<string, string>
  readonly brokers: string
  readonly regionId: string
  /** Topic m's generation: with the region's id, what its message ids name. */
  readonly generation: number
}

/** A region with topic m (order 5), its head and one broker; mirror status files in a directory of the test's own. */
export const startLog = (
  label: string,
  extraEnv: Record<string, string> = {}
): Effect.Effect<Log, Error, Scope.Scope> =>
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

export const publish = (log: Log, count: number, bytes = 16) =>
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

export const mirrorArgs = (
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
export const mirroredOnce = (label: string, count: number, extraEnv: Record<string, string> = {}) =>
  Effect.gen(function*() {
    const cluster = yield* startNatsCluster(3)
    const log = yield* startLog(label, extraEnv)
    yield* publish(log, count)
    const first = yield* runCli(mirrorArgs(cluster, "--until", `${count}`), log.env)
    expect(first.code, first.stderr).toBe(0)
    return { cluster, log }
  })

export const withJetStream = <A>(
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
export const stopMirror = (mirror: CliRole) =>
  Effect.zipRight(
    Effect.sync(() => mirror.child.kill("SIGTERM")),
    mirror.exited.pipe(Effect.timeoutFail({
      duration: "30 seconds",
      onTimeout: () => new Error(`the mirror did not exit within 30 s of SIGTERM: ${mirror.output()}`)
    }))
  )

/** Messages in the stream now (0 while it does not exist or JetStream does not answer). */
export const streamCount = (cluster: NatsCluster) =>
  withJetStream(
    cluster,
    async (nc) => (await (await jetstreamManager(nc, { timeout: 2_000 })).streams.info(STREAM)).state.messages
  ).pipe(Effect.orElseSucceed(() => 0))

/** Waits until the stream holds `atLeast` messages; fails when `mirror` exits first, with what it said. */
export const awaitStreamCount = (cluster: NatsCluster, atLeast: number, mirror?: CliRole, timeoutMs = 90_000) =>
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
export const readStream = (cluster: NatsCluster) =>
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
export const audit = (cluster: NatsCluster, log: Log, count: number) =>
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

export const topicsMirror = (log: Log) =>
  Effect.map(runCli(["topics", "--json"], log.env), (r) => {
    const report = JSON.parse(r.stdout) as {
      topics: Array<{ mirrors: Array<{ state: string; mirrored: number; lagOffsets: number; detail?: string }> }>
    }
    return report.topics[0]?.mirrors[0]
  })

/** A suite's title: what it tests, and why it is skipped where it is. */
export const suiteTitle = (what: string) =>
  `cxlog mirror into a 3-node JetStream cluster: ${what}${skip === undefined ? "" : ` (skipped: ${skip})`}`
