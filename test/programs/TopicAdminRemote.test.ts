/**
 * Topic administration through a broker, as processes (docs/topics.md): a real head and broker,
 * and clients that do not map the region — the Effect layer (`makeRemoteTopics`), `CxlogAdmin`
 * and `cxlog topics --brokers`. Twenty topics of different sizes are created, listed, described
 * and deleted over TCP and their names made again; a user without the admin right is refused
 * with nothing changed; a malformed admin frame is refused while the broker serves on; and with
 * the head gone a change fails `HeadUnavailable` at once, through a broker and on the region's host,
 * while descriptions are still served. A change refused so while the head is stuck was never sent,
 * and one sent to it but not read before it stopped is refused when it runs again: it makes neither.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Fiber, Layer, Schedule } from "effect"
import { join } from "node:path"
import * as GroupsRemote from "../../src/layers/groups/ConsumerGroupsRemote.js"
import { LeaseLineView } from "../../src/layers/log/RecordViews.js"
import { ADMIN_FRAMES } from "../../src/layers/net/AdminProtocol.js"
import { clientProof, localCredentials } from "../../src/layers/net/Auth.js"
import { authFrame, AuthProof, Challenge, decodeControl, PROTOCOL_VERSION } from "../../src/layers/net/Control.js"
import { CxlogAdmin, type CxlogAdminOptions } from "../../src/layers/net/CxlogAdmin.js"
import { encodeFrame, FrameType } from "../../src/layers/net/Frame.js"
import { RequestOpen, requestOpenFrame } from "../../src/layers/net/RequestProtocol.js"
import { makeRemoteTopics } from "../../src/layers/net/TopicsRemote.js"
import { isPidStopped } from "../../src/layers/region/ProcessInfo.js"
import { Offsets } from "../../src/layers/region/Superblock.js"
import { attachRegion } from "../../src/layers/Roles.js"
import { CxlMemory } from "../../src/services/region/CxlMemory.js"
import { errorCode, rawConnect } from "../fixtures/net-raw-client.js"
import { forkCli, runCli, smallRegionEnvFor } from "../helpers/CliRoles.js"
import { tempDir, uniqueRegion } from "../helpers/Processes.js"
import { until } from "../helpers/ServeProcess.js"

interface Listed {
  readonly topics: ReadonlyArray<{ readonly name: string; readonly memoryBytes: number }>
  readonly heap: { readonly freeBytes: number }
}

/** A head and a broker over a small region; the broker's port and the environment its clients run in. */
const cluster = (label: string, extra: Record<string, string> = {}) =>
  Effect.gen(function*() {
    const region = yield* uniqueRegion(label)
    const env: Record<string, string> = { ...smallRegionEnvFor(1), CXLOG_REGION: region, ...extra }
    const head = yield* forkCli(["head", "--topic", "keep"], env)
    yield* head.event("ready")
    const broker = yield* forkCli(["broker", "--broker-id", "0", "--port", "0"], env)
    const port = (yield* broker.event("listening"))["port"] as number
    const inPlace = Effect.map(runCli(["topics", "--json"], env), (run) => JSON.parse(run.stdout) as Listed)
    return { region, env, head, broker, port, inPlace, topicMemory: Number(env["CXLOG_TOPIC_MEMORY"]) }
  })

