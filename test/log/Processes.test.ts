/**
 * The log across processes: 4 appender processes (4 brokers, sessions spread over all of
 * them, each with an ACK window), a sequencer process and an auditing reader process over
 * the native region in mode 5 — once straight through, then with each session's batches from one
 * broker: once with appenders SIGKILLed at random moments and started again, once with the
 * sequencer SIGKILLed mid-run under a standby that takes over.
 */
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Queue } from "effect"
import { type LogConfig, withBlogBytes } from "../../src/layers/log/Layout.js"
import * as CxlMemoryLayers from "../../src/layers/region/CxlMemory.js"
import { regionSize, testRegion, testTopics } from "../fixtures/log-harness.js"
import { type Child, spawnFixture, uniqueRegion } from "../helpers/Processes.js"

const config: LogConfig = withBlogBytes({
  maxBrokers: 4,
  pbrSlots: 1024,
  goiSlots: 4096,
  sessionSlots: 64,
  subscriberSlots: 4,
  listenerSlots: 16,
  maxBatchBytes: 1 << 20
}, 8 << 20)

const BROKERS = 4
const SESSIONS = 8
const MESSAGES_PER_BATCH = 32
const MESSAGE_BYTES = 1024
const WINDOW = 16

interface Audit {
  readonly messages: number
  readonly lost: number
  readonly duplicated: number
  readonly fifoViolations: number
  readonly crcErrors: number
  readonly outOfOrder: number
  readonly badMessages: number
  readonly mbps: number
}

/** What an appender process says when it has appended all its batches (test/fixtures/log-appender.ts). */
interface AppenderDone {
  readonly done?: boolean
  readonly brokerId: number
  /** Its deliberate doubles: every 64th batch appended twice. */
  readonly doubled: number
  /** Its appends of batches the log had already ordered when this incarnation started (a restart's resends). */
  readonly resent: number
  /** The lowest batch among those. */
  readonly resentFrom?: number
  readonly rounds: number
}

/**
 * `mib` of messages through the cluster; the sequencer SIGKILLed and started again at
 * `killSequencerAt` of the way; `appenderKills` appender processes SIGKILLed, each at a random
 * moment (most of an appender's time goes to appends and the rounds it runs itself after them)
 * once the reader is that far through, and started again.
 */
const cluster = (mib: number, killSequencerAt?: number, appenderKills = 0, spread = true) =>
  Effect.gen(function*() {
    const name = yield* uniqueRegion("audit")
    const region = yield* CxlMemoryLayers.make({
      name,
      size: regionSize(config),
      mode: "create",
      params: testRegion(config).params
    })
    const topics = yield* testTopics(region, testRegion(config).area)
    yield* topics.create({ name: "audit", order: 5, ackLevel: 1, replicationFactor: 1 })
    const batchesPerSession = Math.ceil((mib * 2 ** 20) / MESSAGE_BYTES / MESSAGES_PER_BATCH / SESSIONS)
    const expected = batchesPerSession * SESSIONS * MESSAGES_PER_BATCH
    const sequencer = (bellIndex: number) => spawnFixture("log-sequencer", [name, `${bellIndex}`, "60000"])
    let current: Child = yield* sequencer(0)
    yield* current.next<{ starting: boolean }>()
    const first = yield* current.next<{ ready: boolean; epoch: number }>()
    expect(first.ready).toBe(true)
    // The sequencer's restart (a process start on a loaded machine) may take longer than the default head-lost bound: here it is expected.
    const reader = yield* spawnFixture("log-reader", [name, "1", `${expected}`, `${MESSAGE_BYTES}`], {
      CXLOG_HEAD_LOST_MS: "60000"
    })
    const readerReady = yield* reader.next()
    expect(readerReady, JSON.stringify(readerReady)).toEqual({ ready: true })
    const appender = (b: number) =>
      spawnFixture("log-appender", [
        name,
        `${2 + b}`,
        `${b}`,
        `${BROKERS}`,
        `${SESSIONS}`,
        `${batchesPerSession}`,
        `${MESSAGES_PER_BATCH}`,
        `${MESSAGE_BYTES}`,
        `${WINDOW}`,
        spread ? "1" : "0"
      ])
    const appenders = yield* Effect.forEach(Array.from({ length: BROKERS }, (_, b) => b), appender)
    let restartedEpoch: number | undefined
    let appendersKilled = 0
    let killedRounds = 0
    const killed = new Set<number>()
    for (;;) {
      const message = yield* reader.next<{ progress?: number; audit?: Audit; stalled?: boolean; error?: string }>(
        120_000
      )
      if (message.audit !== undefined || message.stalled === true || message.error !== undefined) {
        expect(
          message.stalled,
          `${JSON.stringify(message)}; sequencer: ${current.stderr()}; appenders: ${
            appenders.map((a) => a.stderr()).join(" | ")
          }`
        ).toBeUndefined()
        expect(message.error).toBeUndefined()
        const done = yield* Effect.forEach(
          appenders,
          (a) => a.next<AppenderDone>(30_000).pipe(Effect.repeat({ until: (m) => m.done === true }))
        )
        // The fixture's deliberate doubles (every 64th batch appended twice), apart from a restart's resends.
        expect(done.reduce((n, d) => n + d.doubled, 0)).toBeGreaterThan(0)
        // Rounds the appenders ran themselves: each finished one's, and what each killed one last said.
        const appenderRounds = done.reduce((n, d) => n + d.rounds, killedRounds)
        return {
          audit: message.audit!,
          expected,
          firstEpoch: first.epoch,
          restartedEpoch,
          appendersKilled,
          killed,
          done,
          appenderRounds
        }
      }
      // Every kill this progress is due for (a step of the reader's may pass two of them).
      while (
        appendersKilled < appenderKills && message.progress! >= (expected * (appendersKilled + 1)) / (appenderKills + 2)
      ) {
        const b = Math.floor(Math.random() * BROKERS)
        yield* Effect.sleep(Math.floor(Math.random() * 50))
        appenders[b]!.process.kill("SIGKILL")
        yield* appenders[b]!.exited
        const said = yield* Queue.takeAll(appenders[b]!.messages)
        killedRounds += Math.max(0, ...Chunk.toReadonlyArray(said).map((m) => (m as { rounds?: number }).rounds ?? 0))
        appenders[b] = yield* appender(b)
        appendersKilled++
        killed.add(b)
      }
      if (
        killSequencerAt !== undefined && restartedEpoch === undefined && message.progress! >= expected * killSequencerAt
      ) {
        // A standby waits for the lease while the appenders order their own rounds; the head is SIGKILLed under them.
        const standby = yield* sequencer(6)
        yield* standby.next<{ starting: boolean }>()
        current.process.kill("SIGKILL")
        yield* current.exited
        current = standby
        restartedEpoch = (yield* current.next<{ epoch: number }>()).epoch
      }
    }
  })

