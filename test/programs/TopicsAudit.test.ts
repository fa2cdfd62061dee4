/**
 * One client, many topics, across processes: a head with 100 topics (order 5) and two brokers as
 * `cxlog` processes; in this process a TCP publisher and a local publisher (appending into the
 * region itself) each publish to every topic in turn, and broker 1 is SIGKILLed while they do.
 * Read back by a pattern, in place and over TCP (`cxlog subscribe --topic 'audit.*'`), each topic
 * holds one gap-free order with every message of both publishers once, each publisher's in its
 * publish order (the audit of src/programs/run/Audit.ts, per topic).
 */
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Fiber, Layer, Schedule } from "effect"
import * as PublisherLayers from "../../src/layers/net/Publisher.js"
import * as SubscriberLayers from "../../src/layers/net/Subscriber.js"
import { attachRegion, localPublisher, processSlot, reader } from "../../src/layers/Roles.js"
import { AUDIT_HEADER_BYTES, makeAudit, stamp } from "../../src/programs/run/Audit.js"
import { Publisher, type PublisherShape } from "../../src/services/net/Publisher.js"
import { Subscriber } from "../../src/services/net/Subscriber.js"
import { type CliRole, forkCli, runCliWithin, smallRegionEnvFor } from "../helpers/CliRoles.js"
import { uniqueRegion } from "../helpers/Processes.js"

const TOPICS = 100
const PER_TOPIC = 150
const MESSAGE_BYTES = 48
const topicName = (k: number) => `audit.${String(k).padStart(3, "0")}`

/** Publishes messages 0 … PER_TOPIC-1 of `publisher` to every topic in turn (stamped: publisher, seq); `midway` halfway. */
const publishAll = (p: PublisherShape, publisher: number, midway: Effect.Effect<void, Error> = Effect.void) =>
  Effect.gen(function*() {
    const payload = new Uint8Array(MESSAGE_BYTES)
    const options = Array.from({ length: TOPICS }, (_, k) => ({ topic: topicName(k) }))
    for (let seq = 0; seq < PER_TOPIC; seq++) {
      if (seq === PER_TOPIC / 2) yield* midway
      stamp(payload, publisher, seq)
      for (let k = 0; k < TOPICS; k++) {
        const taken = p.tryPublish(payload, options[k])
        if (taken === true) continue
        if (taken !== false) return yield* Effect.fail(taken)
        yield* p.publish(payload, options[k])
      }
    }
    yield* p.flush(120_000)
  })

/** Each topic's audit of both publishers, and its offsets seen, from messages (topic, offset, payload). */
const auditor = () => {
  const audits = new Map(Array.from({ length: TOPICS }, (_, k) => [topicName(k), makeAudit(2, PER_TOPIC, 5)]))
  const offsets = new Map<string, Array<number>>()
  return {
    message: (topic: string, offset: number, payload: Uint8Array) => {
      expect(payload.length).toBeGreaterThanOrEqual(AUDIT_HEADER_BYTES)
      audits.get(topic)!.message(payload, 0, payload.length)
      const seen = offsets.get(topic) ?? []
      seen.push(offset)
      offsets.set(topic, seen)
    },
    /** Every topic: every message once, each publisher's in publish order, offsets 0, 1, 2, … */
    check: () => {
      for (const [topic, audit] of audits) {
        const result = audit.result(true)
        expect(result, topic).toMatchObject({ expected: 2 * PER_TOPIC, received: 2 * PER_TOPIC, passed: true })
        expect(offsets.get(topic), topic).toEqual(Array.from({ length: 2 * PER_TOPIC }, (_, i) => i))
      }
    }
  }
}