describe("topics through a broker, as processes", () => {
  it.scopedLive(
    "creates 20 topics of different sizes over TCP, lists, describes and deletes them, and makes the names again",
    () =>
      Effect.gen(function*() {
        const { env, inPlace, port, region, topicMemory } = yield* cluster("adminremote")
        const brokers = [{ host: "127.0.0.1", port }]
        const before = yield* inPlace
        // The region's local user (its secret file, found by region name) administers every topic.
        const { topics } = yield* makeRemoteTopics({ brokers, region })
        const sizes = Array.from({ length: 20 }, (_, i) => topicMemory * 2 ** (i % 3))
        const created = yield* Effect.forEach(sizes, (memory, i) =>
          topics.create({ name: `app.t${i}`, order: i % 2 === 0 ? 5 : 2, ackLevel: 1, replicationFactor: 1, memory }))
        expect(created.map((t) =>
          t.memory
        )).toEqual(sizes)

        const listed = yield* topics.overview
        expect(listed.topics.map((t) => t.name)).toEqual(["keep", ...sizes.map((_, i) => `app.t${i}`)])
        expect(listed.topics.slice(1).map((t) => t.memoryBytes)).toEqual(sizes)
        // What the broker answers is what the region says, read in place on its host.
        const here = yield* inPlace
        expect(listed.heap.freeBytes).toBe(here.heap.freeBytes)
        expect(here.heap.freeBytes).toBeLessThan(before.heap.freeBytes)
        expect(yield* topics.describe("app.t7")).toMatchObject({
          name: "app.t7",
          order: 2,
          memoryBytes: sizes[7],
          earliest: 0,
          end: 0
        })

        // The CLI through the broker, and the Promise facade.
        const cliDescribe = yield* runCli(
          ["topics", "--brokers", `127.0.0.1:${port}`, "describe", "app.t3", "--json"],
          env
        )
        expect(cliDescribe.code, cliDescribe.stderr).toBe(0)
        expect(JSON.parse(cliDescribe.stdout)).toMatchObject({ name: "app.t3", memoryBytes: sizes[3] })
        // A misspelt option is refused naming it, before anything connects.
        const misspelt = { brokers, region, timeoutMs: 5_000 } as CxlogAdminOptions
        expect(yield* Effect.promise(() => CxlogAdmin.open(misspelt).then(() => undefined, (e: Error) => e)))
          .toMatchObject({
            _tag: "InvalidAdminOptions",
            message: expect.stringContaining("an admin client has no option timeoutMs (its options: brokers, ")
          })
        const admin = yield* Effect.promise(() => CxlogAdmin.open({ brokers, region }))
        const exists = yield* Effect.promise(() =>
          admin.createTopic({ name: "app.t0", order: 5, ackLevel: 1, replicationFactor: 1 }).then(
            () => undefined,
            (e: Error) => e
          )
        )
        expect(exists).toMatchObject({ _tag: "TopicExists", message: `topic "app.t0" already exists` })
        // What a spec leaves out of order, ACK and RF is 5, 1 and 1, as the CLI makes it; what it gives is kept.
        const plain = yield* Effect.promise(() => admin.createTopic({ name: "app.plain" }))
        expect(plain).toMatchObject({ name: "app.plain", order: 5, ackLevel: 1, replicationFactor: 1 })
        const given = yield* Effect.promise(() => admin.createTopic({ name: "app.given", order: 2, ackLevel: 0 }))
        expect(given).toMatchObject({ order: 2, ackLevel: 0, replicationFactor: 1 })
        for (const name of ["app.plain", "app.given"]) yield* Effect.promise(() => admin.deleteTopic(name))
        // A trim before a time takes a Date, as a subscriber's fromTime does, as its ms: nothing of app.t0 is as old
        // as the epoch, all of it older than a minute from now.
        const published = yield* runCli([
          "publish",
          "--brokers",
          `127.0.0.1:${port}`,
          "--topic",
          "app.t0",
          "--count",
          "3"
        ], env)
        expect(published.code, published.stderr).toBe(0)
        const trimBefore = (time: Date) => Effect.promise(() => admin.trimTopic("app.t0", { beforeTime: time }))
        expect(yield* trimBefore(new Date(0))).toEqual({ earliest: 0, end: 3 })
        expect(yield* trimBefore(new Date(Date.now() + 60_000))).toEqual({ earliest: 3, end: 3 })
        yield* Effect.promise(() => admin.close())

        for (let i = 0; i < 20; i++) yield* topics.delete(`app.t${i}`)
        const cliDelete = yield* runCli(["topics", "--brokers", `127.0.0.1:${port}`, "delete", "app.t0"], env)
        expect(cliDelete.code).toBe(1)
        expect(cliDelete.stderr).toContain(`unknown topic "app.t0"`)
        expect((yield* topics.list).map((t) => t.name)).toEqual(["keep"])
        // Their memory comes back once no process holds them (the head frees it at its tick).
        for (let look = 0; (yield* inPlace).heap.freeBytes !== before.heap.freeBytes; look++) {
          if (look > 100) throw new Error("the deleted topics' memory never came back")
          yield* Effect.sleep(100)
        }
        const again = yield* runCli([
          "topics",
          "--brokers",
          `127.0.0.1:${port}`,
          "create",
          "app.t0:2:0",
          "--memory",
          `${topicMemory * 2}`
        ], env)
        expect(again.code, again.stderr).toBe(0)
        expect(again.stdout).toMatch(/^created topic app\.t0 \(id \d+, order 2, ack 0, rf 1, memory/)
        expect((yield* topics.describe("app.t0")).memoryBytes).toBe(topicMemory * 2)
      }),
    120_000
  )

  it.scopedLive(
    "refuses a user without the admin right with nothing changed, and a malformed admin frame while it serves on",
    () =>
      Effect.gen(function*() {
        const { env, inPlace, port, region } = yield* cluster("adminrefused")
        const dir = yield* tempDir("cxlog-admin-users-")
        const viewerSecret = join(dir, "viewer.secret")
        const added = yield* runCli(["user", "add", "viewer", "--read", "*", "--secret-file", viewerSecret], env)
        expect(added.code, added.stderr).toBe(0)
        const before = yield* inPlace
        const viewer = (args: ReadonlyArray<string>) =>
          runCli(["topics", "--brokers", `127.0.0.1:${port}`, "--secret-file", viewerSecret, ...args], env)
        const refused = yield* viewer(["create", "sneaky"])
        expect(refused.code).toBe(1)
        expect(refused.stderr).toContain("user viewer may not administer topic sneaky (its admin rights: none)")
        expect((yield* viewer(["delete", "keep"])).stderr).toContain("may not administer topic keep")
        expect(yield* inPlace).toEqual(before)
        // It reads every topic: it may list and describe them.
        const listed = yield* viewer(["--json"])
        expect(listed.code, listed.stderr).toBe(0)
        expect((JSON.parse(listed.stdout) as Listed).topics.map((t) => t.name)).toEqual(["keep"])
        // A user who may see none is not told there are none to create: its rights may not cover them.
        const blindSecret = join(dir, "blind.secret")
        const blind = yield* runCli(["user", "add", "blind", "--read", "", "--secret-file", blindSecret], env)
        expect(blind.code, blind.stderr).toBe(0)
        const empty = yield* runCli(["topics", "--brokers", `127.0.0.1:${port}`, "--secret-file", blindSecret], env)
        expect({ code: empty.code, stdout: empty.stdout.trim() }).toEqual({
          code: 0,
          stdout:
            `the brokers 127.0.0.1:${port} show user blind no topics: there are none yet, or none its read and admin rights cover (cxlog user list shows them, on the head's host)`
        })

        // A raw admin connection, authenticated as the region's local user, then requests the broker cannot read.
        const local = localCredentials(region)!
        const raw = yield* rawConnect(port)
        const nonce = "0123456789abcdef0123"
        raw.write(
          requestOpenFrame(ADMIN_FRAMES, new RequestOpen({ protocol: PROTOCOL_VERSION, user: local.user, nonce }))
        )
        const challenge = decodeControl(Challenge, (yield* raw.nextFrame()).payload, "internal")
        if (Either.isLeft(challenge)) throw challenge.left
        raw.write(authFrame(0, new AuthProof({ proof: clientProof(local, nonce, challenge.right).proof })))
        expect((yield* raw.nextFrame()).type).toBe(FrameType.ADMIN_READY)
        const request = (id: number, body: string) =>
          encodeFrame(
            { type: FrameType.ADMIN_REQUEST, clientId: 0, sessionEpoch: 0, seq: id, messageCount: 0 },
            new TextEncoder().encode(body)
          )
        raw.write(request(7, "][ not a request"))
        const refusedRequest = yield* raw.nextFrame()
        expect(refusedRequest).toMatchObject({ type: FrameType.ADMIN_FAILURE, seq: 7 })
        expect(JSON.parse(new TextDecoder().decode(refusedRequest.payload))).toMatchObject({
          _tag: "InvalidAdminRequest"
        })
        const corrupt = request(8, JSON.stringify({ operation: "delete", input: { name: "keep" } }))
        corrupt[28] ^= 0xff
        raw.write(corrupt)
        expect(errorCode(yield* raw.nextFrame())).toBe("bad-crc")
        // The broker serves on, and nothing was deleted.
        const after = yield* runCli(["topics", "--brokers", `127.0.0.1:${port}`, "describe", "keep", "--json"], env)
        expect(after.code, after.stderr).toBe(0)
        expect(yield* inPlace).toEqual(before)
      }),
    120_000
  )

  it.scopedLive(
    "with the head gone, a change fails HeadUnavailable at once and descriptions are still served",
    () =>
      Effect.gen(function*() {
        // The broker outlives the head for a minute: the change's own check, not the broker stopping, answers it.
        const { env, head, inPlace, port, region } = yield* cluster("adminheadless", { CXLOG_HEAD_LOST_MS: "60000" })
        const { topics } = yield* makeRemoteTopics({ brokers: [{ host: "127.0.0.1", port }], region })
        yield* topics.create({ name: "before", order: 5, ackLevel: 1, replicationFactor: 1 })
        head.child.kill("SIGKILL")
        yield* head.exited
        const failed = yield* Effect.flip(topics.create({ name: "after", order: 5, ackLevel: 1, replicationFactor: 1 }))
        expect(failed).toMatchObject({ _tag: "HeadUnavailable", state: "exited" })
        expect(failed.message).toContain("its process is gone")
        expect(failed.message).toContain("its coordinator to create topic after")
        expect(yield* Effect.flip(topics.delete("before"))).toMatchObject({ _tag: "HeadUnavailable" })
        expect((yield* topics.list).map((t) => t.name)).toEqual(["keep", "before"])
        // On the region's host the CLI looks for the head before joining its coordinator (which would retry for 10 s).
        const local = yield* runCli(["topics", "create", "after"], env)
        expect(local.code).not.toBe(0)
        expect(local.stderr).toContain("its process is gone")
        expect(local.stderr).toContain("its coordinator to change topics (not sent: nothing changed)")
        const groups = yield* runCli(["groups"], env)
        expect(groups.code).not.toBe(0)
        expect(groups.stderr).toContain("its process is gone")
        expect(yield* inPlace).toMatchObject({ topics: [{ name: "keep" }, { name: "before" }] })
      }),
    120_000
  )

  it.scopedLive(
    "with the head stopped past its lease, a change through a broker fails HeadUnavailable, sent (not read) or unsent: the head running again makes neither",
    () =>
      Effect.gen(function*() {
        const { env, head, port, region } = yield* cluster("adminstuck", { CXLOG_SEQUENCER_LEASE_MS: "1000" })
        const { topics } = yield* makeRemoteTopics({ brokers: [{ host: "127.0.0.1", port }], region })
        yield* topics.create({ name: "before", order: 5, ackLevel: 1, replicationFactor: 1 })
        head.child.kill("SIGSTOP")
        yield* Effect.addFinalizer(() => Effect.sync(() => head.child.kill("SIGCONT")))
        yield* until(() => isPidStopped(head.pid), 20_000, () => "the head to stop")
        // Sent while the lease still holds: the broker forwards it, and gives up on the head once its lease lapsed.
        const inFlight = yield* Effect.fork(
          Effect.flip(topics.create({ name: "inflight", order: 5, ackLevel: 1, replicationFactor: 1 }))
        )
        yield* Effect.flatMap(CxlMemory, (memory) => {
          const lines = new LeaseLineView(memory)
          return until(
            () => isPidStopped(head.pid) && lines.expiresAtMs(Offsets.sequencerLease) < Date.now(),
            20_000,
            () => `the stopped head's lease to lapse (it expires at ${lines.expiresAtMs(Offsets.sequencerLease)})`
          )
        }).pipe(Effect.scoped, Effect.provide(Layer.fresh(attachRegion({ name: region }))))
        const failed = yield* Effect.flip(
          topics.create({ name: "refused", order: 5, ackLevel: 1, replicationFactor: 1 })
        )
        expect(failed).toMatchObject({ _tag: "HeadUnavailable", state: "lease-lapsed" })
        expect(failed.message).toContain("its coordinator to create topic refused (not sent: nothing changed)")
        // On the region's host the CLI says the same of its change: it looked for the head before sending it.
        const local = yield* runCli(["topics", "create", "refused.here"], env)
        expect(local.code, local.stderr).toBe(1)
        expect(local.stderr).toContain("its sequencer lease lapsed")
        expect(local.stderr).toContain("its coordinator to change topics (not sent: nothing changed)")
        const lost = yield* Fiber.join(inFlight)
        expect(lost).toMatchObject({ _tag: "HeadUnavailable", state: "lease-lapsed" })
        expect(lost.message).toContain(
          "its coordinator to create topic inflight (not read by the head: not made, and a head that runs again refuses it"
        )
        // Running again, the head answers the next change; one sent before it would have been made first.
        head.child.kill("SIGCONT")
        yield* topics.create({ name: "after", order: 5, ackLevel: 1, replicationFactor: 1 }).pipe(
          Effect.retry({ while: (e) => e._tag === "HeadUnavailable", times: 100, schedule: Schedule.spaced(100) })
        )
        expect((yield* topics.list).map((t) => t.name)).toEqual(["keep", "before", "after"])
      }),
    120_000
  )

  it.scopedLive(
    "a head that holds its lease but does not answer: a change asked with a short bound fails within it, saying the head never read it, and so does one sent behind it; the head running again makes neither",
    () =>
      Effect.gen(function*() {
        // A lease far longer than the stop: the head stays the head, only it does not answer.
        const { head, port, region } = yield* cluster("adminbound", { CXLOG_SEQUENCER_LEASE_MS: "60000" })
        const brokers = [{ host: "127.0.0.1", port }]
        const { topics } = yield* makeRemoteTopics({ brokers, region, requestTimeoutMs: 4_000 })
        const groups = yield* GroupsRemote.makeRemote({ brokers, region, requestTimeoutMs: 4_000 })
        yield* topics.create({ name: "before", order: 5, ackLevel: 1, replicationFactor: 1 })
        head.child.kill("SIGSTOP")
        yield* Effect.addFinalizer(() => Effect.sync(() => head.child.kill("SIGCONT")))
        yield* until(() => isPidStopped(head.pid), 20_000, () => "the head to stop")
        // Two at once over the one connection: the broker answers them in turn, and the second's bound
        // counts from when it arrived, not from when the first was answered.
        const [failed, queued] = yield* Effect.all([
          Effect.flip(topics.create({ name: "late", order: 5, ackLevel: 1, replicationFactor: 1 })),
          Effect.flip(topics.create({ name: "queued", order: 5, ackLevel: 1, replicationFactor: 1 }))
        ], { concurrency: "unbounded" })
        // The broker's answers, not the client's own timer: they say what became of each change.
        expect(failed).toMatchObject({ _tag: "TopicsUnavailable" })
        expect(failed.message).toContain("the head's coordinator did not answer (to create topic late)")
        expect(failed.message).toContain("never runs: safe to ask again")
        expect(queued).toMatchObject({ _tag: "TopicsUnavailable" })
        expect(queued.message).toContain("to create topic queued")
        expect(queued.message).toContain("safe to ask again")
        // A consumer group's create through a broker is bounded the same way.
        const [group, queuedGroup] = yield* Effect.all([
          Effect.flip(groups.create({ name: "late", topic: "keep" })),
          Effect.flip(groups.create({ name: "queued", topic: "keep" }))
        ], { concurrency: "unbounded" })
        expect(group).toMatchObject({ _tag: "CoordinatorUnavailable" })
        expect(group.message).toContain("rpc cxlog.createObject")
        expect(group.message).toContain("never runs: safe to ask again")
        expect(queuedGroup).toMatchObject({ _tag: "CoordinatorUnavailable" })
        expect(queuedGroup.message).toContain("safe to ask again")
        head.child.kill("SIGCONT")
        // The head reads the changes in its ring now, past their deadlines, and refuses them; the next one it makes.
        yield* topics.create({ name: "after", order: 5, ackLevel: 1, replicationFactor: 1 })
        expect((yield* topics.list).map((t) => t.name)).toEqual(["keep", "before", "after"])
        expect((yield* groups.list).map((g) => g.name)).toEqual([])
      }),
    120_000
  )
})
