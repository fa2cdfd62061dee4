import { describe, expect, it } from "@effect/vitest"
import { Effect, type Scope } from "effect"
import { makeWriter } from "../../src/layers/region/Directory.js"
import { DirectoryFollower, type FollowedChanges } from "../../src/layers/region/DirectoryFollower.js"
import { DirectoryJournal } from "../../src/layers/region/DirectoryJournal.js"
import { type DirectoryConfig, DirectoryHeaderView, JOURNAL_RECORDS } from "../../src/layers/region/DirectoryRecords.js"
import { DirectoryTable } from "../../src/layers/region/DirectoryTable.js"
import { CxlMemory } from "../../src/services/region/CxlMemory.js"
import type { DirectoryEntry, DirectoryWriterShape, ObjectKind } from "../../src/services/region/Directory.js"
import { type Backing, liveBacking, memoryBacking } from "../fixtures/directory-backing.js"
import { spawnFixture } from "../helpers/Processes.js"

const MiB = 2 ** 20
/** Room for 224 objects of 4 KiB, and for their extents many times over. */
const config: DirectoryConfig = { entrySlots: 256, holderLines: 4, heapBytes: 4 * MiB }

const writerOf = (b: Backing, epoch = 1) =>
  makeWriter({ area: b.area, epoch, reclaimEveryMs: 0 }).pipe(Effect.provideService(CxlMemory, b.region))

/** What a follower's looks add up to: slot → generation, each look's changes applied to what the earlier ones told. */
class Followed {
  readonly live = new Map<number, number>()
  constructor(readonly follower: DirectoryFollower) {}
  look(): FollowedChanges {
    const changes = this.follower.changes()
    for (const gone of changes.deleted) {
      // A look never tells of an object gone that it did not tell of before.
      expect(this.live.get(gone.slot)).toBe(gone.generation)
      this.live.delete(gone.slot)
    }
    for (const made of changes.created) {
      expect(this.live.has(made.slot)).toBe(false)
      this.live.set(made.slot, made.generation)
    }
    return changes
  }
}

/** The table's live topics, slot → generation: what every follower must come to. */
const truth = (b: Backing, kind: ObjectKind = "topic") =>
  new Map(new DirectoryTable(b.region, b.area).liveSlots(kind).map((e) => [e.slot, e.generation]))

const follow = (b: Backing) => new Followed(new DirectoryFollower(b.region, b.area, "topic"))

/**
 * Creates and deletes, interleaved at random (seeded): topics t0..t(names-1) and channels of the same
 * names, so slots are reused by new generations and by another kind. `after` runs after each change.
 */
const churn = (
  writer: DirectoryWriterShape,
  live: Map<string, DirectoryEntry>,
  changes: number,
  seed: { value: number },
  after: (done: number) => void = () => {}
) =>
  Effect.gen(function*() {
    const random = () => {
      seed.value = (Math.imul(seed.value, 1103515245) + 12345) >>> 0
      return seed.value / 2 ** 32
    }
    for (let done = 0; done < changes; done++) {
      const kind: ObjectKind = random() < 0.75 ? "topic" : "channel"
      const key = `${kind}:n${Math.floor(random() * 150)}`
      const old = live.get(key)
      if (old !== undefined) {
        yield* writer.remove(old)
        live.delete(key)
      } else {
        live.set(key, yield* writer.create({ kind, name: key.slice(kind.length + 1), bytes: 4096 }))
      }
      after(done)
    }
  })