describe("one client, many topics, across processes", () => {
  it.scopedLive(
    `a TCP and a local publisher over ${TOPICS} topics, a broker SIGKILLed midway: every topic audits clean, read by a pattern in place and over TCP`,
    () =>
      Effect.gen(function*() {
        const region = yield* uniqueRegion("topics-audit")
        const env = {
          // Two brokers and one slot for the local publisher; small topics, many of them.
          ...smallRegionEnvFor(3, 512 << 10),
          CXLOG_HEAP_BYTES: `${512 << 20}`,
          CXLOG_REGION: region
        }
        const topicFlags = Array.from({ length: TOPICS }, (_, k) => ["--topic", `${topicName(k)}:5:1`]).flat()
        const head = yield* forkCli(["head", ...topicFlags], env)
        yield* head.event("ready", 60_000)
        const ports: Array<number> = []
        const brokers: Array<CliRole> = []
        for (let b = 0; b < 2; b++) {
          const broker = yield* forkCli(["broker", "--broker-id", `${b}`, "--port", "0"], env)
          ports.push((yield* broker.event("listening"))["port"] as number)
          brokers.push(broker)
        }
        const access = { name: region }
        const tcp = yield* PublisherLayers.make({
          brokers: ports.map((port) => ({ host: "127.0.0.1", port })),
          region,
          clientId: 11,
          batchBytes: 4096,
          maxBatchBytes: 256 << 10,
          ackTimeoutMs: 60_000
        })
        const local = yield* Effect.map(
          Layer.build(localPublisher(access, { clientId: 12, batchBytes: 4096, maxBatchBytes: 256 << 10 })),
          (context) => Context.get(context, Publisher)
        )
        // Once broker 1 carries batches of every topic, with some acknowledged: it dies with batches in flight.
        const kill = Effect.gen(function*() {
          yield* Effect.repeat(Effect.sync(() => tcp.stats().brokers[1]!), {
            until: (b) => b.sessions === TOPICS && b.acked > 0,
            schedule: Schedule.spaced("5 millis")
          }).pipe(Effect.timeoutFail({ duration: 60_000, onTimeout: () => new Error("broker 1 carried nothing") }))
          brokers[1]!.child.kill("SIGKILL")
        })
        const publishing = yield* Effect.fork(
          Effect.all([publishAll(tcp, 0, kill), publishAll(local, 1)], { concurrency: 2 })
        )
        yield* Fiber.join(publishing)
        yield* brokers[1]!.exited
        // What it carried went through broker 0 again (or was replayed in new sessions after a gap).
        expect(tcp.stats().brokers[1]!.sent).toBeGreaterThan(0)
        expect(tcp.stats().resends + tcp.stats().fences).toBeGreaterThan(0)

        // In place: every topic by one pattern.
        const inPlace = auditor()
        yield* Effect.scoped(
          Effect.gen(function*() {
            const subscriber = yield* Subscriber
            const subscription = yield* subscriber.subscribeTopics(["audit.*"])
            let received = 0
            while (received < TOPICS * 2 * PER_TOPIC) {
              const batch = yield* subscription.pull
              batch.forEach((m) => inPlace.message(m.topic, m.offset, m.payload))
              received += batch.count
            }
            expect(subscription.topics()).toHaveLength(TOPICS)
          })
        ).pipe(
          Effect.provide(
            SubscriberLayers.layer.pipe(
              Layer.provide(
                reader.pipe(Layer.provideMerge(processSlot("client")), Layer.provideMerge(attachRegion(access)))
              )
            )
          )
        )
        inPlace.check()

        // Over TCP, through the broker that lives, as `cxlog subscribe` prints it.
        const read = yield* runCliWithin(
          [
            "subscribe",
            "--brokers",
            `127.0.0.1:${ports[0]}`,
            "--topic",
            "audit.*",
            "--format",
            "json",
            "--limit",
            `${TOPICS * 2 * PER_TOPIC}`
          ],
          env,
          120_000
        )
        expect(read.code, read.stderr).toBe(0)
        const remote = auditor()
        for (const line of read.stdout.trim().split("\n")) {
          const { offset, payload, payloadBase64, topic } = JSON.parse(line) as {
            topic: string
            offset: number
            payload?: string
            payloadBase64?: string
          }
          remote.message(
            topic,
            offset,
            payloadBase64 === undefined ? Buffer.from(payload ?? "") : Buffer.from(payloadBase64, "base64")
          )
        }
        remote.check()
      }),
    300_000
  )
})
