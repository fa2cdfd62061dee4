/**
 * Each system of the group bench as the bench sets it up for one run, before its clock starts:
 * its server (cxlog's head, `redis-server`, `nats-server`, each started anew for the run and
 * stopped with its scope), the run's messages stored in memory (the same stamped payloads for
 * every system: PeerReadBack.ts), and the group its members join — a cxlog consumer group, a
 * Redis stream's consumer group, a JetStream work-queue stream's durable pull consumer with
 * explicit acks. After the run the system itself is asked whether every message was settled.
 */
import { AckPolicy, jetstreamManager, RetentionPolicy, StorageType } from "@nats-io/jetstream"
import { connect as natsConnect } from "@nats-io/transport-node"
import { Effect, Layer, type Scope } from "effect"
import { groupMember, localPublisher } from "../../../layers/Roles.js"
import { ConsumerGroups } from "../../../services/groups/ConsumerGroups.js"
import { Publisher } from "../../../services/net/Publisher.js"
import { BrokerEvents, HeadEvents } from "../../roles/RoleEvents.js"
import { spawnRole } from "../../run/Cluster.js"
import { benchRegion } from "../BenchRegion.js"
import { NATS, startNatsCluster } from "../peers/NatsCluster.js"
import { natsCall } from "../peers/NatsPeer.js"
import { payloadTemplate } from "../peers/PeerReadBack.js"
import { peerDataParent } from "../peers/PeerServer.js"
import { REDIS, redisCall, startRedis } from "../peers/RedisPeer.js"
import { CXLOG, type GroupSystem, MEMBER_WINDOW, memberAddress } from "./MemberSystems.js"

export interface GroupWorkload {
  readonly members: number
  readonly messages: number
  readonly messageBytes: number
  /** cxlog only: messages of one key to one member (1 000 keys). */
  readonly byKey: boolean
  /** cxlog only: members through a broker (TCP), not mapping the region. */
  readonly remote: boolean
  /** cxlog only: the group's ackWait (the kill bench sets it long: only a death hands messages on). */
  readonly ackWaitMs?: number
}

/** The bench's options: the workload, the peers beside cxlog, and kills. */
export interface GroupBenchOptions extends GroupWorkload {
  readonly peers: ReadonlyArray<Exclude<GroupSystem, typeof CXLOG>>
  /** SIGKILL a member this many times during the run (0: a plain run). */
  readonly kills: number
  readonly json: boolean
}

/** A system ready for a run: its messages stored, its group made. */
export interface GroupLoad {
  readonly system: GroupSystem
  /** What its members are given to connect: the region's name, the server's port or URL. */
  readonly address: string
  readonly group: string
  /** How it runs, in its own terms (for the table). */
  readonly label: string
  /** Where it keeps the messages, as its server says. */
  readonly storage: string
  readonly serverCpuSeconds: () => number | undefined
  /** cxlog: the messages the member of process `pid` holds now, as the group says (the kill bench's). */
  readonly heldBy?: (pid: number) => Effect.Effect<number, unknown>
  /** What the system says once the run stopped: whether nothing is pending, and its own counts. */
  readonly settled: Effect.Effect<{ readonly settled: boolean; readonly detail: string }, unknown>
}

/** The bench's keys (byKey): 1 000, as the scale test. */
export const KEYS = 1_000
const GROUP = "cxlog-bench-group"
const TOPIC = "jobs"
/** Replies awaited at once while loading (not measured). */
const LOAD_WINDOW = 1_024
/** How long a work-queue stream may take to drop its acked messages once the members stopped. */
const EMPTIED_MS = 10_000

/** Message `index` of the run: its stamp, then the bytes every system's message carries. */
export const payloadOf = (template: Buffer, index: number): Buffer => {
  const payload = Buffer.from(template)
  payload.writeUInt32LE(index, 0)
  return payload
}

/**
 * A topic's memory for the run's messages (each with its record) with room to spare, and for a
 * GOI entry a message (a topic's GOI takes one per 2 KiB of its memory, up to the cap
 * `goiSlotsFor` raises): however the publisher batches them, the topic holds every one, and no
 * batch is dropped by retention before the group hands it out.
 */
