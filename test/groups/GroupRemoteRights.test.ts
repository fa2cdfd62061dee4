/**
 * Consumer groups through a broker that authenticates its users (GroupServer.ts over the fake's
 * groups, in process over the memory log): every operation on a group needs the read right on its
 * topic and the consume right on the group's name; a refusal is `TopicForbidden` on that request
 * only, naming no topic the user may not see, and the list names only the groups the user may use. A group whose object does not read as
 * one is said to be damaged only to a user with the rights its delete needs.
 */
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Layer, Schema, Stream } from "effect"
import { join } from "node:path"
import { makeMemory, makeMemoryGroupsStore } from "../../src/layers/groups/ConsumerGroupsMemory.js"
import { makeRemote } from "../../src/layers/groups/ConsumerGroupsRemote.js"
import { openGroupLink } from "../../src/layers/groups/GroupLink.js"
import * as GroupServerLayers from "../../src/layers/groups/GroupServer.js"
import { type Credentials, readCredentialFile, removeUser, upsertUser, userRecord } from "../../src/layers/net/Auth.js"
import * as BrokerLayers from "../../src/layers/net/Broker.js"
import * as BrokerLogLayers from "../../src/layers/net/BrokerLogMemory.js"
import { makeLocal } from "../../src/layers/net/Publisher.js"
import { method } from "../../src/services/control/Rpc.js"
import { ConsumerGroups, GroupCorrupt } from "../../src/services/groups/ConsumerGroups.js"
import { AckTracker } from "../../src/services/log/AckTracker.js"
import { Appender } from "../../src/services/log/Appender.js"
import { TopicForbidden } from "../../src/services/log/Topics.js"
import { insecureLink } from "../fixtures/groups-broker.js"
import { tempDir } from "../helpers/Processes.js"

const WORKER: Credentials = { user: "worker", secret: "worker-secret-1" }
const OUTSIDER: Credentials = { user: "outsider", secret: "outsider-secret-1" }
const AUDITOR: Credentials = { user: "auditor", secret: "auditor-secret-1" }
const OPS: Credentials = { user: "ops", secret: "ops-secret-1" }
const MAILER: Credentials = { user: "mailer", secret: "mailer-secret-1" }

const privateDir = tempDir("cxlog-groups-rights-")

/**
 * worker reads jobs and may be any consumer; outsider reads only audit; auditor reads both but
 * consumes as auditors only; mailer reads jobs and publishes to audit.
 */
const credentialFile = (dir: string) => {
  const path = join(dir, "users")
  upsertUser(path, userRecord(WORKER.user, WORKER.secret, { publish: [], read: ["jobs"] }, undefined, 64))
  upsertUser(path, userRecord(OUTSIDER.user, OUTSIDER.secret, { publish: [], read: ["audit"] }, undefined, 64))
  upsertUser(
    path,
    userRecord(
      AUDITOR.user,
      AUDITOR.secret,
      { publish: [], read: ["jobs", "audit"], consume: ["auditors"] },
      undefined,
      64
    )
  )
  upsertUser(path, userRecord(OPS.user, OPS.secret, { publish: [], read: [], admin: ["*"] }, undefined, 64))
  upsertUser(path, userRecord(MAILER.user, MAILER.secret, { publish: ["audit"], read: ["jobs"] }, undefined, 64))
  return path
}

/**
 * A broker authenticating with `credentials`, serving the fake's groups over a memory log with
 * `jobs` and `audit`; a group named in `damaged` describes, and lists, as one whose object does not
 * read as a group.
 */