const contract = (label: string, backing: (c: DirectoryConfig) => Effect.Effect<Backing, unknown, Scope.Scope>) =>
  describe(`Directory change journal: ${label}`, () => {
    it.scoped("a follower starting fresh lists the table once and is told every live topic, not the other kinds", () =>
      Effect.gen(function*() {
        const b = yield* backing(config)
        const writer = yield* writerOf(b)
        const live = new Map<string, DirectoryEntry>()
        yield* churn(writer, live, 300, { value: 1 })
        const followed = follow(b)
        const first = followed.look()
        expect(first.deleted).toEqual([])
        expect(followed.live).toEqual(truth(b))
        expect(followed.live.size).toBe([...live.keys()].filter((k) => k.startsWith("topic:")).length)
        expect(followed.follower.listings).toBe(1)
        // Nothing changed: nothing to tell, and nothing read but the count.
        expect(followed.look()).toEqual({ deleted: [], created: [] })
        expect(followed.follower.listings).toBe(1)
      }))

    it.scoped("a follower looking after every change reads the journal alone and is told each create and delete", () =>
      Effect.gen(function*() {
        const b = yield* backing(config)
        const writer = yield* writerOf(b)
        const followed = follow(b)
        followed.look()
        const live = new Map<string, DirectoryEntry>()
        let told = 0
        yield* churn(writer, live, 3000, { value: 2 }, () => {
          const changes = followed.look()
          told += changes.created.length + changes.deleted.length
          expect(followed.live).toEqual(truth(b))
        })
        // Every topic change was told (a channel's, none), and the table was listed only at the first look.
        expect(told).toBeGreaterThan(2000)
        expect(followed.follower.listings).toBe(1)
      }))

    it.scoped("a follower that fell behind the ring still finds every topic created and every one deleted", () =>
      Effect.gen(function*() {
        const b = yield* backing(config)
        const writer = yield* writerOf(b)
        const live = new Map<string, DirectoryEntry>()
        const seed = { value: 3 }
        yield* churn(writer, live, 200, seed)
        const followed = follow(b)
        followed.look()
        const before = new Map(followed.live)
        // Exactly the ring: the oldest change it missed is overwritten.
        yield* churn(writer, live, JOURNAL_RECORDS, seed)
        const changes = followed.look()
        expect(followed.follower.listings).toBe(2)
        expect(followed.live).toEqual(truth(b))
        const now = truth(b)
        const bySlot = (a: { slot: number }, z: { slot: number }) => a.slot - z.slot
        expect([...changes.deleted].sort(bySlot)).toEqual(
          [...before].filter(([slot, g]) => now.get(slot) !== g).map(([slot, generation]) => ({ slot, generation }))
            .sort(bySlot)
        )
        // One change short of the ring: the journal still holds every one.
        yield* churn(writer, live, JOURNAL_RECORDS - 1, seed)
        followed.look()
        expect(followed.follower.listings).toBe(2)
        expect(followed.live).toEqual(truth(b))
        // Far behind, several times round.
        yield* churn(writer, live, 5 * JOURNAL_RECORDS + 17, seed)
        followed.look()
        expect(followed.follower.listings).toBe(3)
        expect(followed.live).toEqual(truth(b))
      }))

    it.scoped("followers looking every 1, 7, 300 and 1500 changes all follow the table, listing only when behind", () =>
      Effect.gen(function*() {
        const b = yield* backing(config)
        const writer = yield* writerOf(b)
        const every = [1, 7, 300, 1500]
        const followers = every.map(() => follow(b))
        for (const f of followers) f.look()
        yield* churn(writer, new Map(), 6000, { value: 4 }, (done) => {
          every.forEach((n, i) => {
            if ((done + 1) % n !== 0) return
            followers[i]!.look()
            expect(followers[i]!.live).toEqual(truth(b))
          })
        })
        expect(followers.map((f) => f.follower.listings)).toEqual([1, 1, 1, 5])
      }))

    it.scoped("a writer taking over makes every follower list once; what it changes next is journaled", () =>
      Effect.gen(function*() {
        const b = yield* backing(config)
        const first = yield* writerOf(b, 1)
        const live = new Map<string, DirectoryEntry>()
        yield* churn(first, live, 100, { value: 5 })
        const followed = follow(b)
        followed.look()
        const next = yield* writerOf(b, 2)
        followed.look()
        expect(followed.follower.listings).toBe(2)
        yield* next.create({ kind: "topic", name: "after-takeover", bytes: 4096 })
        const told = followed.look()
        expect(told.created).toHaveLength(1)
        expect(followed.follower.listings).toBe(2)
        expect(followed.live).toEqual(truth(b))
      }))

    it.scoped("the 32-bit change count wraps without a follower noticing", () =>
      Effect.gen(function*() {
        const b = yield* backing(config)
        const writer = yield* writerOf(b)
        new DirectoryHeaderView(b.region).storeChanges(b.area.header, 2 ** 31 - 40)
        const followed = follow(b)
        followed.look()
        yield* churn(writer, new Map(), 200, { value: 6 }, () => {
          followed.look()
          expect(followed.live).toEqual(truth(b))
        })
        expect(new DirectoryHeaderView(b.region).changes(b.area.header)).toBeLessThan(0)
        expect(followed.follower.listings).toBe(1)
      }))

    it.scoped("a listing that saw an entry before its create was journaled is not undone by older changes journaled after it", () =>
      Effect.gen(function*() {
        // The writer's steps replayed by hand, as another process's reader would find them mid-way: slot 5 held
        // generation 1 (created and deleted) and now holds generation 2, whose entry is published, but the journal
        // has none of the three yet when the follower lists.
        const b = yield* backing(config)
        const table = new DirectoryTable(b.region, b.area)
        const journal = new DirectoryJournal(b.region, b.area)
        const object = { kind: "topic" as const, name: "t", extent: { offset: b.area.heap, bytes: 4096 }, params: [] }
        table.insert(5, { ...object, generation: 2, createdAtMs: 0 })
        const followed = follow(b)
        expect(followed.look().created).toEqual([{ slot: 5, generation: 2 }])
        journal.append({ slot: 5, generation: 1, kind: "topic", created: true })
        journal.append({ slot: 5, generation: 1, kind: "topic", created: false })
        expect(followed.look()).toEqual({ deleted: [], created: [] })
        journal.append({ slot: 5, generation: 2, kind: "topic", created: true })
        expect(followed.look()).toEqual({ deleted: [], created: [] })
        expect(followed.live).toEqual(truth(b))
        expect(followed.follower.listings).toBe(1)
      }))

    it.scoped("reset: the next look tells every live topic again", () =>
      Effect.gen(function*() {
        const b = yield* backing(config)
        const writer = yield* writerOf(b)
        yield* churn(writer, new Map(), 300, { value: 7 })
        const follower = new DirectoryFollower(b.region, b.area, "topic")
        const first = follower.changes()
        follower.reset()
        expect(follower.changes()).toEqual(first)
      }))
  })

