/**
 * The Topics service through a broker (TopicsRemote.ts over AdminServer.ts), in process over the
 * memory log: the log's answers and typed errors arrive as the log gives them, a user's admin
 * right decides what it may change (a refusal changes nothing), and a request the broker cannot
 * read gets a typed answer on a connection that goes on. test/programs/TopicAdminRemote.test.ts
 * runs the same through a real head and broker.
 */
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Either, Schedule, Schema } from "effect"
import { join } from "node:path"
import { ADMIN_FRAMES } from "../../src/layers/net/AdminProtocol.js"
import { type Credentials, readCredentialFile, removeUser, upsertUser, userRecord } from "../../src/layers/net/Auth.js"
import * as BrokerLayers from "../../src/layers/net/Broker.js"
import * as BrokerLogLayers from "../../src/layers/net/BrokerLogMemory.js"
import { decodeControl, PROTOCOL_VERSION } from "../../src/layers/net/Control.js"
import { encodeFrame, FrameType } from "../../src/layers/net/Frame.js"
import { RequestOpen, requestOpenFrame, RequestReady } from "../../src/layers/net/RequestProtocol.js"
import { makeRemoteTopics } from "../../src/layers/net/TopicsRemote.js"
import { TopicExists, TopicNotFound, type TrimTarget } from "../../src/services/log/Topics.js"
import type { BrokerOptions } from "../../src/services/net/Broker.js"
import { header, makeBatch } from "../fixtures/log-harness.js"
import { batchFrame, errorCode, rawConnect } from "../fixtures/net-raw-client.js"
import { TRIM_TARGETS_THAT_ARE_NONE } from "../fixtures/trim-targets.js"
import { tempDir } from "../helpers/Processes.js"

const OPS: Credentials = { user: "ops", secret: "ops-secret-1" }
const VIEWER: Credentials = { user: "viewer", secret: "viewer-secret-2" }
const KEEPER: Credentials = { user: "keeper", secret: "keeper-secret-3" }

const privateDir = tempDir("cxlog-topics-remote-")

/** ops administers orders.* and reads everything; viewer reads orders.* and administers nothing; keeper administers orders.* and reads nothing. */
const credentialFile = (dir: string) => {
  const path = join(dir, "users")
  upsertUser(path, userRecord(OPS.user, OPS.secret, { publish: [], read: ["*"], admin: ["orders.*"] }, undefined, 64))
  upsertUser(path, userRecord(VIEWER.user, VIEWER.secret, { publish: [], read: ["orders.*"] }, undefined, 64))
  upsertUser(
    path,
    userRecord(KEEPER.user, KEEPER.secret, { publish: [], read: [], admin: ["orders.*"] }, undefined, 64)
  )
  return path
}

const brokerOver = (options: BrokerOptions) =>
  Effect.gen(function*() {
    const log = yield* BrokerLogLayers.makeMemoryLog({ topics: [{ name: "t" }] })
    const server = yield* BrokerLayers.make(options).pipe(Effect.provide(log.forBroker(0)))
    const remote = (credentials?: Credentials) =>
      Effect.map(
        makeRemoteTopics({
          brokers: [{ host: "127.0.0.1", port: server.port }],
          ...(credentials === undefined ? {} : { credentials }),
          insecure: options.insecure === true
        }),
        (r) => r.topics
      )
    return { log, server, remote }
  })

const spec = (name: string) => ({ name, order: 5 as const, ackLevel: 1 as const, replicationFactor: 1 })

