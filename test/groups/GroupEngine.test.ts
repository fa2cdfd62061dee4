/**
 * The group engine's rules at the points a test of whole members cannot stop at: a member killed
 * between claiming an entry and moving the frontier, a dead member's buckets handed back, and a
 * bucket handed on only once what its member holds of it is settled. One group's object over a
 * private region, its members this process's (a member "dies" when this process stops holding its
 * line, as a killed process's line is judged: its pid names no live member). Last, whole members
 * over the fake: a byKey member dies that way while another reads, and the survivor's look hands
 * its keys on.
 */
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Fiber, Layer, Schedule, Stream } from "effect"
import { spawn } from "node:child_process"
import { makeMemory as makeGroupsMemory, makeMemoryGroupsStore } from "../../src/layers/groups/ConsumerGroupsMemory.js"
import { handBackDead, shareKeys } from "../../src/layers/groups/GroupKeyShare.js"
import {
  CLAIM_RECORDS,
  encodeHeader,
  groupBytes,
  type GroupConfig,
  KEY_BUCKETS,
  MemberLine
} from "../../src/layers/groups/GroupLayout.js"
import { ClaimLiveness, heldMembers, refSlot } from "../../src/layers/groups/GroupMembers.js"
import { hold, makeMemberState, pace, QUIET_LOOK_MS, release, stir } from "../../src/layers/groups/GroupMemberState.js"
import { type GroupObject, groupOf } from "../../src/layers/groups/GroupObject.js"
import type { Claiming } from "../../src/layers/groups/GroupPending.js"
import { GroupReader } from "../../src/layers/groups/GroupReader.js"
import { lookAtPending } from "../../src/layers/groups/GroupRedelivery.js"
import { lowWater } from "../../src/layers/groups/GroupStatus.js"
import { privateRegion } from "../../src/layers/region/CxlMemoryMemory.js"
import { DirectoryTable } from "../../src/layers/region/DirectoryTable.js"
import { startTagOf } from "../../src/layers/region/ProcessInfo.js"
import { pairWord } from "../../src/layers/region/Words64.js"
import * as TestClusterLayers from "../../src/layers/testing/TestCluster.js"
import { TestCluster } from "../../src/layers/testing/TestCluster.js"
import type { Delivery } from "../../src/services/groups/ConsumerGroups.js"
import type { LogReaderShape } from "../../src/services/log/LogReader.js"
import { Publisher } from "../../src/services/net/Publisher.js"

const BASE = 4096

const makeGroup = (byKey: boolean, aliveForMs = 0): GroupObject => {
  const config: GroupConfig = {
    topic: "t",
    topicGeneration: 1,
    byKey,
    ackWaitMs: 1_000,
    maxDeliver: 0,
    deadLetterTopic: undefined,
    startOffset: 10,
    createdAtMs: 0,
    memberSlots: 4,
    pendingSlots: 16,
    holdRetention: true,
    buckets: byKey ? KEY_BUCKETS : 0
  }
  const bytes = groupBytes(config)
  const region = privateRegion(BASE + bytes + 4096)
  region.bytes.set(encodeHeader(config), BASE)
  const group = groupOf(region, {
    slot: 0,
    generation: 1,
    kind: "group",
    name: "g",
    extent: { offset: BASE, bytes },
    params: [],
    createdAtMs: 0
  }, new ClaimLiveness(aliveForMs))
  if (!("layout" in group)) throw group
  return group
}

/** A member of this process, never reading (these rules need no reader). */
const member = (group: GroupObject) => {
  const ref = group.members.join(8, 0, () => {})!
  const reader = new GroupReader(undefined as unknown as LogReaderShape, "g", "t", 1)
  return makeMemberState(group, ref, reader, () => Effect.void, { maxInFlight: 8, checkEveryMs: 1 })
}

/** The member's process "dies": no live member of this process holds its line any more. */
const kill = (group: GroupObject, ref: number) =>
  heldMembers(group.words.region).delete(group.layout.member(refSlot(ref)))

/**
 * A member whose line names process `pid` started at `tag` (as another process's member would):
 * joined here, then its claim word rewritten and the line no longer this process's.
 */