contract("region", liveBacking("journal"))
contract("in-process", memoryBacking)

describe("Directory change journal across processes", () => {
  const shared: DirectoryConfig = { entrySlots: 512, holderLines: 4, heapBytes: 8 * MiB }

  it.scopedLive(
    "followers in two processes, one slow enough to fall behind the ring, come to the table while the writer churns",
    () =>
      Effect.gen(function*() {
        const b = yield* liveBacking("journal")(shared)
        const writer = yield* writerOf(b)
        const followers = yield* Effect.forEach(
          ["0", "50"],
          (pauseMs) => spawnFixture("directory-peer", [b.region.name, JSON.stringify(shared), "follow", pauseMs])
        )
        yield* Effect.forEach(followers, (f) => f.next(30_000))
        const live = new Map<string, DirectoryEntry>()
        const seed = { value: 8 }
        // The slow follower is stopped while more changes than the journal holds are made, so it
        // falls behind the ring however fast the machine runs either process.
        const slow = followers[1]!.process
        slow.kill("SIGSTOP")
        yield* churn(writer, live, JOURNAL_RECORDS + 64, seed).pipe(
          Effect.ensuring(Effect.sync(() => slow.kill("SIGCONT")))
        )
        const stop = Date.now() + 3000
        let changes = JOURNAL_RECORDS + 64
        while (Date.now() < stop) {
          yield* churn(writer, live, 64, seed)
          changes += 64
          yield* Effect.yieldNow()
        }
        yield* writer.create({ kind: "channel", name: "stop", bytes: 4096 })
        const results = yield* Effect.forEach(
          followers,
          (f) => f.next<{ live: Array<[number, number]>; listings: number; looks: number; problem?: string }>(30_000)
        )
        const expected = [...truth(b)].sort((x, y) => x[0] - y[0])
        for (const r of results) {
          expect(r.problem).toBeUndefined()
          expect(r.live).toEqual(expected)
          expect(r.looks).toBeGreaterThan(10)
        }
        expect(changes).toBeGreaterThan(5 * JOURNAL_RECORDS)
        // The stopped follower fell behind at least once; the fast one mostly read the journal.
        expect(results[1]!.listings).toBeGreaterThan(1)
        expect(results[0]!.listings).toBeLessThan(results[0]!.looks)
      }),
    60_000
  )
})