describe("Topics through a broker", () => {
  it.scopedLive("creates, describes, lists and deletes topics; the log's typed errors arrive with their messages", () =>
    Effect.gen(function*() {
      const { log, remote } = yield* brokerOver({ credentials: credentialFile(yield* privateDir) })
      const ops = yield* remote(OPS)
      const memory = 4 * log.store.config.topicMemoryBytes
      const created = yield* ops.create({ ...spec("orders.eu"), memory })
      expect(created).toEqual(yield* log.topics.lookup("orders.eu"))
      expect(created.memory).toBe(memory)
      expect(yield* ops.lookup("orders.eu")).toEqual(created)
      expect(yield* ops.describe("orders.eu")).toEqual(yield* log.topics.describe("orders.eu"))
      expect(yield* ops.overview).toEqual(yield* log.topics.overview)
      expect((yield* ops.list).map((t) => t.name)).toEqual(["t", "orders.eu"])

      const exists = yield* Effect.flip(ops.create(spec("orders.eu")))
      expect(exists).toBeInstanceOf(TopicExists)
      expect(exists.message).toBe(new TopicExists({ name: "orders.eu" }).message)
      const local = yield* Effect.flip(
        log.topics.create({ ...spec("orders.x"), order: 2, ackLevel: 2, replicationFactor: 2 })
      )
      const remoteSpec = yield* Effect.flip(
        ops.create({ ...spec("orders.x"), order: 2, ackLevel: 2, replicationFactor: 2 })
      )
      expect(remoteSpec).toMatchObject({ _tag: "InvalidTopicSpec", message: local.message })
      expect(yield* Effect.flip(ops.create({ ...spec("orders.y"), replicationFactor: 3 }))).toMatchObject({
        _tag: "ReplicationUnavailable",
        replicationFactor: 3
      })
      // A spec that is no spec at all is the log's InvalidTopicSpec too, not a refused request: one line, its field named.
      const noSpec = yield* Effect.flip(ops.create({ ...spec("orders.z"), order: 3 as 2 }))
      expect(noSpec).toMatchObject({ _tag: "InvalidTopicSpec" })
      expect(noSpec.message).toMatch(/^invalid topic: topic orders\.z: order: Expected 0 \| 2 \| 4 \| 5, actual 3$/)
      const writers = yield* Effect.flip(ops.create({ ...spec("orders.w"), writers: 99 }))
      expect(writers.message).toBe(
        "invalid topic: topic orders.w: writers: Expected a number between 1 and 64, actual 99"
      )

      yield* ops.delete("orders.eu")
      expect(yield* log.topics.list).toHaveLength(1)
      const gone = yield* Effect.flip(ops.describe("orders.eu"))
      expect(gone).toBeInstanceOf(TopicNotFound)
      expect(yield* Effect.flip(ops.delete("orders.eu"))).toMatchObject({ _tag: "TopicNotFound", name: "orders.eu" })
      expect(yield* Effect.flip(ops.delete("orders.bad name"))).toMatchObject({ _tag: "TopicNotFound" })
      // The name is free again.
      expect((yield* ops.create(spec("orders.eu"))).generation).toBeGreaterThan(created.generation)
    }))

  it.scopedLive("trims and purges a topic through a broker: the bounds after, offsets going on; a reader-only user refused", () =>
    Effect.gen(function*() {
      const { log, remote } = yield* brokerOver({ credentials: credentialFile(yield* privateDir) })
      const ops = yield* remote(OPS)
      const viewer = yield* remote(VIEWER)
      yield* ops.create(spec("orders.eu"))
      // Five batches of two messages (offsets 0..9), ordered.
      const appender = log.appender(0)
      const session = yield* appender.registerSession("orders.eu", 9)
      for (let seq = 0; seq < 5; seq++) {
        const batch = makeBatch([8, 9], seq)
        yield* appender.append("orders.eu", header(9, session, seq, batch), batch.payload)
      }
      yield* log.settle
      expect(yield* ops.trim("orders.eu", { keepMessages: 3 })).toEqual({ earliest: 7, end: 10 })
      expect(yield* log.topics.describe("orders.eu")).toMatchObject({ earliest: 7, end: 10 })
      expect(yield* Effect.flip(viewer.purge("orders.eu"))).toMatchObject({ _tag: "TopicForbidden", user: "viewer" })
      expect(yield* Effect.flip(viewer.trim("orders.eu", { beforeOffset: 9 }))).toMatchObject({
        _tag: "TopicForbidden"
      })
      expect(yield* log.topics.describe("orders.eu")).toMatchObject({ earliest: 7, end: 10 })
      expect(yield* ops.purge("orders.eu")).toEqual({ earliest: 10, end: 10 })
      expect(yield* Effect.flip(ops.trim("orders.nope", { keepMessages: 1 }))).toMatchObject({
        _tag: "TopicNotFound",
        name: "orders.nope"
      })
      // A target that is none is refused before it is sent, naming the three kinds.
      // A name that is no string (what a JavaScript caller may pass) names no topic, refused before it is sent.
      const notAName = 42 as unknown as string
      const calls: ReadonlyArray<Effect.Effect<unknown, unknown>> = [
        ops.describe(notAName),
        ops.delete(notAName),
        ops.purge(notAName)
      ]
      for (const refused of calls) {
        expect(yield* Effect.flip(refused)).toMatchObject({ _tag: "TopicNotFound", message: `unknown topic "42"` })
      }
      for (const target of TRIM_TARGETS_THAT_ARE_NONE) {
        const refused = yield* Effect.flip(ops.trim("orders.eu", target as TrimTarget))
        expect(refused).toMatchObject({ _tag: "TopicNotTrimmable", name: "orders.eu" })
      }
      expect(yield* log.topics.describe("orders.eu")).toMatchObject({ earliest: 10, end: 10 })
    }))

  it.scopedLive("a user without the admin right on a topic is refused TopicForbidden, and nothing changes", () =>
    Effect.gen(function*() {
      const { log, remote } = yield* brokerOver({ credentials: credentialFile(yield* privateDir) })
      const viewer = yield* remote(VIEWER)
      const ops = yield* remote(OPS)
      yield* ops.create(spec("orders.eu"))
      const before = yield* log.topics.overview

      const create = yield* Effect.flip(viewer.create(spec("orders.us")))
      expect(create).toMatchObject({ _tag: "TopicForbidden", user: "viewer" })
      expect(create.message).toBe("user viewer may not administer topic orders.us (its admin rights: none)")
      expect(yield* Effect.flip(viewer.delete("orders.eu"))).toMatchObject({ _tag: "TopicForbidden" })
      // ops administers orders.* only; refused before the topic is even looked up.
      expect(yield* Effect.flip(ops.delete("t"))).toMatchObject({ _tag: "TopicForbidden", user: "ops" })
      expect(yield* Effect.flip(ops.create(spec("audit")))).toMatchObject({ _tag: "TopicForbidden" })
      expect(yield* log.topics.overview).toEqual(before)

      // viewer sees the topics it may read, and no other.
      expect((yield* viewer.describe("orders.eu")).name).toBe("orders.eu")
      const hidden = yield* Effect.flip(viewer.describe("t"))
      expect(hidden.message).toContain("user viewer may neither read nor administer topic t")
      expect((yield* viewer.overview).topics.map((t) => t.name)).toEqual(["orders.eu"])
      expect(yield* Effect.flip(viewer.describe("nope"))).toMatchObject({ _tag: "TopicForbidden" })
      // The admin right alone shows a topic too: keeper, who reads nothing, sees what it administers, and no other.
      const keeper = yield* remote(KEEPER)
      expect((yield* keeper.describe("orders.eu")).name).toBe("orders.eu")
      expect((yield* keeper.overview).topics.map((t) => t.name)).toEqual(["orders.eu"])
      expect(yield* Effect.flip(keeper.describe("t"))).toMatchObject({ _tag: "TopicForbidden", user: "keeper" })

      const stranger = yield* Effect.flip((yield* remote({ user: "ops", secret: "wrong" })).list)
      expect(stranger).toMatchObject({ _tag: "TopicsUnavailable" })
      expect(stranger.message).toContain("auth-failed")
    }))

  it.scopedLive("an admin connection's later requests are held to its user's rights as they are then: narrowed, refused; removed, refused naming why; nothing changes", () =>
    Effect.gen(function*() {
      const path = credentialFile(yield* privateDir)
      const { log, remote } = yield* brokerOver({ credentials: path })
      const ops = yield* remote(OPS)
      // The connection signs in with its first request, and stays open for the next ones.
      yield* ops.create(spec("orders.eu"))
      const record = readCredentialFile(path).users.find((u) => u.name === OPS.user)!
      upsertUser(path, { ...record, admin: ["orders.us"] })
      const narrowed = yield* Effect.flip(ops.delete("orders.eu"))
      expect(narrowed).toMatchObject({ _tag: "TopicForbidden", user: "ops" })
      expect(narrowed.message).toBe("user ops may not administer topic orders.eu (its admin rights: orders.us)")
      // Its rights back, it administers again on the same connection; removed, it changes nothing more.
      upsertUser(path, record)
      yield* ops.create(spec("orders.de"))
      removeUser(path, OPS.user)
      const before = yield* log.topics.overview
      const removed = yield* Effect.flip(ops.delete("orders.eu"))
      expect(removed).toMatchObject({ _tag: "TopicForbidden", user: "ops" })
      expect(removed.message).toContain(
        "user ops was removed, or given another secret, since this connection signed in"
      )
      expect(yield* Effect.flip(ops.purge("orders.eu"))).toMatchObject({ _tag: "TopicForbidden" })
      expect(yield* Effect.flip(ops.create(spec("orders.fr")))).toMatchObject({ _tag: "TopicForbidden" })
      expect(yield* Effect.flip(ops.describe("orders.eu"))).toMatchObject({ _tag: "TopicForbidden" })
      expect(yield* Effect.flip(ops.list)).toMatchObject({ _tag: "TopicForbidden" })
      expect(yield* log.topics.overview).toEqual(before)
    }))

  it.scopedLive("an admin connection counts against its user's connection limit, as a publisher's or subscriber's does", () =>
    Effect.gen(function*() {
      const path = credentialFile(yield* privateDir)
      const record = readCredentialFile(path).users.find((u) => u.name === OPS.user)!
      upsertUser(path, { ...record, limits: { connections: 1 } })
      const { remote } = yield* brokerOver({ credentials: path })
      yield* Effect.scoped(Effect.gen(function*() {
        yield* (yield* remote(OPS)).list
        const refused = yield* Effect.flip((yield* remote(OPS)).list)
        expect(refused).toMatchObject({ _tag: "TopicsUnavailable" })
        expect(refused.message).toContain("too-many-connections: user ops may hold 1 connection to this broker")
      }))
      // The first one closed, its place is free once the broker has seen it go (bounded).
      const listed = yield* Effect.scoped(Effect.flatMap(remote(OPS), (ops) => ops.list)).pipe(
        Effect.retry(Schedule.spaced("20 millis").pipe(Schedule.upTo("10 seconds")))
      )
      expect(listed.map((t) => t.name)).toEqual(["t"])
    }))

  it.scopedLive("a request the broker cannot read gets InvalidAdminRequest and the connection goes on; a broken frame ends that connection only", () =>
    Effect.gen(function*() {
      const { remote, server } = yield* brokerOver({ insecure: true })
      const raw = yield* rawConnect(server.port)
      raw.write(requestOpenFrame(ADMIN_FRAMES, new RequestOpen({ protocol: PROTOCOL_VERSION })))
      const ready = yield* raw.nextFrame()
      expect(ready.type).toBe(FrameType.ADMIN_READY)
      expect(Either.isRight(decodeControl(RequestReady, ready.payload, "internal"))).toBe(true)
      const request = (id: number, body: string) =>
        encodeFrame(
          { type: FrameType.ADMIN_REQUEST, clientId: 0, sessionEpoch: 0, seq: id, messageCount: 0 },
          new TextEncoder().encode(body)
        )
      const answer = (id: number, body: string) =>
        Effect.gen(function*() {
          raw.write(request(id, body))
          const frame = yield* raw.nextFrame()
          expect(frame.seq).toBe(id)
          return {
            type: frame.type,
            body: JSON.parse(new TextDecoder().decode(frame.payload)) as Record<string, unknown>
          }
        })
      const invalid = (reason: RegExp) => ({
        type: FrameType.ADMIN_FAILURE,
        body: { _tag: "InvalidAdminRequest", reason: expect.stringMatching(reason) }
      })
      expect(yield* answer(1, "{not json")).toEqual(invalid(/^AdminRequest: /))
      expect(yield* answer(2, JSON.stringify({ operation: "purge!", input: {} }))).toEqual(
        invalid(/no operation "purge!": this broker answers create, delete, describe, list/)
      )
      expect(yield* answer(3, JSON.stringify({ operation: "create", input: { name: 5 } }))).toEqual(
        invalid(/^the input of create: .*name/)
      )
      expect(yield* answer(4, JSON.stringify({ operation: "describe", input: { name: "nope" } }))).toEqual({
        type: FrameType.ADMIN_FAILURE,
        body: { _tag: "TopicNotFound", name: "nope" }
      })
      const listed = yield* answer(5, JSON.stringify({ operation: "list", input: {} }))
      expect(listed.type).toBe(FrameType.ADMIN_REPLY)
      expect((listed.body["topics"] as Array<{ name: string }>).map((t) => t.name)).toEqual(["t"])

      // A publisher's frame on an admin connection, and a frame whose crc is wrong: each ends its connection.
      raw.write(batchFrame(1, 1, 0, [new Uint8Array(8)]))
      expect(errorCode(yield* raw.nextFrame())).toBe("unexpected-frame")
      const second = yield* rawConnect(server.port)
      second.write(requestOpenFrame(ADMIN_FRAMES, new RequestOpen({ protocol: PROTOCOL_VERSION })))
      expect((yield* second.nextFrame()).type).toBe(FrameType.ADMIN_READY)
      const corrupt = request(1, JSON.stringify({ operation: "list", input: {} }))
      corrupt[28] ^= 0xff
      second.write(corrupt)
      expect(errorCode(yield* second.nextFrame())).toBe("bad-crc")
      // The broker serves on.
      expect((yield* (yield* remote()).list).map((t) => t.name)).toEqual(["t"])
      expect(Schema.is(Schema.Number)(server.stats().rejected["bad-crc"])).toBe(true)
    }))

  it.scoped("options that name no wait fail every call with TopicsUnavailable naming them, not a defect or a 1 ms timeout", () =>
    Effect.gen(function*() {
      const brokers = [{ host: "127.0.0.1", port: 7400 }]
      const cases = [
        [{ connectTimeout: "5 sekonds" as Duration.DurationInput }, "connectTimeout must be a duration"],
        [
          { requestTimeoutMs: Number.NaN },
          "requestTimeoutMs must be a number of milliseconds from 1 to 2147483647, not NaN"
        ],
        [
          { connectTimeout: Duration.infinity },
          "connectTimeoutMs must be a number of milliseconds from 1 to 2147483647, not Infinity"
        ]
      ] as const
      for (const [options, reason] of cases) {
        const remote = yield* makeRemoteTopics({ brokers, insecure: true, ...options })
        const failed = yield* Effect.flip(remote.connect)
        expect(failed._tag).toBe("TopicsUnavailable")
        expect(failed.message).toContain(`invalid options: ${reason}`)
      }
    }))
})