const memberOf = (group: GroupObject, pid: number, tag: number) => {
  const ref = group.members.join(8, 0, () => {})!
  const line = group.layout.member(refSlot(ref))
  heldMembers(group.words.region).delete(line)
  group.words.store64(line + MemberLine.claim, pairWord(pid, tag))
  return ref
}

/** How a member judges a dead member's claiming entry of a group without keys (GroupRedelivery.ts). */
const judgeOf = (group: GroupObject) => (claim: Claiming) => group.claims.judge(claim.lane, claim.owner)

/** Member `ref` reserves and fills `count` entries for a claim from the frontier as it reads it now. */
const prepareClaim = (group: GroupObject, ref: number, count: number, deadlineMs = 1_000) => {
  const from = group.claims.read()
  const slots = Array.from({ length: count }, () => group.pending.reserve(ref)!)
  const claiming = slots.map((slot, i) => group.pending.fill(slot, ref, from.offset + i, from.claim, deadlineMs))
  return { from, slots, claiming }
}

describe("a member killed between its claim's steps", () => {
  it("a reserved entry held no message: freed", () => {
    const group = makeGroup(false)
    const a = group.members.join(8, 0, () => {})!
    const slot = group.pending.reserve(a)!
    kill(group, a)
    expect(group.pending.inspect(slot, 0, judgeOf(group)).kind).toBe("release")
  })

  it.each(
    [
      ["its claim won", "claim"],
      ["its claim won, the frontier not moved yet (killed between the two)", "win"]
    ] as const
  )("%s: the messages were handed out, and are delivered again at once", (_, step) => {
    const group = makeGroup(false)
    const a = group.members.join(8, 0, () => {})!
    const b = group.members.join(8, 0, () => {})!
    const { from, slots } = prepareClaim(group, a, 2)
    expect(group.claims[step](from, 2, a)).toBe(true)
    // A claim moves the frontier itself; a win alone leaves it to the next reader.
    const moved = group.words.load64(group.layout.frontier) !== from.word
    expect(moved).toBe(step === "claim")
    kill(group, a)
    // Not at the entries' deadline: the record names the dead member the winner.
    for (const slot of slots) {
      expect(group.pending.inspect(slot, 0, judgeOf(group))).toMatchObject({ kind: "take", why: "dead" })
    }
    // Whoever reads the frontier moves it past the claim won; a claim from before it loses.
    expect(group.frontier()).toBe(12)
    expect(group.claims.claim(from, 1, b)).toBe(false)
    expect(group.claims.claim(group.claims.read(), 1, b)).toBe(true)
    expect(group.frontier()).toBe(13)
  })

  it("a rival's claim won the same offsets: its entries are freed, never delivered beside the rival's", () => {
    const group = makeGroup(false)
    const a = group.members.join(8, 0, () => {})!
    const b = group.members.join(8, 0, () => {})!
    const mine = prepareClaim(group, a, 4)
    const rival = prepareClaim(group, b, 2)
    expect(group.claims.win(rival.from, 2, b)).toBe(true)
    // A loses, and dies before it frees its entries.
    expect(group.claims.win(mine.from, 4, a)).toBe(false)
    kill(group, a)
    for (const slot of mine.slots) expect(group.pending.inspect(slot, 0, judgeOf(group)).kind).toBe("release")
    // The frontier moves past the winner's count, not the loser's; it passed the loser's first
    // offsets all the same: judged by the frontier alone, they would be taken.
    expect(group.frontier()).toBe(12)
  })

  it("its swap never happened: the messages are still ahead of the frontier, its entries freed", () => {
    const group = makeGroup(false)
    const a = group.members.join(8, 0, () => {})!
    const { slots } = prepareClaim(group, a, 2)
    kill(group, a)
    for (const slot of slots) expect(group.pending.inspect(slot, 0, judgeOf(group)).kind).toBe("release")
  })

  it("a claim whose record the ring has gone round over since is delivered again once its deadline passed", () => {
    const group = makeGroup(false)
    const a = group.members.join(8, 0, () => {})!
    const b = group.members.join(8, 0, () => {})!
    const { from, slots } = prepareClaim(group, a, 1, 5_000)
    expect(group.claims.claim(from, 1, a)).toBe(true)
    kill(group, a)
    for (let n = 0; n < CLAIM_RECORDS; n++) expect(group.claims.claim(group.claims.read(), 1, b)).toBe(true)
    expect(group.pending.inspect(slots[0]!, 4_999, judgeOf(group))).toMatchObject({ kind: "later", dueMs: 5_000 })
    expect(group.pending.inspect(slots[0]!, 5_000, judgeOf(group))).toMatchObject({ kind: "take", why: "dead" })
  })

  it("while the member lives, nobody touches its entries before their deadline", () => {
    const group = makeGroup(false)
    const a = group.members.join(8, 0, () => {})!
    const { claiming, from, slots } = prepareClaim(group, a, 1)
    expect(group.pending.inspect(slots[0]!, 0, judgeOf(group)).kind).toBe("none")
    expect(group.claims.claim(from, 1, a)).toBe(true)
    group.pending.deliver(slots[0]!, claiming[0]!, 0, 1_000)
    expect(group.pending.inspect(slots[0]!, 999, judgeOf(group))).toMatchObject({ kind: "later", dueMs: 1_000 })
    expect(group.pending.inspect(slots[0]!, 1_000, judgeOf(group))).toMatchObject({ kind: "take", why: "expired" })
  })

  it("a message nak'd with a delay is no member's, and none takes it before the delay passed", () => {
    const group = makeGroup(false)
    const a = member(group)
    const b = member(group)
    const { claiming, from, slots } = prepareClaim(group, a.ref, 1)
    expect(group.claims.claim(from, 1, a.ref)).toBe(true)
    const delivered = group.pending.deliver(slots[0]!, claiming[0]!, 0, 1_000)!
    // A's nak at 100 with a delay of 5 s: due at 5 100, whichever member looks (A too).
    expect(group.pending.reschedule(slots[0]!, delivered, 5_100, "waiting")).toBeDefined()
    for (const m of [a, b]) {
      lookAtPending(m, 5_099)
      expect(m.backlog).toEqual([])
      expect(m.nextDueMs).toBe(5_100)
    }
    lookAtPending(b, 5_100)
    expect(b.backlog).toMatchObject([{ slot: slots[0], offset: 10, why: "due" }])
  })
})

