/**
 * `cxlog bench --type topics`: topics as applications use them, many and small, in one region of
 * at most 1 GiB. A head and one broker run as processes; this process joins the region as a
 * coordinator client and a reader, and publishes through one TCP publisher:
 *
 * 1. creates `--topics` topics of 64 KiB each at runtime (each create timed, one at a time),
 * 2. publishes a few stamped messages to every one of them through the one publisher and audits
 *    each topic in place (its messages, once each, in order),
 * 3. deletes them all (each timed) and waits for the heap to come back to where it was,
 * 4. creates them all again (`recreatedAfterDelete`: they fit where the first round did), deletes
 *    them again,
 * 5. `manyTopicsRatio`: MB/s of 1 KiB messages spread round-robin over `--ratio-topics` topics
 *    through the one publisher ÷ MB/s into the one topic, alternating rounds after a warm round
 *    of each, same run; a phase is `--bytes`, or enough for 16 full batches per topic if more.
 *
 * With `--local` the publisher is a local one in this process (it appends into the region itself,
 * in a broker slot of its own): the same steps, with no broker between the client and the region.
 */
import { Console, Context, Effect, Layer } from "effect"
import { statSync } from "node:fs"
import { forEachMessage } from "../../layers/net/BatchPayload.js"
import * as PublisherLayers from "../../layers/net/Publisher.js"
import {
  attachRegion,
  controlTransport,
  coordinatorClient,
  localPublisher,
  processSlot,
  reader
} from "../../layers/Roles.js"
import { Coordinator } from "../../services/control/Coordinator.js"
import { LogReader } from "../../services/log/LogReader.js"
import { Topics } from "../../services/log/Topics.js"
import { Publisher, type PublisherShape } from "../../services/net/Publisher.js"
import { percentile, summarize } from "../report/Percentiles.js"
import { table } from "../report/Table.js"
import { AUDIT_HEADER_BYTES, stamp } from "../run/Audit.js"
import { type RoleProcess, startHeadAndBrokers } from "../run/Cluster.js"
import { benchRegion } from "./BenchRegion.js"

export interface TopicsBenchOptions {
  /** Topics created, written, audited, deleted and created again. */
  readonly topics: number
  /** Topics the many-topics throughput is spread over. */
  readonly ratioTopics: number
  /** Bytes of each measured throughput phase. */
  readonly ratioBytes: number
  readonly rounds: number
  readonly json: boolean
  /** The client is a local publisher in this process, not a TCP one through the broker. */
  readonly local: boolean
}

const MiB = 1 << 20
/** The region's heap: with the region's fixed parts, the region stays within 1 GiB (checked). */
const HEAP_BYTES = 896 * MiB
const REGION_LIMIT_BYTES = 1024 * MiB
/** Each of the many small topics' memory (one writer: the broker). */
const SMALL_TOPIC_MEMORY = 64 << 10
/** The one topic of the throughput reference, and each of the many it is compared with. */
const ONE_TOPIC_MEMORY = 64 * MiB
const RATIO_TOPIC_MEMORY = 512 << 10
/** Stamped messages each small topic gets, and their size. */
const MESSAGES_PER_TOPIC = 4
const SMALL_MESSAGE_BYTES = 64
const RATIO_MESSAGE_BYTES = 1024
/** The publisher's batch size, and how many of them each topic gets at least in a throughput phase. */
const BATCH_BYTES = 64 << 10
const BATCHES_PER_TOPIC = 16
/** How long the heap may take to come back once the topics are deleted (holders let go within a tick or two). */
const MEMORY_BACK_MS = 30_000

const smallName = (i: number) => `small.${String(i).padStart(5, "0")}`
const ratioName = (i: number) => `many.${String(i).padStart(4, "0")}`

/** Creates the topics one at a time, timing each; stops at the first refusal (the region is full). */
const createAll = (names: ReadonlyArray<string>, memory: number) =>
  Effect.gen(function*() {
    const coordinator = yield* Coordinator
    const latenciesUs: Array<number> = []
    for (const name of names) {
      const started = performance.now()
      const created = yield* Effect.either(
        coordinator.createTopic({ name, order: 5, ackLevel: 1, replicationFactor: 1, memory, writers: 1 })
      )
      if (created._tag === "Left") return { latenciesUs, refused: created.left.message }
      latenciesUs.push((performance.now() - started) * 1000)
    }
    return { latenciesUs, refused: undefined }
  })

const deleteAll = (names: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const coordinator = yield* Coordinator
    const latenciesUs: Array<number> = []
    for (const name of names) {
      const started = performance.now()
      yield* coordinator.deleteTopic(name)
      latenciesUs.push((performance.now() - started) * 1000)
    }
    return latenciesUs
  })