const brokerOver = (credentials: string, damaged: ReadonlyArray<string> = []) =>
  Effect.gen(function*() {
    const log = yield* BrokerLogLayers.makeMemoryLog({ topics: [{ name: "jobs" }, { name: "audit" }] })
    const local = yield* makeMemory(makeMemoryGroupsStore(log.store), { checkEveryMs: 20 })
    const publisher = yield* makeLocal({ region: "test", topic: "jobs" }).pipe(
      Effect.provideService(Appender, log.appender(0)),
      Effect.provideService(AckTracker, log.acks)
    )
    const corrupt = (name: string) =>
      new GroupCorrupt({ group: name, reason: "its layout version is 102, this build reads 2" })
    const overview = Effect.map(local.overview, (all) => ({
      groups: all.groups.filter((g) => !damaged.includes(g.name)),
      unreadable: all.groups.filter((g) => damaged.includes(g.name)).map((g) => corrupt(g.name))
    }))
    const connections = yield* Layer.build(
      GroupServerLayers.layer.pipe(Layer.provide(Layer.succeed(ConsumerGroups, {
        ...local,
        describe: (name) => damaged.includes(name) ? Effect.fail(corrupt(name)) : local.describe(name),
        list: Effect.map(overview, (all) => all.groups),
        overview
      })))
    )
    const server = yield* BrokerLayers.make({ credentials }).pipe(
      Effect.provide(log.forBroker(1)),
      Effect.provide(connections)
    )
    const remote = (user: Credentials) =>
      makeRemote({ brokers: [{ host: "127.0.0.1", port: server.port }], credentials: user })
    return { local, publisher, remote, address: { host: "127.0.0.1", port: server.port } }
  })