describe("a member of another process is judged by its pid and start time", () => {
  it("a later process under its pid is another: the member is dead, its messages delivered again at once", () => {
    const group = makeGroup(false)
    // This test's parent runs all along: a pid that is alive, under its own start time or another.
    const tag = startTagOf(process.ppid)
    expect(tag).toBeGreaterThan(0)
    const alive = memberOf(group, process.ppid, tag)
    const reused = memberOf(group, process.ppid, (tag + 1) >>> 0)
    expect(group.members.isLive(alive)).toBe(true)
    expect(group.members.isLive(reused)).toBe(false)
    expect(group.members.deadSlots()).toEqual([refSlot(reused)])
    const [mine, theirs] = [alive, reused].map((ref) => {
      const { claiming, from, slots } = prepareClaim(group, ref, 1, 600_000)
      expect(group.claims.claim(from, 1, ref)).toBe(true)
      group.pending.deliver(slots[0]!, claiming[0]!, 0, 600_000)
      return slots[0]!
    })
    // Long before their deadline: the live member's is its own, the other one's is taken.
    expect(group.pending.inspect(mine!, 1, judgeOf(group))).toMatchObject({ kind: "later", dueMs: 600_000 })
    expect(group.pending.inspect(theirs!, 1, judgeOf(group))).toMatchObject({ kind: "take", why: "dead" })
  })

  it.scopedLive("a member's process killed is dead once the look that found it alive is aliveForMs old", () =>
    Effect.gen(function*() {
      const group = makeGroup(false, 50)
      const child = yield* Effect.acquireRelease(
        Effect.sync(() => spawn("sleep", ["60"], { stdio: "ignore" })),
        (child) => Effect.sync(() => child.kill("SIGKILL"))
      )
      const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()))
      const tag = startTagOf(child.pid!)
      expect(tag).toBeGreaterThan(0)
      const ref = memberOf(group, child.pid!, tag)
      expect(group.members.isLive(ref)).toBe(true)
      child.kill("SIGKILL")
      yield* Effect.promise(() => exited)
      // Bounded: a member's process found alive once and taken as alive for ever would hold its messages for ever.
      yield* Effect.sync(() => group.members.isLive(ref)).pipe(
        Effect.repeat({ until: (live) => !live, schedule: Schedule.spaced("10 millis") }),
        Effect.timeout("5 seconds")
      )
      expect(group.members.deadSlots()).toEqual([refSlot(ref)])
    }))
})

