/**
 * Consumer groups across processes: a head (`cxlog head`), this process publishing and creating
 * the group, and member processes (test/fixtures/group-member.ts) sharing its messages through
 * the region. Every member reports the messages whose ack settled them; an offset acked twice or
 * never is a failure. Members are SIGKILLed (and started again) in the last test: what they held
 * goes to the others when their process is gone — the group's ackWait is ten minutes, so the test
 * ends only if that happens. Processes and the region are removed when a test ends, pass or fail.
 */
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Layer, Queue } from "effect"
import { ConsumerGroups, type GroupSpec } from "../../src/services/groups/ConsumerGroups.js"
import { Publisher } from "../../src/services/net/Publisher.js"
import { groupsRegionEnv, regionClient } from "../fixtures/groups-harness.js"
import { forkCli } from "../helpers/CliRoles.js"
import { type Child, spawnFixture, uniqueRegion } from "../helpers/Processes.js"

const MESSAGES = 20_000
const KEYS = 1_000

/** What the members acked: per offset, each ack's (member, delivery count, key), in the order reported. */
interface Acks {
  readonly of: Map<number, Array<{ readonly member: number; readonly deliveries: number; readonly key: string }>>
  /** Per member, its acks in its order. */
  readonly byMember: Map<number, Array<{ readonly offset: number; readonly key: string }>>
  readonly all: Deferred.Deferred<void>
}

/** A head with topic `jobs`, the group created, and `MESSAGES` messages published (key `k{i mod KEYS}`). */
const cluster = (spec: Omit<GroupSpec, "name" | "topic">) =>
  Effect.gen(function*() {
    const region = yield* uniqueRegion("group-procs")
    const head = yield* forkCli(["head", "--topic", "jobs"], groupsRegionEnv(region))
    yield* head.event("ready")
    const client = yield* Layer.build(regionClient(region, "jobs"))
    yield* Effect.gen(function*() {
      yield* (yield* ConsumerGroups).create({ name: "workers", topic: "jobs", ...spec })
      const publisher = yield* Publisher
      for (let i = 0; i < MESSAGES; i++) {
        yield* publisher.publish(new TextEncoder().encode(`job ${i}`), { key: `k${i % KEYS}` })
      }
      yield* publisher.flush(30_000)
    }).pipe(Effect.provide(client))
    const acks: Acks = { of: new Map(), byMember: new Map(), all: yield* Deferred.make<void>() }
    return { region, client, acks }
  })

/** Starts member `index` and records what it acks until its scope closes. */
const startMember = (region: string, acks: Acks, index: number, workMs = 0) =>
  Effect.gen(function*() {
    const child = yield* spawnFixture("group-member", [region, "workers", `${workMs}`, "16"])
    yield* record(child, acks, index).pipe(Effect.forkScoped)
    return child
  })

const record = (child: Child, acks: Acks, member: number) =>
  Effect.forever(Effect.flatMap(Queue.take(child.messages), (line) =>
    Effect.sync(() => {
      const acked = (line as { acked?: Array<[number, number, string]> }).acked
      if (acked === undefined) return
      const mine = acks.byMember.get(member) ?? []
      acks.byMember.set(member, mine)
      for (const [offset, deliveries, key] of acked) {
        const of = acks.of.get(offset) ?? []
        of.push({ member, deliveries, key })
        acks.of.set(offset, of)
        mine.push({ offset, key })
      }
      if (acks.of.size === MESSAGES) Deferred.unsafeDone(acks.all, Effect.void)
    })))

/** Every offset acked exactly once. */
const expectEachAckedOnce = (acks: Acks) => {
  expect(acks.of.size).toBe(MESSAGES)
  const twice = [...acks.of].filter(([, of]) => of.length !== 1).map(([offset]) => offset)
  expect(twice, "offsets acked more than once").toEqual([])
}

const allAcked = (acks: Acks) => Deferred.await(acks.all).pipe(Effect.timeout("120 seconds"))

describe("consumer groups across processes", () => {
  it.scopedLive(
    `4 members share ${MESSAGES} messages: each acked once, none lost, each member a share`,
    () =>
      Effect.gen(function*() {
        const { region, acks } = yield* cluster({})
        for (let i = 0; i < 4; i++) yield* startMember(region, acks, i)
        yield* allAcked(acks)
        expectEachAckedOnce(acks)
        expect([...acks.of.values()].every(([ack]) => ack!.deliveries === 1)).toBe(true)
        expect([...acks.byMember.keys()].sort()).toEqual([0, 1, 2, 3])
      }),
    180_000
  )

  it.scopedLive(
    `byKey over ${KEYS} keys: each member acks every key's messages in offset order`,
    () =>
      Effect.gen(function*() {
        const { region, acks, client } = yield* cluster({ byKey: true })
        for (let i = 0; i < 4; i++) yield* startMember(region, acks, i)
        yield* allAcked(acks)
        expectEachAckedOnce(acks)
        for (const [member, mine] of acks.byMember) {
          const last = new Map<string, number>()
          for (const { offset, key } of mine) {
            expect(offset, `member ${member}, key ${key}`).toBeGreaterThan(last.get(key) ?? -1)
            last.set(key, offset)
          }
        }
        // The keys were shared: every member owns buckets once all four are in.
        const info = yield* Effect.provide(Effect.flatMap(ConsumerGroups, (g) => g.describe("workers")), client)
        expect(info.members.map((m) => m.buckets).sort((a, b) => a - b)).toEqual([256, 256, 256, 256])
      }),
    180_000
  )

  it.scopedLive(
    "members SIGKILLed and started again: what they held goes to the others, none lost",
    () =>
      Effect.gen(function*() {
        const { region, acks, client } = yield* cluster({ ackWaitMs: 600_000 })
        let next = 0
        const children: Array<Child> = []
        for (let i = 0; i < 4; i++) children.push(yield* startMember(region, acks, next++, 2))
        for (let kill = 0; kill < 10 && acks.of.size < MESSAGES; kill++) {
          const victim = Math.floor(Math.random() * children.length)
          const child = children[victim]!
          // Once it has acked something, at a random point after.
          const before = acks.of.size
          yield* Effect.repeat(Effect.sleep("10 millis"), { until: () => acks.of.size > before + 50 })
          child.process.kill("SIGKILL")
          yield* Deferred.await(child.exited)
          children[victim] = yield* startMember(region, acks, next++, 2)
        }
        yield* allAcked(acks)
        expectEachAckedOnce(acks)
        const redelivered = [...acks.of.values()].filter(([ack]) => ack!.deliveries > 1)
        expect(redelivered.length, "messages delivered again after a kill").toBeGreaterThan(0)
        const info = yield* Effect.provide(Effect.flatMap(ConsumerGroups, (g) => g.describe("workers")), client)
        expect(info).toMatchObject({ pending: 0, expired: 0 })
        expect(info.redeliveries).toBeGreaterThanOrEqual(redelivered.length)
      }),
    240_000
  )
})