describe("consumer groups through a broker that authenticates", () => {
  it.scopedLive("the read right on the topic and the consume right on the name: refused TopicForbidden, the rest goes on", () =>
    Effect.gen(function*() {
      const { local, publisher, remote } = yield* brokerOver(credentialFile(yield* privateDir))
      yield* local.create({ name: "pool", topic: "jobs" })
      yield* local.create({ name: "auditors", topic: "audit" })
      for (let i = 0; i < 3; i++) yield* publisher.publish(new TextEncoder().encode(`job ${i}`))
      yield* publisher.flush(10_000)
      const worker = yield* remote(WORKER)
      const outsider = yield* remote(OUTSIDER)
      // Bounded: a join let in would run until the test's end.
      const joined = Stream.runDrain(outsider.join("pool")).pipe(Effect.timeout("20 seconds"))
      // Refused without a word of the group's topic, which the outsider may not see.
      const outsiderRefusals: ReadonlyArray<{ readonly message: string }> = [
        yield* Effect.flip(joined),
        yield* Effect.flip(outsider.describe("pool")),
        yield* Effect.flip(outsider.pending("pool")),
        yield* Effect.flip(outsider.delete("pool"))
      ]
      for (const refused of outsiderRefusals) {
        expect(refused).toBeInstanceOf(TopicForbidden)
        expect(refused.message).toBe("user outsider may not use consumer group pool (its read rights: audit)")
      }
      // A create names the topic itself: its refusal says which right on it is missing.
      expect((yield* Effect.flip(outsider.create({ name: "mine", topic: "jobs" }))).message).toBe(
        "user outsider may not read from topic jobs (its read rights: audit)"
      )
      expect((yield* outsider.list).map((g) => g.name)).toEqual(["auditors"])
      expect((yield* worker.list).map((g) => g.name)).toEqual(["pool"])
      // The read right on jobs is not enough: pool is not a name the auditor may consume as.
      const auditor = yield* remote(AUDITOR)
      const auditorJoined = Stream.runDrain(auditor.join("pool")).pipe(Effect.timeout("20 seconds"))
      expect(yield* Effect.flip(auditorJoined)).toBeInstanceOf(TopicForbidden)
      expect(yield* Effect.flip(auditor.describe("pool"))).toBeInstanceOf(TopicForbidden)
      expect(yield* Effect.flip(auditor.pending("pool"))).toBeInstanceOf(TopicForbidden)
      expect(yield* Effect.flip(auditor.create({ name: "mine", topic: "jobs" }))).toBeInstanceOf(TopicForbidden)
      expect((yield* auditor.list).map((g) => g.name)).toEqual(["auditors"])
      expect(yield* auditor.describe("auditors")).toMatchObject({ name: "auditors", topic: "audit" })
      // A name the auditor may not consume as: refused alike whether a group of it exists or not.
      const existing = yield* Effect.flip(auditor.describe("pool"))
      const asked: ReadonlyArray<Effect.Effect<unknown, { readonly message: string }>> = [
        auditor.describe("poolx"),
        auditor.pending("poolx"),
        auditor.delete("poolx")
      ]
      for (const refused of asked) {
        const error = yield* Effect.flip(refused)
        expect(error).toBeInstanceOf(TopicForbidden)
        expect(error.message).toBe(existing.message.replaceAll("pool", "poolx"))
      }
      // One who may consume as any name learns there is none.
      expect(yield* Effect.flip(worker.describe("poolx"))).toMatchObject({ _tag: "GroupNotFound" })
      // The worker's connection went on: it joins and acks all three.
      const got = yield* worker.join("pool", { maxInFlight: 3 }).pipe(
        Stream.mapEffect((d) => Effect.as(d.ack, d.offset)),
        Stream.take(3),
        Stream.runCollect
      )
      expect(Chunk.toArray(got)).toEqual([0, 1, 2])
      expect(yield* local.describe("pool")).toMatchObject({ acked: 3, pending: 0 })
    }))

  it.scopedLive("a create naming a dead-letter topic needs the publish right on it (the broker writes the dead letters): without it, nothing is made", () =>
    Effect.gen(function*() {
      const { local, remote } = yield* brokerOver(credentialFile(yield* privateDir))
      const worker = yield* remote(WORKER)
      const refused = yield* Effect.flip(worker.create({ name: "pool", topic: "jobs", deadLetterTopic: "audit" }))
      expect(refused).toBeInstanceOf(TopicForbidden)
      expect(refused.message).toBe("user worker may not publish to topic audit (its publish rights: none)")
      expect(yield* local.list).toEqual([])
      const mailer = yield* remote(MAILER)
      expect(yield* mailer.create({ name: "pool", topic: "jobs", deadLetterTopic: "audit" })).toMatchObject({
        name: "pool",
        deadLetterTopic: "audit"
      })
    }))

  it.scopedLive("a connection's later requests are held to its user's rights as they are then: narrowed or removed, it creates, joins and deletes nothing more; a member it holds goes on", () =>
    Effect.gen(function*() {
      const path = credentialFile(yield* privateDir)
      const { local, publisher, remote } = yield* brokerOver(path)
      yield* local.create({ name: "pool", topic: "jobs" })
      for (let i = 0; i < 4; i++) yield* publisher.publish(new TextEncoder().encode(`job ${i}`))
      yield* publisher.flush(10_000)
      const worker = yield* remote(WORKER)
      // A member joined while the worker may read jobs, on the connection the later requests use.
      const member = yield* Stream.toPull(worker.join("pool", { maxInFlight: 1 }))
      const first = Chunk.toArray(yield* member)
      expect(first.map((d) => d.offset)).toEqual([0])
      const record = readCredentialFile(path).users.find((u) => u.name === WORKER.user)!
      upsertUser(path, { ...record, read: ["audit"] })
      const narrowed = yield* Effect.flip(worker.create({ name: "more", topic: "jobs" }))
      expect(narrowed).toBeInstanceOf(TopicForbidden)
      expect(narrowed.message).toBe("user worker may not read from topic jobs (its read rights: audit)")
      expect(yield* Effect.flip(worker.describe("pool"))).toBeInstanceOf(TopicForbidden)
      expect(yield* worker.list).toEqual([])
      removeUser(path, WORKER.user)
      for (const refused of [worker.delete("pool"), worker.pending("pool"), worker.list]) {
        const error = yield* Effect.flip(refused as Effect.Effect<unknown, { readonly message: string }>)
        expect(error).toBeInstanceOf(TopicForbidden)
        expect(error.message).toContain(
          "user worker was removed, or given another secret, since this connection signed in"
        )
      }
      const joined = Stream.runDrain(worker.join("pool")).pipe(Effect.timeout("20 seconds"))
      expect(yield* Effect.flip(joined)).toBeInstanceOf(TopicForbidden)
      expect((yield* local.list).map((g) => g.name)).toEqual(["pool"])
      // The member it held goes on, as a publisher's sessions and a subscriber's streams do: it settles and takes the next.
      yield* first[0]!.ack
      expect(Chunk.toArray(yield* member).map((d) => d.offset)).toEqual([1])
    }))

  it.scopedLive("a group that does not read as one is listed to, and deleted by, a user with the admin right on every topic; refused without it", () =>
    Effect.gen(function*() {
      const { address, local, remote } = yield* brokerOver(credentialFile(yield* privateDir), ["pool"])
      yield* local.create({ name: "pool", topic: "jobs" })
      yield* local.create({ name: "sound", topic: "jobs" })
      const worker = yield* remote(WORKER)
      const ops = yield* remote(OPS)
      // The list leaves it out; the overview names it to the user who may delete it, with the delete
      // that works from here (through the brokers asked), as its description does.
      expect((yield* worker.list).map((g) => g.name)).toEqual(["sound"])
      expect(yield* worker.overview).toMatchObject({ groups: [{ name: "sound" }], unreadable: [] })
      const told = yield* ops.overview
      expect(told.groups).toEqual([])
      expect(told.unreadable).toEqual([
        new GroupCorrupt({
          group: "pool",
          reason: "its layout version is 102, this build reads 2",
          brokers: `127.0.0.1:${address.port}`
        })
      ])
      const delete_ =
        `cxlog groups --brokers 127.0.0.1:${address.port} delete pool, as a user with the admin right on every topic`
      expect(told.unreadable[0]!.message).toContain(`; delete it (${delete_}) and create it again`)
      expect((yield* Effect.flip(ops.describe("pool"))).message).toContain(`(${delete_})`)
      // A client that does not ask for them (an older one) gets the list as the array it reads.
      const olderList = method("list", {
        payload: Schema.Struct({}),
        success: Schema.Array(Schema.Struct({ name: Schema.String, topic: Schema.String }))
      })
      const olderClient = yield* Effect.acquireRelease(
        openGroupLink(address, { ...insecureLink, credentials: WORKER, insecure: false }),
        (l) => Effect.sync(() => l.close())
      )
      expect(yield* olderClient.call(olderList, {})).toEqual([{ name: "sound", topic: "jobs" }])
      // Its topic cannot be read: the read right on jobs does not let the worker delete it.
      const refused = yield* Effect.flip(worker.delete("pool"))
      expect(refused).toBeInstanceOf(TopicForbidden)
      expect(refused.message).toBe(
        "user worker may not delete consumer group pool: it cannot be read (its layout version is 102, this build " +
          "reads 2), so the topic it is of is unknown, and deleting it needs the admin right on every topic ('*') " +
          "(its admin rights: none)"
      )
      expect((yield* local.list).map((g) => g.name)).toEqual(["pool", "sound"])
      yield* ops.delete("pool")
      expect((yield* local.list).map((g) => g.name)).toEqual(["sound"])
    }))

  it.scopedLive("a group that does not read as one: its rights checked first, a user without them refused as for a sound group, never told GroupCorrupt", () =>
    Effect.gen(function*() {
      const { local, remote } = yield* brokerOver(credentialFile(yield* privateDir), ["pool"])
      yield* local.create({ name: "pool", topic: "jobs" })
      yield* local.create({ name: "sound", topic: "jobs" })
      const damage = "its layout version is 102"
      /** What each of describe, pending and join answer `user` for group `name`. */
      const answers = (user: Credentials, name: string) =>
        Effect.gen(function*() {
          const client = yield* remote(user)
          // Bounded: a join let in would run until the test's end.
          const joined = Stream.runDrain(client.join(name)).pipe(Effect.timeout("20 seconds"))
          return [
            yield* Effect.flip(client.describe(name)),
            yield* Effect.flip(client.pending(name)),
            yield* Effect.flip(joined)
          ]
        })
      // Without the read right on jobs, as without the consume right on the name: refused as for the
      // sound group of the same topic, TopicForbidden, with no word of the damage.
      for (const user of [OUTSIDER, AUDITOR]) {
        for (const refused of yield* answers(user, "sound")) expect(refused).toBeInstanceOf(TopicForbidden)
      }
      for (const user of [OUTSIDER, AUDITOR, WORKER]) {
        for (const refused of yield* answers(user, "pool")) {
          expect(refused).toBeInstanceOf(TopicForbidden)
          expect(refused.message).not.toContain(damage)
          expect(refused.message).not.toContain("cannot be read")
        }
      }
      // The auditor may not consume as pool: told so, in the words a sound group's refusal uses.
      expect((yield* answers(AUDITOR, "pool"))[0]!.message).toBe(
        "user auditor may not join consumer pool (its consume rights: auditors)"
      )
      // The worker reads jobs but may not administer every topic, which a group whose topic is unknown needs.
      expect((yield* answers(WORKER, "pool"))[0]!.message).toBe(
        "user worker may not use consumer group pool (its read rights: jobs)"
      )
      // The user who may delete it is told why it cannot be used.
      for (const told of yield* answers(OPS, "pool")) {
        expect(told).toBeInstanceOf(GroupCorrupt)
        expect(told.message).toContain(damage)
      }
    }))
})