describe("byKey: buckets change hands", () => {
  it("a drained bucket is handed on only once its member's messages of it are settled", () => {
    const group = makeGroup(true)
    const a = member(group)
    shareKeys(a)
    expect(a.owned.size).toBe(KEY_BUCKETS)
    // A holds a message of the last bucket: the one it drains first when a second member comes.
    const held = KEY_BUCKETS - 1
    hold(a, held)
    const b = member(group)
    shareKeys(a)
    expect(a.owned.size).toBe(KEY_BUCKETS / 2)
    expect(a.draining.has(held)).toBe(true)
    shareKeys(a)
    shareKeys(b)
    expect(b.owned.size).toBe(KEY_BUCKETS / 2 - 1)
    expect(b.owned.has(held)).toBe(false)
    release(a, held)
    shareKeys(a)
    shareKeys(b)
    expect(b.owned.has(held)).toBe(true)
    expect(b.owned.size).toBe(KEY_BUCKETS / 2)
  })

  it("a key's message past its deadline is taken over by its bucket's owner only; its member dead, it goes with the bucket", () => {
    const group = makeGroup(true)
    const a = member(group)
    shareKeys(a)
    const b = member(group)
    shareKeys(a)
    shareKeys(b)
    const bucket = [...a.owned][0]!
    expect(b.owned.has(bucket)).toBe(false)
    // A holds a message of its bucket, delivered until 1 000.
    const slot = group.pending.reserve(a.ref)!
    group.pending.deliver(slot, group.pending.fill(slot, a.ref, 10, bucket, 1_000), 0, 1_000)
    // Past its deadline: B, which does not own the key, leaves it (delivered to B, it would run beside A's next ones).
    lookAtPending(b, 5_000)
    expect(b.backlog).toEqual([])
    lookAtPending(a, 5_000)
    expect(a.backlog).toMatchObject([{ slot, offset: 10, why: "expired" }])
    // A dies: its buckets are handed back, B takes them, and the message with them.
    kill(group, a.ref)
    const [dead] = group.members.deadSlots()
    group.buckets.handBack(group.members.refAt(dead!), group.members.scanned(dead!))
    group.members.free(dead!)
    shareKeys(b)
    expect(b.owned.has(bucket)).toBe(true)
    lookAtPending(b, 0)
    expect(b.backlog).toMatchObject([{ slot, offset: 10, why: "dead" }])
  })

  it("a member killed between writing its claim and moving the bucket's frontier: the entry is freed as its buckets are handed back, so the next owner hands the message out once", () => {
    const group = makeGroup(true)
    const a = member(group)
    shareKeys(a)
    const bucket = 10 % KEY_BUCKETS
    // Offset 10 claimed and its frontier not moved; offset 11 (another key) claimed and its frontier moved.
    const unhanded = group.pending.reserve(a.ref)!
    group.pending.fill(unhanded, a.ref, 10, bucket, 1_000)
    const handed = group.pending.reserve(a.ref)!
    group.pending.fill(handed, a.ref, 11, bucket + 1, 1_000)
    group.buckets.raiseFrontier(bucket + 1, 12)
    kill(group, a.ref)
    const [dead] = group.members.deadSlots()
    handBackDead(group, group.members.refAt(dead!), group.members.scanned(dead!))
    group.members.free(dead!)
    const b = member(group)
    shareKeys(b)
    expect(b.owned.has(bucket)).toBe(true)
    // B reads offset 10 as new and hands it out, moving the frontier past it.
    expect(group.buckets.frontier(bucket)).toBe(10)
    group.buckets.raiseFrontier(bucket, 11)
    // A's entry for it is gone: judged now, it would read as handed out and go to B a second time.
    expect(group.pending.inUse(unhanded)).toBe(false)
    lookAtPending(b, 0)
    expect(b.backlog).toMatchObject([{ slot: handed, offset: 11, why: "dead" }])
  })

  it("a dead member's buckets go to the others from where it had scanned (not the ones it was draining)", () => {
    const group = makeGroup(true)
    const a = member(group)
    shareKeys(a)
    const draining = KEY_BUCKETS - 1
    hold(a, draining)
    const b = member(group)
    shareKeys(a)
    group.members.setScanned(a.ref, 500)
    kill(group, a.ref)
    const dead = group.members.deadSlots()
    expect(dead).toEqual([refSlot(a.ref)])
    group.buckets.handBack(group.members.refAt(dead[0]!), group.members.scanned(dead[0]!))
    expect(group.members.free(dead[0]!)).toBe(true)
    shareKeys(b)
    expect(b.owned.size).toBe(KEY_BUCKETS)
    expect(group.buckets.frontier(0)).toBe(500)
    // It had stopped handing out the drained bucket's messages before it scanned on: its frontier stays.
    expect(group.buckets.frontier(draining)).toBe(10)
  })
})