const topicMemoryFor = (w: GroupWorkload) =>
  Math.ceil(Math.max(w.messages * (w.messageBytes + 128), w.messages * 2048) / 2 ** 20 + 64) * 2 ** 20
const goiSlotsFor = (w: GroupWorkload) => Math.max(1 << 16, w.messages)

const sumDefined = (a: number | undefined, b: number | undefined) =>
  a === undefined || b === undefined ? undefined : a + b

/** One broker of the region, serving the members' group connections. */
const brokerFor = (region: string) =>
  Effect.gen(function*() {
    const role = yield* spawnRole("broker 0", ["broker", "--broker-id", "0", "--port", "0"], {
      CXLOG_REGION: region,
      CXLOG_METRICS_PORT: "0"
    }, BrokerEvents)
    const listening = yield* role.event("listening", 20_000)
    return { role, port: listening.port }
  })

/**
 * cxlog: a head of its own with topic `jobs` in memory (ACK 1), the messages published by a local
 * publisher, the group created; with `remote`, a broker its members connect to.
 */
const cxlogLoad = (w: GroupWorkload, round: number) =>
  Effect.gen(function*() {
    const region = yield* benchRegion(`group-${round}`)
    const head = yield* spawnRole("head", ["head", "--topic", `${TOPIC}:5:1`], {
      CXLOG_REGION: region,
      CXLOG_TOPIC_MEMORY: `${topicMemoryFor(w)}`,
      CXLOG_LOG_GOI_SLOTS: `${goiSlotsFor(w)}`,
      CXLOG_TOPIC_WRITERS: "1",
      CXLOG_LOG_MAX_BROKERS: "1",
      CXLOG_METRICS_PORT: "0"
    }, HeadEvents)
    yield* head.event("ready", 20_000)
    const access = { name: region }
    const groups = yield* Effect.provide(ConsumerGroups, yield* Layer.build(groupMember(access)))
    const template = payloadTemplate(w.messageBytes)
    yield* Effect.gen(function*() {
      const publisher = yield* Publisher
      for (let i = 0; i < w.messages; i++) {
        yield* publisher.publish(payloadOf(template, i), w.byKey ? { key: `k${i % KEYS}` } : undefined)
      }
      yield* publisher.flush(60_000)
    }).pipe(Effect.provide(localPublisher(access, { topic: TOPIC })))
    // Made once the messages are stored, from the earliest: a group holds its topic's retention, so
    // one made first would hold the publisher back once the topic's writer lane held its most batches.
    yield* groups.create({
      name: GROUP,
      topic: TOPIC,
      byKey: w.byKey,
      pendingSlots: Math.max(4_096, 2 * w.members * MEMBER_WINDOW),
      ...(w.ackWaitMs === undefined ? {} : { ackWaitMs: w.ackWaitMs })
    })
    const broker = w.remote ? yield* brokerFor(region) : undefined
    return {
      system: CXLOG,
      address: broker === undefined ? region : memberAddress(region, broker.port),
      group: GROUP,
      label: `cxlog consumer group${w.byKey ? ", byKey" : ""}, ${
        broker === undefined ? "local members (in the region)" : "members through a broker (TCP)"
      }, maxInFlight ${MEMBER_WINDOW}`,
      storage: "memory (ACK 1: ordered in the region)",
      serverCpuSeconds: () =>
        broker === undefined ? head.cpuSeconds() : sumDefined(head.cpuSeconds(), broker.role.cpuSeconds()),
      heldBy: (pid) =>
        Effect.map(groups.describe(GROUP), (info) => info.members.find((m) => m.pid === pid)?.pending ?? 0),
      settled: Effect.map(groups.describe(GROUP), (info) => ({
        settled: info.pending === 0 && info.frontier === info.end && info.deadLetters === 0,
        detail:
          `frontier ${info.frontier} of ${info.end}, pending ${info.pending}, acked ${info.acked}, redelivered ${info.redeliveries}, dead letters ${info.deadLetters}`
      }))
    } satisfies GroupLoad
  })

