/**
 * The subscriber's audit (`cxlog subscribe --audit-*`, used by `cxlog run` and `bench`): it
 * reads to the end of the ordered log, so a duplicate ordered after the last distinct message
 * is counted, and it tells messages lost (absent though it read to the end) from messages not
 * delivered (it stopped before the end). Publish order fails the audit only in order mode 5,
 * the one mode that promises it.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { messageRecordBytes } from "../../src/layers/net/BatchPayload.js"
import { crc32c } from "../../src/native/Crc32c.js"
import type { RoleEvent } from "../../src/programs/roles/Report.js"
import { readTopic } from "../../src/programs/roles/Subscribe.js"
import { AUDIT_HEADER_BYTES, stamp } from "../../src/programs/run/Audit.js"
import type { AppenderShape } from "../../src/services/log/Appender.js"
import { LogReader } from "../../src/services/log/LogReader.js"
import type { OrderMode } from "../../src/services/log/OrderModes.js"
import { drain, implementations, type LogCluster } from "../fixtures/log-harness.js"

const MESSAGE_BYTES = 16

/** Appends batch `batchSeq` of client 1 holding publisher 0's stamped messages `seqs`. */
const appendStamped = (appender: AppenderShape, batchSeq: number, seqs: ReadonlyArray<number>) => {
  const record = messageRecordBytes(MESSAGE_BYTES)
  const payload = new Uint8Array(seqs.length * record)
  const view = new DataView(payload.buffer)
  seqs.forEach((seq, i) => {
    view.setUint32(i * record, MESSAGE_BYTES, true)
    stamp(payload.subarray(i * record + 8, i * record + 8 + AUDIT_HEADER_BYTES), 0, seq)
  })
  const header = {
    clientId: 1,
    sessionEpoch: 0,
    batchSeq,
    messageCount: seqs.length,
    payloadBytes: payload.length,
    crc32c: crc32c(payload, 0, payload.length)
  }
  return appender.append("t", header, payload)
}

/** A topic in mode 2 (a resent batch is ordered again, as after a broker's death), with `batches` appended and ordered. */
const orderedLog = (cluster: LogCluster, batches: ReadonlyArray<ReadonlyArray<number>>) =>
  Effect.gen(function*() {
    yield* cluster.topics.create({ name: "t", order: 2, ackLevel: 1, replicationFactor: 1 })
    const appender = yield* cluster.appender(0)
    const sequencer = yield* cluster.sequencer()
    for (const [i, seqs] of batches.entries()) yield* appendStamped(appender, i, seqs)
    yield* drain(sequencer)
    return { appender, sequencer }
  })

/** Audits 10 messages of publisher 0 over the cluster's reader, as of a topic of order mode `order` (the log's, 2, unless given); `events` collects what it reports. */
const audit = (
  cluster: LogCluster,
  options: { publishersDone?: () => boolean; idleTimeoutMs: number; order?: OrderMode },
  events: Array<RoleEvent> = []
) =>
  readTopic({
    topic: "t",
    from: "earliest",
    audit: { publishers: 1, perPublisher: 10, order: options.order ?? 2 },
    ...options,
    reportEveryMs: 0,
    print: false,
    report: (e) => events.push(e)
  }).pipe(Effect.provideService(LogReader, cluster.reader))

for (const impl of implementations) {
  describe(`subscriber audit: ${impl.label}`, () => {
    it.scopedLive("reads to the log's end once the publishers are done: a duplicate ordered after the last distinct message is counted", () =>
      Effect.gen(function*() {
        const cluster = yield* impl.make()
        const { appender, sequencer } = yield* orderedLog(cluster, [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]])
        let publishersDone = false
        const events: Array<RoleEvent> = []
        const reading = yield* Effect.fork(
          audit(cluster, { publishersDone: () => publishersDone, idleTimeoutMs: 30_000 }, events)
        )
        // The subscriber has every message once before the duplicate is even appended.
        for (let i = 0; i < 5_000 && !events.some((e) => e.event === "progress" && e["messages"] === 10); i++) {
          yield* Effect.sleep("1 millis")
        }
        expect(events.some((e) => e.event === "progress" && e["messages"] === 10)).toBe(true)
        yield* appendStamped(appender, 2, [9])
        yield* drain(sequencer)
        publishersDone = true
        const result = yield* Fiber.join(reading)
        expect(result).toMatchObject({
          expected: 10,
          received: 11,
          duplicated: 1,
          lost: 0,
          notDelivered: 0,
          passed: false
        })
      }))

    it.scopedLive("a message absent up to the log's end is lost; with the publishers not done it is only not delivered", () =>
      Effect.gen(function*() {
        const withGap = Effect.tap(impl.make(), (cluster) => orderedLog(cluster, [[0, 1, 2, 3, 4], [5, 6, 8, 9]]))
        const toTheEnd = yield* audit(yield* withGap, { publishersDone: () => true, idleTimeoutMs: 200 })
        expect(toTheEnd).toMatchObject({ received: 9, lost: 1, notDelivered: 0, duplicated: 0, passed: false })
        const stoppedEarly = yield* audit(yield* withGap, { publishersDone: () => false, idleTimeoutMs: 200 })
        expect(stoppedEarly).toMatchObject({ received: 9, lost: 0, notDelivered: 1, duplicated: 0, passed: false })
      }))

    it.scopedLive("without a publishers-done signal the end is taken once every message arrived; a clean log passes", () =>
      Effect.gen(function*() {
        const cluster = yield* impl.make()
        yield* orderedLog(cluster, [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]])
        expect(yield* audit(cluster, { idleTimeoutMs: 30_000 })).toMatchObject({
          received: 10,
          lost: 0,
          notDelivered: 0,
          duplicated: 0,
          outOfOrder: 0,
          passed: true
        })
      }))

    it.scopedLive("messages out of publish order are counted; they fail the audit of an order 5 topic only", () =>
      Effect.gen(function*() {
        // As order 2 orders batches carried by two brokers: the second broker's batch first.
        const cluster = yield* impl.make()
        yield* orderedLog(cluster, [[5, 6, 7, 8, 9], [0, 1, 2, 3, 4]])
        const unpromised = yield* audit(cluster, { idleTimeoutMs: 30_000, order: 2 })
        expect(unpromised).toMatchObject({
          received: 10,
          lost: 0,
          duplicated: 0,
          outOfOrder: 2,
          publishOrder: false,
          passed: true
        })
        const promised = yield* audit(cluster, { idleTimeoutMs: 30_000, order: 5 })
        expect(promised).toMatchObject({
          received: 10,
          lost: 0,
          duplicated: 0,
          outOfOrder: 2,
          publishOrder: true,
          passed: false
        })
      }))
  })
}