describe("the low water a group's hold keeps (GroupHold.ts)", () => {
  it("without keys: the frontier, or the oldest message handed out and not settled, whoever holds it", () => {
    const group = makeGroup(false)
    const a = group.members.join(8, 0, () => {})!
    expect(lowWater(group)).toBe(10)
    const { claiming, from, slots } = prepareClaim(group, a, 3)
    // Claiming entries name offsets at or past the frontier: the frontier still says where the group stands.
    expect(lowWater(group)).toBe(10)
    expect(group.claims.claim(from, 3, a)).toBe(true)
    slots.forEach((slot, i) => group.pending.deliver(slot, claiming[i]!, 0, 1_000))
    expect(group.frontier()).toBe(13)
    expect(lowWater(group)).toBe(10)
    // The first settled, the second still held: it keeps the group's low water; then its member dies.
    expect(group.pending.settle(slots[0]!, group.pending.control(slots[0]!))).toBe(true)
    expect(lowWater(group)).toBe(11)
    kill(group, a)
    expect(lowWater(group)).toBe(11)
    expect(group.pending.settle(slots[1]!, group.pending.control(slots[1]!))).toBe(true)
    expect(group.pending.settle(slots[2]!, group.pending.control(slots[2]!))).toBe(true)
    expect(lowWater(group)).toBe(13)
  })

  it("byKey: the lowest bucket's frontier, each at least where its live owner has scanned", () => {
    const group = makeGroup(true)
    const a = member(group)
    shareKeys(a)
    expect(lowWater(group)).toBe(10)
    group.members.setScanned(a.ref, 40)
    expect(lowWater(group)).toBe(40)
    group.buckets.raiseFrontier(3, 60)
    expect(lowWater(group)).toBe(40)
    // A bucket it no longer owns (handed back without its scan) keeps its own frontier.
    group.buckets.release(5, a.ref, 20)
    expect(lowWater(group)).toBe(20)
  })
})

describe("how often an idle member looks (GroupMemberState.ts, QUIET_LOOK_MS)", () => {
  it("once a second while nothing of the group is in flight; every checkEveryMs once an entry is in use, a member is gone, or the topic moved", () => {
    const group = makeGroup(false)
    const m = member(group)
    const other = member(group)
    // Nothing in use, nobody gone: quiet.
    pace(m, lookAtPending(m, 0), 0)
    expect(m.lookEveryMs).toBe(QUIET_LOOK_MS)
    // Another member claims (what the topic grew by): its entries are in use, so they are looked at as often as ever.
    const { slots } = prepareClaim(group, other.ref, 2)
    expect(lookAtPending(m, 0)).toBe(2)
    pace(m, 2, 0)
    expect(m.lookEveryMs).toBe(1)
    for (const slot of slots) group.pending.unreserve(slot, other.ref)
    pace(m, lookAtPending(m, 0), 0)
    expect(m.lookEveryMs).toBe(QUIET_LOOK_MS)
    // A member gone (its line to free) is not quiet either.
    pace(m, 0, 1)
    expect(m.lookEveryMs).toBe(1)
    // Quiet again, then the topic moves under the member: it looks every checkEveryMs from then on.
    pace(m, 0, 0)
    stir(m)
    expect(m.lookEveryMs).toBe(1)
  })
})