/** Redis: a server of its own without persistence, the messages XADDed to a stream, its consumer group made. */
const redisLoad = (w: GroupWorkload) =>
  Effect.gen(function*() {
    const server = yield* startRedis("memory")
    const client = yield* server.connect
    const template = payloadTemplate(w.messageBytes)
    for (let first = 0; first < w.messages; first += LOAD_WINDOW) {
      const pipeline = client.pipeline()
      for (let i = first; i < Math.min(w.messages, first + LOAD_WINDOW); i++) {
        pipeline.xadd(GROUP, "*", "m", payloadOf(template, i))
      }
      yield* redisCall("XADD", () => pipeline.exec())
    }
    yield* redisCall("XGROUP CREATE", () => client.xgroup("CREATE", GROUP, GROUP, "0"))
    const storage = yield* server.storage
    return {
      system: REDIS,
      address: String(server.server.port),
      group: GROUP,
      label:
        `Redis Streams: XREADGROUP COUNT ${MEMBER_WINDOW}, XACK per message pipelined (ioredis), ${storage.detail}`,
      storage: `${storage.kind} (${storage.detail})`,
      serverCpuSeconds: server.server.cpuSeconds,
      settled: redisCall("XPENDING", async () => {
        const [pending] = (await client.xpending(GROUP, GROUP)) as [number, ...Array<unknown>]
        const length = await client.xlen(GROUP)
        return { settled: pending === 0, detail: `pending ${pending}, stream length ${length}` }
      })
    } satisfies GroupLoad
  })

/** NATS: a server of its own, a work-queue stream in memory holding the messages, a durable pull consumer with explicit acks. */
const natsLoad = (w: GroupWorkload) =>
  Effect.gen(function*() {
    const cluster = yield* startNatsCluster(1, { syncAlways: false, parentDir: yield* peerDataParent })
    const node = cluster.nodes[0]!
    const nc = yield* Effect.acquireRelease(
      natsCall("connecting", () => natsConnect({ servers: [node.url], noAsyncTraces: true })),
      (c) => Effect.promise(() => c.close().catch(() => undefined))
    )
    const manager = yield* natsCall("opening JetStream", () => jetstreamManager(nc))
    yield* natsCall("making the work-queue stream", () =>
      manager.streams.add({
        name: GROUP,
        subjects: [GROUP],
        storage: StorageType.Memory,
        retention: RetentionPolicy.Workqueue
      }))
    const js = manager.jetstream()
    const template = payloadTemplate(w.messageBytes)
    for (let first = 0; first < w.messages; first += LOAD_WINDOW) {
      const sent: Array<Promise<unknown>> = []
      for (let i = first; i < Math.min(w.messages, first + LOAD_WINDOW); i++) {
        sent.push(js.publish(GROUP, payloadOf(template, i)))
      }
      yield* natsCall("publishing the messages", () => Promise.all(sent))
    }
    yield* natsCall("making the pull consumer", () =>
      manager.consumers.add(GROUP, { durable_name: GROUP, ack_policy: AckPolicy.Explicit }))
    const left = natsCall("reading the stream's info", () =>
      manager.streams.info(GROUP))
    return {
      system: NATS,
      address: node.url,
      group: GROUP,
      label:
        `NATS JetStream: a work-queue stream, a durable pull consumer, consume ${MEMBER_WINDOW} at a time, ack per message`,
      storage: "memory (memory storage)",
      serverCpuSeconds: node.cpuSeconds,
      // A work-queue stream drops each message its ack reaches: empty once every ack took.
      settled: Effect.gen(function*() {
        const deadline = performance.now() + EMPTIED_MS
        let info = yield* left
        while (info.state.messages > 0 && performance.now() < deadline) {
          yield* Effect.sleep(50)
          info = yield* left
        }
        return { settled: info.state.messages === 0, detail: `${info.state.messages} messages left in the work queue` }
      })
    } satisfies GroupLoad
  })

/** The system set up for round `round`; its server stops when the scope closes. */
export const openLoad = (
  system: GroupSystem,
  w: GroupWorkload,
  round: number
): Effect.Effect<GroupLoad, unknown, Scope.Scope> =>
  system === CXLOG ? cxlogLoad(w, round) : system === REDIS ? redisLoad(w) : natsLoad(w)