const freeBytes = Effect.flatMap(Topics, (topics) => Effect.map(topics.overview, (o) => o.heap.freeBytes))

/** Waits until the heap's free bytes are back to `baseline` (true), or `MEMORY_BACK_MS` passed (false). */
const memoryBack = (baseline: number) =>
  Effect.gen(function*() {
    const deadline = performance.now() + MEMORY_BACK_MS
    while (performance.now() < deadline) {
      if ((yield* freeBytes) >= baseline) return true
      yield* Effect.sleep(100)
    }
    return false
  })

/** The cluster's role processes whose CPU a phase reports beside the publisher's. */
interface PhaseRoles {
  readonly head: RoleProcess
  readonly brokers: ReadonlyArray<RoleProcess>
}

/** A local publisher in this process, for the bench's scope: the same batches and window as the TCP one. */
const localClient = (region: string) =>
  Effect.map(
    Layer.build(localPublisher({ name: region }, { batchBytes: BATCH_BYTES, maxInFlightBatches: 256 })),
    (context) => Context.get(context, Publisher)
  )

/** CPU seconds the roles spent so far: the head's, and the brokers' together (0 for one that exited). */
const rolesCpuSeconds = (roles: PhaseRoles) => ({
  head: roles.head.cpuSeconds() ?? 0,
  brokers: roles.brokers.reduce((sum, broker) => sum + (broker.cpuSeconds() ?? 0), 0)
})

/**
 * Publishes `messages` messages, message i to `topics[i % topics.length]`, honouring backpressure:
 * MB/s until all are acknowledged, messages per batch, and the CPU per GiB of the publisher and the roles.
 */
const publishSpread = (
  publisher: PublisherShape,
  roles: PhaseRoles,
  topics: ReadonlyArray<{ readonly topic: string }>,
  messages: number,
  payload: (i: number) => Uint8Array
) =>
  Effect.gen(function*() {
    const before = publisher.stats()
    const rolesBefore = rolesCpuSeconds(roles)
    const cpuBefore = process.cpuUsage()
    const started = performance.now()
    let bytes = 0
    for (let i = 0; i < messages; i++) {
      const options = topics[i % topics.length]
      const message = payload(i)
      bytes += message.length
      const taken = publisher.tryPublish(message, options)
      if (taken === true) continue
      if (taken !== false) return yield* Effect.fail(taken)
      yield* publisher.publish(message, options)
    }
    yield* publisher.flush(300_000)
    const mbps = bytes / 1e6 / ((performance.now() - started) / 1000)
    const after = publisher.stats()
    const cpu = process.cpuUsage(cpuBefore)
    const rolesAfter = rolesCpuSeconds(roles)
    const gib = bytes / (1 << 30)
    return {
      mbps,
      messagesPerBatch: (after.messages - before.messages) / Math.max(1, after.batches - before.batches),
      cpuSecondsPerGiB: {
        publisher: (cpu.user + cpu.system) / 1e6 / gib,
        head: (rolesAfter.head - rolesBefore.head) / gib,
        brokers: (rolesAfter.brokers - rolesBefore.brokers) / gib
      }
    }
  })

/** Message `seq` of topic `topic` (its index): the audit reads both back. */
const stamped = (topic: number, seq: number) => {
  const payload = new Uint8Array(SMALL_MESSAGE_BYTES)
  stamp(payload, topic, seq)
  return payload
}

/** Topics audited between two turns of the event loop. */
const AUDIT_GROUP = 32

/** Reads every topic in place: each must hold its `MESSAGES_PER_TOPIC` messages, once each, in order. The first problem, if any. */
const auditAll = (names: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const log = yield* LogReader
    const u32 = (b: Uint8Array, o: number) => new DataView(b.buffer, b.byteOffset + o, 4).getUint32(0, true)
    for (let t = 0; t < names.length; t++) {
      // Reads in place never wait: the event loop runs between groups, or this process's heartbeat and
      // RPC reader would stall for the seconds ten thousand topics take, and the head would drop it.
      if (t % AUDIT_GROUP === AUDIT_GROUP - 1) yield* Effect.sleep(0)
      const name = names[t]!
      const seen: Array<string> = []
      yield* Effect.scoped(Effect.gen(function*() {
        const cursor = yield* log.subscribe(name, { from: "earliest" })
        while (seen.length < MESSAGES_PER_TOPIC) {
          // A batch's records carry its base time, keys and headers before each value: read the values.
          const read = yield* cursor.pollBatches((batch) =>
            forEachMessage(batch.bytes.subarray(batch.offset, batch.offset + batch.length), batch.messageCount, (m) => {
              const p = m.payload
              seen.push(p.length < AUDIT_HEADER_BYTES ? "short" : `${u32(p, 0)}/${u32(p, 4)}`)
            })
          )
          if (read === 0 && !(yield* cursor.awaitMore(5_000))) break
        }
      }))
      const expected = Array.from({ length: MESSAGES_PER_TOPIC }, (_, seq) => `${t}/${seq}`)
      if (seen.join(",") !== expected.join(",")) {
        return `topic ${name}: read ${seen.join(",") || "nothing"}, expected ${expected.join(",")}`
      }
    }
    return undefined
  })