describe("byKey: a member dies while the others read (whole members over the fake)", () => {
  const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes)

  it.scopedLive("its keys go to the survivor: nothing it acked comes again, what it held does, per key in order, none lost", () =>
    Effect.gen(function*() {
      const log = yield* TestCluster
      const store = makeMemoryGroupsStore(log.store)
      const groups = yield* makeGroupsMemory(store, { checkEveryMs: 20 })
      const publisher = yield* Publisher
      const publish = (from: number, count: number) =>
        Effect.gen(function*() {
          for (let i = from; i < from + count; i++) {
            yield* publisher.publish(new TextEncoder().encode(`${i}`), { topic: "keyed", key: `k${i % 8}` })
          }
          yield* publisher.flush(5_000)
        })
      yield* groups.create({ name: "g", topic: "keyed", byKey: true })
      yield* publish(0, 40)
      // A takes every key and the 40 messages, acks the first 30 and holds the rest.
      const held = heldMembers(store.directory.region)
      const pullA = yield* Stream.toPull(groups.join("g", { maxInFlight: 64 }))
      const aTook: Array<Delivery> = []
      while (aTook.length < 40) aTook.push(...Chunk.toArray(yield* pullA))
      for (const d of aTook.slice(0, 30)) expect(yield* d.ack).toBe(true)
      const aLines = new Set(held)
      // B joins while A lives (A, not pulled, does not look: it keeps every key), then A "dies": no
      // live member of this process holds its line any more, as a SIGKILLed process's line is judged.
      const bGot: Array<Delivery> = []
      const b = yield* groups.join("g", { maxInFlight: 64 }).pipe(
        Stream.runForEach((d) => Effect.zipRight(Effect.sync(() => bGot.push(d)), d.ack)),
        Effect.fork
      )
      yield* Effect.sync(() => held.size).pipe(
        Effect.repeat({ until: (n) => n > aLines.size, schedule: Schedule.spaced("5 millis") }),
        Effect.timeout("5 seconds")
      )
      for (const line of aLines) held.delete(line)
      yield* publish(40, 20)
      yield* Effect.sync(() => bGot.length).pipe(
        Effect.repeat({ until: (n) => n >= 30, schedule: Schedule.spaced("10 millis") }),
        Effect.timeout("5 seconds")
      )
      // The survivor's look freed A's line and handed its buckets on from where A had read (40), so
      // the survivor reads on from there. Taken as they stood, each bucket's frontier is just past
      // its last message handed out (the group's start, for a bucket that had none): nothing would
      // be delivered twice, but the survivor would read the topic again from there, and again at
      // the next death, and A's line would stay claimed, its look never quiet.
      const { region, area } = store.directory
      const group = groupOf(region, new DirectoryTable(region, area).lookup("group", "g")!, new ClaimLiveness(0))
      if (!("layout" in group)) throw group
      expect(group.members.deadSlots()).toEqual([])
      expect(group.buckets.lowestFrontier()).toBeGreaterThanOrEqual(40)
      yield* Fiber.interrupt(b)
      const offsets = bGot.map((d) => d.offset)
      // What A held (30–39) is delivered again, counted; what it acked never; the new ones once.
      expect(offsets.filter((o) => o < 30)).toEqual([])
      expect(new Set(offsets).size).toBe(offsets.length)
      expect([...offsets].sort((x, y) => x - y)).toEqual(Array.from({ length: 30 }, (_, i) => 30 + i))
      for (const d of bGot) expect(d.deliveryCount).toBe(d.offset < 40 ? 2 : 1)
      // Per key, in offset order across the move.
      const byKey = new Map<string, Array<number>>()
      for (const d of bGot) byKey.set(text(d.key!), [...(byKey.get(text(d.key!)) ?? []), d.offset])
      for (const [key, list] of byKey) expect(list, key).toEqual([...list].sort((x, y) => x - y))
    }).pipe(Effect.provide(
      TestClusterLayers.publisher({ topic: "keyed" }).pipe(
        Layer.provideMerge(TestClusterLayers.cluster({ topics: ["keyed"] }))
      )
    )))
})