const expectClean = (audit: Audit, expected: number) => {
  expect(audit).toMatchObject({
    messages: expected,
    lost: 0,
    duplicated: 0,
    fifoViolations: 0,
    crcErrors: 0,
    outOfOrder: 0,
    badMessages: 0
  })
}

describe("the log across processes (mode 5, 1 KiB messages)", () => {
  it.scopedLive(
    "4 appenders + a sequencer + an auditing reader over 256 MiB: nothing lost, duplicated or out of order",
    () =>
      Effect.gen(function*() {
        const { audit, expected } = yield* cluster(process.env["CXLOG_STRESS"] ? 1024 : 256)
        expectClean(audit, expected)
        expect(audit.messages * MESSAGE_BYTES).toBeGreaterThanOrEqual(256 * 2 ** 20)
      }),
    180_000
  )

  it.scopedLive(
    "appenders (which order their own batches) SIGKILLed at random moments 6 times and started again, resending from their first batch: the audit still passes",
    () =>
      Effect.gen(function*() {
        // Each session's batches from one broker, as below: with sessions spread, a killed broker's
        // missing batch holds its session's later ones on the others, and a held batch keeps the topic
        // the head's, so on a loaded machine no appender ordered a round of its own in the whole run.
        const { audit, expected, appendersKilled, killed, done, appenderRounds } = yield* cluster(
          64,
          undefined,
          6,
          false
        )
        expect(appendersKilled).toBe(6)
        expect(appenderRounds).toBeGreaterThan(0)
        // A killed broker's last incarnation appends again from its first batch (broker b's first is
        // session b's batch 0) what the log already held; the brokers never killed resent nothing. A
        // broker killed before the log held any batch of its sessions (its process still starting, on
        // a loaded machine) has nothing to resend, so the run as a whole must have resent something.
        for (const d of done) {
          if (!killed.has(d.brokerId)) expect(d.resent, JSON.stringify(d)).toBe(0)
          else if (d.resent > 0) expect(d.resentFrom, JSON.stringify(d)).toBe(0)
        }
        expect(done.reduce((n, d) => n + d.resent, 0), JSON.stringify(done)).toBeGreaterThan(0)
        expectClean(audit, expected)
      }),
    180_000
  )

  it.scopedLive(
    "the head SIGKILLed mid-run while the appenders order their own rounds, a standby waiting: it takes over and the audit still passes",
    () =>
      Effect.gen(function*() {
        // Each session's batches from one broker: none waits for another's, so the head leaves every
        // round to the appenders that can run it (a spread session's batch held for its predecessor
        // keeps the topic the head's, which on a loaded machine can be the whole run).
        const { audit, expected, firstEpoch, restartedEpoch, done, appenderRounds } = yield* cluster(64, 0.3, 0, false)
        expect(restartedEpoch).toBe(firstEpoch + 1)
        expect(done.map((d) => d.resent)).toEqual([0, 0, 0, 0])
        expect(appenderRounds).toBeGreaterThan(0)
        expectClean(audit, expected)
      }),
    180_000
  )
})