export const benchTopics = (options: TopicsBenchOptions) =>
  Effect.scoped(Effect.gen(function*() {
    const region = yield* benchRegion("topics")
    const env: Record<string, string> = {
      CXLOG_REGION: region,
      CXLOG_HEAP_BYTES: `${HEAP_BYTES}`,
      CXLOG_LOG_MAX_BROKERS: "4",
      CXLOG_BROKER_MAX_SESSIONS: `${Math.max(4096, options.topics + options.ratioTopics + 1)}`
    }
    const { brokers, head, ports } = yield* startHeadAndBrokers("one:5:1", 1, env, () => ({}), [
      "--memory",
      `${ONE_TOPIC_MEMORY}`,
      "--writers",
      "1"
    ])
    const regionBytes = statSync(`/dev/shm/${region}`).size
    const joined = Layer.mergeAll(coordinatorClient(), reader).pipe(
      Layer.provideMerge(controlTransport),
      Layer.provideMerge(processSlot("client")),
      Layer.provideMerge(attachRegion({ name: region }))
    )
    return yield* Effect.gen(function*() {
      const publisher = options.local
        ? yield* localClient(region)
        : yield* PublisherLayers.make({
          brokers: ports.map((port) => ({ host: "127.0.0.1", port })),
          // The head's local secret: the region's own user.
          region,
          batchBytes: BATCH_BYTES,
          maxInFlightBatches: 256
        })
      const baseline = yield* freeBytes
      const small = Array.from({ length: options.topics }, (_, i) => smallName(i))

      const first = yield* createAll(small, SMALL_TOPIC_MEMORY)
      const created = first.latenciesUs.length
      const names = small.slice(0, created)
      const afterCreate = yield* freeBytes
      const roles: PhaseRoles = { head, brokers }
      yield* publishSpread(
        publisher,
        roles,
        names.map((topic) => ({ topic })),
        created * MESSAGES_PER_TOPIC,
        (i) => stamped(i % created, Math.floor(i / created))
      )
      const afterPublish = yield* freeBytes
      const auditProblem = yield* auditAll(names)
      const deletesUs = yield* deleteAll(names)
      const backAfterDelete = yield* memoryBack(baseline)

      const second = yield* createAll(names, SMALL_TOPIC_MEMORY)
      const recreated = second.latenciesUs.length
      yield* deleteAll(names.slice(0, recreated))
      const backAfterSecond = yield* memoryBack(baseline)

      // The throughput reference: the one topic, and the same bytes spread over the many, in alternating rounds.
      const many = Array.from({ length: options.ratioTopics }, (_, i) => ratioName(i))
      const manyCreated = yield* createAll(many, RATIO_TOPIC_MEMORY)
      if (manyCreated.refused !== undefined) {
        return yield* Effect.dieMessage(
          `bench topics: creating the ${options.ratioTopics} topics failed: ${manyCreated.refused}`
        )
      }
      const payload = new Uint8Array(RATIO_MESSAGE_BYTES).fill(7)
      const one = [{ topic: "one" }]
      const spread = many.map((topic) => ({ topic }))
      // A phase fills each topic's batch many times over: it measures publishing, not the gathering of a first batch.
      const phaseBytes = Math.max(options.ratioBytes, BATCHES_PER_TOPIC * options.ratioTopics * BATCH_BYTES)
      const messages = Math.max(1, Math.floor(phaseBytes / RATIO_MESSAGE_BYTES))
      // A round of each, not measured: every topic's session registered, its lane taken, both paths warm.
      yield* publishSpread(publisher, roles, spread, messages, () => payload)
      yield* publishSpread(publisher, roles, one, messages, () => payload)
      type Run = Effect.Effect.Success<ReturnType<typeof publishSpread>>
      const oneRuns: Array<Run> = []
      const manyRuns: Array<Run> = []
      for (let r = 0; r < options.rounds; r++) {
        oneRuns.push(yield* publishSpread(publisher, roles, one, messages, () => payload))
        manyRuns.push(yield* publishSpread(publisher, roles, spread, messages, () => payload))
      }
      const oneTopicMBps = median(oneRuns.map((r) => r.mbps))
      const manyTopicsMBps = median(manyRuns.map((r) => r.mbps))
      const creates = summarize(first.latenciesUs)
      const deletes = summarize(deletesUs)
      const result = {
        bench: "topics",
        // Who published: a TCP publisher through the broker, or a local one appending itself.
        client: options.local ? "local" as const : "tcp" as const,
        regionBytes,
        regionWithinLimit: regionBytes <= REGION_LIMIT_BYTES,
        heapBytes: HEAP_BYTES,
        topicMemoryBytes: SMALL_TOPIC_MEMORY,
        topicsAsked: options.topics,
        topicsCreated: created,
        ...(first.refused === undefined ? {} : { createRefused: first.refused }),
        createP50Us: Math.round(creates.p50),
        createP99Us: Math.round(creates.p99),
        deleteP50Us: Math.round(deletes.p50),
        deleteP99Us: Math.round(deletes.p99),
        bytesPerTopic: Math.round((baseline - afterCreate) / Math.max(1, created)),
        bytesPerTopicWritten: Math.round((baseline - afterPublish) / Math.max(1, created)),
        auditPassed: auditProblem === undefined && created === options.topics,
        ...(auditProblem === undefined ? {} : { auditProblem }),
        auditedMessages: created * MESSAGES_PER_TOPIC,
        memoryBackAfterDelete: backAfterDelete && backAfterSecond,
        recreatedAfterDelete: recreated === created && created > 0,
        ratioTopics: options.ratioTopics,
        messageBytes: RATIO_MESSAGE_BYTES,
        oneTopicMBps,
        manyTopicsMBps,
        roundsMBps: { one: oneRuns.map((r) => r.mbps), many: manyRuns.map((r) => r.mbps) },
        // How full each phase's batches were: spread over many topics, each topic's batch gathers less.
        messagesPerBatch: {
          one: median(oneRuns.map((r) => r.messagesPerBatch)),
          many: median(manyRuns.map((r) => r.messagesPerBatch))
        },
        // Where each phase's CPU went, per GiB published (medians over the rounds).
        cpuSecondsPerGiB: { one: cpuPerGiB(oneRuns), many: cpuPerGiB(manyRuns) },
        manyTopicsRatio: manyTopicsMBps / oneTopicMBps
      }
      if (!options.json) yield* Console.log(describe(result))
      yield* Console.log(JSON.stringify(result))
      return result
    }).pipe(Effect.provide(joined))
  }))

const median = (values: ReadonlyArray<number>) => percentile(Float64Array.from(values).sort(), 50)

const cpuPerGiB = (
  runs: ReadonlyArray<{ readonly cpuSecondsPerGiB: Record<"publisher" | "head" | "brokers", number> }>
) => ({
  publisher: median(runs.map((r) => r.cpuSecondsPerGiB.publisher)),
  head: median(runs.map((r) => r.cpuSecondsPerGiB.head)),
  brokers: median(runs.map((r) => r.cpuSecondsPerGiB.brokers))
})

const describe = (r: {
  readonly client: "local" | "tcp"
  readonly regionBytes: number
  readonly topicsCreated: number
  readonly createP50Us: number
  readonly createP99Us: number
  readonly deleteP50Us: number
  readonly bytesPerTopic: number
  readonly auditPassed: boolean
  readonly memoryBackAfterDelete: boolean
  readonly recreatedAfterDelete: boolean
  readonly ratioTopics: number
  readonly oneTopicMBps: number
  readonly manyTopicsMBps: number
  readonly manyTopicsRatio: number
}) =>
  table(["cxlog bench topics", "figure"], [
    [`topics created at runtime in a ${(r.regionBytes / MiB).toFixed(0)} MiB region`, r.topicsCreated],
    ["create p50 / p99 µs (one at a time, through the head's coordinator)", `${r.createP50Us} / ${r.createP99Us}`],
    ["delete p50 µs", r.deleteP50Us],
    ["heap bytes per topic", r.bytesPerTopic],
    ["every topic audited clean", `${r.auditPassed}`],
    ["memory back after deleting all; all created again", `${r.memoryBackAfterDelete}; ${r.recreatedAfterDelete}`],
    [
      `MB/s into 1 topic / spread over ${r.ratioTopics} (1 KiB messages, one ${
        r.client === "local" ? "local publisher" : "TCP publisher"
      })`,
      `${r.oneTopicMBps.toFixed(0)} / ${r.manyTopicsMBps.toFixed(0)}`
    ],
    ["manyTopicsRatio", r.manyTopicsRatio.toFixed(2)]
  ])
