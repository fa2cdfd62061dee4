import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Schedule, Scope } from "effect"
import { BuddyAllocator } from "../../src/layers/region/BuddyAllocator.js"
import { directoryOver, makeWriter } from "../../src/layers/region/Directory.js"
import {
  BlockState,
  type DirectoryConfig,
  EntryState,
  EntryView,
  HolderLineView,
  PageRecordView
} from "../../src/layers/region/DirectoryRecords.js"
import { regionFullNow } from "../../src/layers/region/DirectorySpace.js"
import { DirectoryTable } from "../../src/layers/region/DirectoryTable.js"
import { writerOver } from "../../src/layers/region/DirectoryWriter.js"
import { CLAIM_COUNT_BITS } from "../../src/layers/region/LineClaim.js"
import { shortStartTag } from "../../src/layers/region/ProcessInfo.js"
import { CxlMemory } from "../../src/services/region/CxlMemory.js"
import type { DirectoryEntry, DirectoryWriterShape } from "../../src/services/region/Directory.js"
import { type Backing, liveBacking, memoryBacking } from "../fixtures/directory-backing.js"
import { spawnFixture } from "../helpers/Processes.js"
import { laterShortTag, startTagOf } from "../helpers/StartTags.js"

const MiB = 2 ** 20
const config: DirectoryConfig = { entrySlots: 64, holderLines: 8, heapBytes: 16 * MiB }

const open = (b: Backing, epoch = 1) =>
  Effect.gen(function*() {
    const writer = yield* makeWriter({ area: b.area, epoch, reclaimEveryMs: 60_000 }).pipe(
      Effect.provideService(CxlMemory, b.region)
    )
    const directory = yield* directoryOver(b.region, b.area)
    return { writer, directory }
  })

const contract = (label: string, backing: (c: DirectoryConfig) => Effect.Effect<Backing, unknown, Scope.Scope>) =>
  describe(`Directory contract: ${label}`, () => {
    it.scoped("creates, finds, lists and deletes by kind and name; each kind has its own names", () =>
      Effect.gen(function*() {
        const { writer, directory } = yield* open(yield* backing(config))
        const orders = yield* writer.create({ kind: "topic", name: "orders", bytes: 100_000, params: [5, 1] })
        expect(orders.extent.bytes).toBe(128 * 1024)
        expect(orders.extent.offset % 4096).toBe(0)
        const channel = yield* writer.create({ kind: "channel", name: "orders", bytes: 4096 })
        expect(channel.extent.offset).not.toBe(orders.extent.offset)
        expect(yield* directory.lookup("topic", "orders")).toEqual(orders)
        expect((yield* directory.lookup("channel", "orders")).generation).toBe(channel.generation)
        expect((yield* directory.lookup("topic", "orders")).params).toEqual([5, 1])
        expect(yield* Effect.flip(writer.create({ kind: "topic", name: "orders", bytes: 1 }))).toMatchObject({
          _tag: "NameTaken",
          kind: "topic",
          name: "orders"
        })
        expect((yield* directory.list("topic")).map((e) => e.name)).toEqual(["orders"])
        expect(yield* directory.list()).toHaveLength(2)
        yield* writer.remove(orders)
        expect(directory.isCurrent(orders)).toBe(false)
        expect(directory.isCurrent(channel)).toBe(true)
        expect(yield* Effect.flip(directory.lookup("topic", "orders"))).toMatchObject({ _tag: "ObjectNotFound" })
        expect(yield* Effect.flip(writer.remove(orders))).toMatchObject({ _tag: "ObjectDeleted", name: "orders" })
        // The name is free at once, and the object made under it is another (a new generation).
        const again = yield* writer.create({ kind: "topic", name: "orders", bytes: 4096 })
        expect(again.generation).toBeGreaterThan(orders.generation)
        expect(directory.isCurrent(orders)).toBe(false)
      }))

    it.scoped("a name is read back as it was written, a leading U+FEFF included: found, listed and deleted by it", () =>
      Effect.gen(function*() {
        const { writer, directory } = yield* open(yield* backing(config))
        const name = "\ufeffmarked"
        const made = yield* writer.create({ kind: "channel", name, bytes: 4096 })
        expect(made.name).toBe(name)
        expect(yield* directory.lookup("channel", name)).toEqual(made)
        expect((yield* directory.list("channel")).map((e) => e.name)).toEqual([name])
        // Not the name without it: another object may have that one.
        expect(yield* Effect.flip(directory.lookup("channel", "marked"))).toMatchObject({ _tag: "ObjectNotFound" })
        expect(yield* Effect.flip(writer.create({ kind: "channel", name, bytes: 4096 }))).toMatchObject({
          _tag: "NameTaken"
        })
        yield* writer.remove(made)
        expect(yield* directory.list("channel")).toEqual([])
      }))

    it.scoped("bad names and sizes are typed errors that change nothing", () =>
      Effect.gen(function*() {
        const { writer, directory } = yield* open(yield* backing(config))
        for (const name of ["", "x".repeat(129), "tab\there", "x\ud800y", "\udc00"]) {
          expect(yield* Effect.flip(writer.create({ kind: "topic", name, bytes: 4096 }))).toMatchObject({
            _tag: "InvalidObjectName"
          })
        }
        expect(yield* Effect.flip(writer.create({ kind: "topic", name: "zero", bytes: 0 }))).toMatchObject({
          _tag: "InvalidObjectName"
        })
        expect((yield* writer.create({ kind: "topic", name: "é".repeat(64), bytes: 1 })).name).toBe("é".repeat(64))
        expect(yield* directory.list()).toHaveLength(1)
      }))

    it.scoped("a pinned object's extent is not reused after its delete: a second object gets other bytes until the pin goes", () =>
      Effect.gen(function*() {
        const b = yield* backing(config)
        const { writer, directory } = yield* open(b)
        const first = yield* writer.create({ kind: "topic", name: "a", bytes: MiB })
        b.region.bytes.fill(0xa1, first.extent.offset, first.extent.offset + first.extent.bytes)
        const released = yield* Effect.gen(function*() {
          yield* Effect.scoped(Effect.gen(function*() {
            yield* directory.hold(first)
            yield* writer.remove(first)
            // Deleted while pinned: a new object of the same size lands elsewhere, and the pinned bytes are untouched.
            const second = yield* writer.create({ kind: "topic", name: "b", bytes: MiB })
            expect(second.extent.offset).not.toBe(first.extent.offset)
            expect(b.region.bytes[first.extent.offset]).toBe(0xa1)
            expect((yield* directory.usage).retiredBytes).toBe(MiB)
            const holders = yield* directory.holders
            expect(holders).toContainEqual({ kind: "deleted", name: "objects", bytes: MiB, pinnedBy: [process.pid] })
            // A pin taken after the delete is refused: the object is gone.
            expect(yield* Effect.flip(Effect.scoped(directory.hold(first)))).toMatchObject({ _tag: "ObjectDeleted" })
            expect(yield* writer.reclaim).toBe(0)
          }))
          return yield* writer.reclaim
        })
        expect(released).toBe(MiB)
        // Freed bytes are zeroed, and the next object of that size takes them.
        const third = yield* writer.create({ kind: "topic", name: "c", bytes: MiB })
        expect(third.extent.offset).toBe(first.extent.offset)
        expect(b.region.bytes.subarray(third.extent.offset, third.extent.offset + MiB).every((x) => x === 0)).toBe(true)
      }))

    it.scoped("a pin refused (the object deleted) is given back at once: it holds back nothing deleted after it", () =>
      Effect.gen(function*() {
        const b = yield* backing(config)
        const { writer, directory } = yield* open(b)
        const first = yield* writer.create({ kind: "topic", name: "a", bytes: MiB })
        const other = yield* writer.create({ kind: "topic", name: "b", bytes: MiB })
        yield* writer.remove(first)
        // Refused in this (still open) scope, as an open that failed would be: it keeps no pin here.
        expect(yield* Effect.flip(directory.hold(first))).toMatchObject({ _tag: "ObjectDeleted" })
        yield* writer.remove(other)
        expect(yield* writer.reclaim).toBe(2 * MiB)
      }))

    it.scoped("a process's line shows its oldest pin: neither a later pin nor the release of a twin frees what an earlier one holds", () =>
      Effect.gen(function*() {
        const b = yield* backing(config)
        const { writer, directory } = yield* open(b)
        const first = yield* writer.create({ kind: "topic", name: "a", bytes: MiB })
        const other = yield* writer.create({ kind: "topic", name: "b", bytes: MiB })
        // Two pins of it at the same epoch, each let go on its own.
        const early = yield* Scope.make()
        const twin = yield* Scope.make()
        yield* directory.hold(first).pipe(Scope.extend(early))
        yield* directory.hold(first).pipe(Scope.extend(twin))
        // Deleted under the early pins, then the same process pins another object at the newer epoch.
        yield* writer.remove(first)
        yield* Effect.scoped(Effect.gen(function*() {
          yield* directory.hold(other)
          expect(yield* writer.reclaim).toBe(0)
          expect((yield* directory.usage).retiredBytes).toBe(MiB)
        }))
        expect(yield* writer.reclaim).toBe(0)
        yield* Scope.close(twin, Exit.void)
        expect(yield* writer.reclaim).toBe(0)
        yield* Scope.close(early, Exit.void)
        expect(yield* writer.reclaim).toBe(MiB)
      }))

    it.scoped("a pin left by a process whose pid a later one now has holds nothing: its extent is freed, its line taken", () =>
      Effect.gen(function*() {
        // One holder line, left pinned at the first epoch by the parent's pid: pids are reused, and the
        // line's occurrence (16 bits of its claimer's start time) tells the live parent from an earlier process.
        const b = yield* backing({ ...config, holderLines: 1 })
        const { writer, directory } = yield* open(b)
        const holders = new HolderLineView(b.region)
        const at = b.area.holder(0)
        const parent = process.ppid
        const theParents = (shortStartTag(startTagOf(parent)) << CLAIM_COUNT_BITS) | 7
        const anEarlier = (laterShortTag(shortStartTag(startTagOf(parent))) << CLAIM_COUNT_BITS) | 7
        expect(holders.swapClaim(at, 0, 0, theParents, parent)).toBe(true)
        holders.storePinned(at, 1)
        const first = yield* writer.create({ kind: "topic", name: "a", bytes: MiB })
        yield* writer.remove(first)
        // The live parent's pin keeps the extent.
        expect(yield* writer.reclaim).toBe(0)
        expect(yield* directory.holders).toContainEqual({
          kind: "deleted",
          name: "objects",
          bytes: MiB,
          pinnedBy: [parent]
        })
        // The same pin under an earlier process's start time counts for nothing.
        expect(holders.swapClaim(at, theParents, parent, anEarlier, parent)).toBe(true)
        expect(yield* writer.reclaim).toBe(MiB)
        // And its line is the next holder's: with no other line, a pin here takes it.
        const second = yield* writer.create({ kind: "topic", name: "b", bytes: MiB })
        yield* Effect.scoped(directory.hold(second))
      }))

    it.scoped("10 000 create and delete cycles leave the heap and the table as they began", () =>
      Effect.gen(function*() {
        const b = yield* backing({ ...config, entrySlots: 1024 })
        const { writer, directory } = yield* open(b)
        const before = yield* directory.usage
        expect(before.freeBytes).toBe(16 * MiB)
        const live: Array<DirectoryEntry> = []
        for (let i = 0; i < 10_000; i++) {
          live.push(yield* writer.create({ kind: "topic", name: `t${i}`, bytes: 4096 * (1 + (i % 7)) }))
          // Keep up to 300 alive and delete in another order than created, so blocks are freed out of order.
          if (live.length > 300) yield* writer.remove(live.splice((i * 7919) % live.length, 1)[0]!)
        }
        for (const entry of live) yield* writer.remove(entry)
        yield* writer.reclaim
        const after = yield* directory.usage
        expect(after).toEqual(before)
        expect(after.largestFreeBytes).toBe(16 * MiB)
        // Probes stay short: every deleted marker was swept, so each slot is empty again and a miss ends at once.
        const table = new DirectoryTable(b.region, b.area)
        const states = Array.from({ length: 1024 }, (_, slot) => table.read(slot).state)
        expect(states.filter((s) => s !== EntryState.empty)).toEqual([])
      }))

    it.scoped("a full heap names who holds it; a full table says how many objects it holds", () =>
      Effect.gen(function*() {
        const { directory, writer } = yield* open(yield* backing(config))
        yield* writer.create({ kind: "topic", name: "big", bytes: 8 * MiB })
        yield* writer.create({ kind: "group", name: "mid", bytes: 4 * MiB })
        const full = yield* Effect.flip(writer.create({ kind: "topic", name: "more", bytes: 8 * MiB }))
        expect(full).toMatchObject({ _tag: "RegionFull", requested: 8 * MiB, largestFreeBytes: 4 * MiB })
        if (full._tag !== "RegionFull") throw new Error("expected RegionFull")
        expect(full.holders.slice(0, 2)).toEqual([
          { kind: "topic", name: "big", bytes: 8 * MiB, pinnedBy: [] },
          { kind: "group", name: "mid", bytes: 4 * MiB, pinnedBy: [] }
        ])
        expect(full.message).toContain("8 MiB by topic big")
        // What frees the room, for each kind that holds it.
        expect(full.message).toMatch(
          /\. Delete what holds it \(a topic with cxlog topics delete NAME; a group with cxlog groups delete NAME\), or create the region with a larger heap \(CXLOG_HEAP_BYTES\)$/
        )
        let made = 2
        const filled = yield* Effect.flip(
          Effect.forever(Effect.suspend(() => writer.create({ kind: "service", name: `s${made++}`, bytes: 1 })))
        )
        expect(filled).toMatchObject({ _tag: "DirectoryFull", entrySlots: 64, objects: 56 })
        // What the slots hold, and how each kind is deleted.
        expect(filled.message).toBe(
          "the region's directory is full (56 objects in 64 slots: 1 topic, 1 group, 54 services): delete objects (a topic with cxlog topics delete NAME; a group with cxlog groups delete NAME; a service with Services.remove(name)), or create the region with more (CXLOG_DIRECTORY_ENTRIES)"
        )
        // Past the five named, the other holders are counted and summed: the message accounts for every byte held.
        const last = yield* directory.lookup("service", `s${made - 2}`)
        yield* writer.remove(last)
        const crowded = yield* Effect.flip(writer.create({ kind: "topic", name: "more", bytes: 8 * MiB }))
        expect(crowded).toMatchObject({ _tag: "RegionFull", others: { holders: 50, bytes: 50 * 4096 } })
        expect(crowded.message).toMatch(/; 0\.20 MiB by 50 other objects\./)
        expect(crowded.message).toContain("a service with Services.remove(name)")
      }))

    it.scoped("memory no listed object owns says what holds it and what frees it: an entry that cannot be read, a create or delete not finished, deleted memory no pin keeps", () =>
      Effect.gen(function*() {
        const b = yield* backing(config)
        const { directory, writer } = yield* open(b)
        const entries = new EntryView(b.region)
        const table = new DirectoryTable(b.region, b.area)
        // A topic's entry whose extent, and a group's whose name's length, is out of range: neither decodes into an object.
        const orders = yield* writer.create({ kind: "topic", name: "orders", bytes: 4 * MiB })
        entries.setExtent(b.area.entry(orders.slot), orders.extent.offset, 2 ** 45)
        const lost = yield* writer.create({ kind: "group", name: "lost", bytes: 2 * MiB })
        entries.setNameBytes(b.area.entry(lost.slot), 100_000)
        // A delete cut short after its entry was marked, before its blocks were retired.
        const half = yield* writer.create({ kind: "channel", name: "half", bytes: MiB / 2 })
        table.markDeleted(half.slot)
        // Deleted, and pinned only after the deletion: no pin keeps it.
        yield* writer.remove(yield* writer.create({ kind: "service", name: "gone", bytes: MiB / 4 }))
        const kept = yield* writer.create({ kind: "topic", name: "kept", bytes: MiB / 8 })
        const pinned = yield* Scope.make()
        yield* directory.hold(kept).pipe(Scope.extend(pinned))
        // A create cut short between its extent and its entry (a head that died mid-create leaves it so).
        const dying = new BuddyAllocator(b.region, b.area)
        dying.rebuild()
        const { free } = table.probe("topic", "never")
        expect(dying.allocate(8, free, 999)).toBeDefined()

        expect(yield* directory.holders).toEqual([
          { kind: "unreadable", name: "orders", bytes: 4 * MiB, pinnedBy: [], slot: orders.slot, objectKind: "topic" },
          { kind: "unreadable", name: "", bytes: 2 * MiB, pinnedBy: [], slot: lost.slot },
          { kind: "unfinished", name: "create", bytes: MiB, pinnedBy: [], slot: free },
          { kind: "unfinished", name: "delete", bytes: MiB / 2, pinnedBy: [], slot: half.slot },
          { kind: "deleted", name: "objects", bytes: MiB / 4, pinnedBy: [] },
          { kind: "topic", name: "kept", bytes: MiB / 8, pinnedBy: [] }
        ])
        const full = regionFullNow(b.region, b.area, 16 * MiB)
        expect(full.message).toContain(
          `held: 4 MiB by topic orders, whose directory entry ${orders.slot} cannot be read (damaged): cxlog topics ` +
            `delete orders deletes it, as a head taking the region over (a restart of the head) deletes it, and its ` +
            `memory comes back once no process that opened it holds it; ` +
            `2 MiB by the object of directory entry ${lost.slot}, which cannot be read (damaged; its name neither): a ` +
            `head taking the region over (a restart of the head) deletes it, and its memory comes back once no process ` +
            `that opened it holds it; ` +
            `1 MiB of a create the head has not finished (directory entry ${free}): under way, or cut short when its ` +
            `head stopped, and then a head taking the region over (a restart of the head) frees it; ` +
            `0.50 MiB of a delete the head has not finished (directory entry ${half.slot}): under way, or cut short ` +
            `when its head stopped, and then a head taking the region over (a restart of the head) frees it; ` +
            `0.25 MiB of deleted objects, held by no live process (freed at the head's next tick); ` +
            `0.13 MiB by 1 other object.`
        )
        expect(full.message).not.toContain("pinned by pid")
        // Its name's length back and its kind out of range: it says its name, and its hash a group's (no topics delete frees it).
        entries.setNameBytes(b.area.entry(lost.slot), 4)
        entries.setKind(b.area.entry(lost.slot), 99)
        expect(regionFullNow(b.region, b.area, 16 * MiB).message).toContain(
          `2 MiB by the object of directory entry ${lost.slot}, which cannot be read (damaged; it says group "lost"): a head taking`
        )

        // As they say: a head taking the region over frees them all, the pin on kept (older than the takeover) let go first.
        yield* Scope.close(pinned, Exit.void)
        const next = yield* makeWriter({ area: b.area, epoch: 2, reclaimEveryMs: 60_000 }).pipe(
          Effect.provideService(CxlMemory, b.region)
        )
        yield* next.reclaim
        expect(yield* directory.holders).toEqual([{ kind: "topic", name: "kept", bytes: MiB / 8, pinnedBy: [] }])
        expect(yield* directory.usage).toMatchObject({ usedBytes: MiB / 8, retiredBytes: 0, objects: 1 })
      }))

    it.scoped("an entry whose generation is corrupted reads as damaged: listed by its slot, deletable, its memory kept while a pin older than the damage holds it", () =>
      Effect.gen(function*() {
        const b = yield* backing(config)
        const { directory, writer } = yield* open(b)
        const entries = new EntryView(b.region)
        const table = new DirectoryTable(b.region, b.area)
        const orders = yield* writer.create({ kind: "topic", name: "orders", bytes: 2 * MiB })
        yield* writer.allocate(orders, MiB)
        const prices = yield* writer.create({ kind: "topic", name: "prices", bytes: MiB })
        // Generation words corrupted: neither names the object its memory was handed out to.
        entries.setGeneration(b.area.entry(prices.slot), -7)
        expect(table.probe("topic", "prices")).toMatchObject({ found: undefined, corrupt: prices.slot })
        expect(yield* directory.holders).toEqual([
          { kind: "topic", name: "orders", bytes: 3 * MiB, pinnedBy: [] },
          { kind: "unreadable", name: "prices", bytes: MiB, pinnedBy: [], slot: prices.slot, objectKind: "topic" }
        ])
        // Deleted by the slot and the generation its entry says (as cxlog topics delete does): its memory with it.
        yield* writer.remove({ ...prices, generation: -7 })
        expect(yield* writer.reclaim).toBe(MiB)

        const pinned = yield* Scope.make()
        yield* directory.hold(orders).pipe(Scope.extend(pinned))
        entries.setGeneration(b.area.entry(orders.slot), orders.generation + 1000)
        expect(yield* directory.list()).toEqual([])
        expect(directory.isCurrent(orders)).toBe(false)
        expect(yield* directory.holders).toEqual([
          { kind: "unreadable", name: "orders", bytes: 3 * MiB, pinnedBy: [], slot: orders.slot, objectKind: "topic" }
        ])

        // A head taking over deletes the other, and keeps its memory while the pin taken before the damage stays.
        const next = yield* makeWriter({ area: b.area, epoch: 2, reclaimEveryMs: 60_000 }).pipe(
          Effect.provideService(CxlMemory, b.region)
        )
        expect(yield* directory.holders).toEqual([
          { kind: "damaged", name: "objects", bytes: 3 * MiB, pinnedBy: [process.pid] }
        ])
        expect(yield* directory.usage).toMatchObject({ usedBytes: 0, retiredBytes: 3 * MiB, objects: 0 })
        yield* Scope.close(pinned, Exit.void)
        expect(yield* next.reclaim).toBe(3 * MiB)
        expect((yield* directory.usage).freeBytes).toBe(16 * MiB)
      }))

    it.scoped("a delete cut short mid-rewrite of its entry leaves the object count right after a takeover", () =>
      Effect.gen(function*() {
        const b = yield* backing({ ...config, entrySlots: 8 })
        const { writer: old } = yield* open(b)
        const gone = yield* old.create({ kind: "topic", name: "gone", bytes: 1 })
        // What a head that died inside remove's rewrite leaves: the version odd, the state written, the count not.
        const entries = new EntryView(b.region)
        const at = b.area.entry(gone.slot)
        entries.storeVersion(at, entries.version(at) + 1)
        entries.setState(at, EntryState.deleted)
        const next = yield* makeWriter({ area: b.area, epoch: 2, reclaimEveryMs: 60_000 }).pipe(
          Effect.provideService(CxlMemory, b.region)
        )
        const directory = yield* directoryOver(b.region, b.area)
        expect(yield* directory.list()).toEqual([])
        let made = 0
        const full = yield* Effect.flip(
          Effect.forever(Effect.suspend(() => next.create({ kind: "service", name: `s${made++}`, bytes: 1 })))
        )
        // The table takes 7 objects in 8 slots, all of them the services made since.
        expect(full).toMatchObject({ _tag: "DirectoryFull", objects: 7 })
        expect(yield* directory.list()).toHaveLength(7)
      }))

    it.scoped("a full table counts the entries that cannot be read and says what deletes them", () =>
      Effect.gen(function*() {
        const b = yield* backing({ ...config, entrySlots: 8 })
        const { writer } = yield* open(b)
        const damaged = yield* writer.create({ kind: "topic", name: "damaged", bytes: 1 })
        new EntryView(b.region).setKind(b.area.entry(damaged.slot), 99)
        let made = 0
        const full = yield* Effect.flip(
          Effect.forever(Effect.suspend(() => writer.create({ kind: "service", name: `s${made++}`, bytes: 1 })))
        )
        expect(full).toMatchObject({ _tag: "DirectoryFull", objects: 7, unreadable: 1 })
        expect(full.message).toBe(
          "the region's directory is full (7 objects in 8 slots: 6 services, 1 entry that cannot be read): delete " +
            "objects (a service with Services.remove(name); an entry that cannot be read with cxlog topics delete " +
            "NAME when it still says a topic's name, else by restarting the head (its takeover deletes it)), or " +
            "create the region with more (CXLOG_DIRECTORY_ENTRIES)"
        )
      }))

    it.scoped("extents added to an object are freed with it", () =>
      Effect.gen(function*() {
        const { writer, directory } = yield* open(yield* backing(config))
        const topic = yield* writer.create({ kind: "topic", name: "lanes", bytes: 4096 })
        const lane = yield* writer.allocate(topic, 2 * MiB)
        expect(lane.bytes).toBe(2 * MiB)
        expect((yield* directory.usage).usedBytes).toBe(2 * MiB + 4096)
        expect((yield* directory.holders)[0]).toEqual({
          kind: "topic",
          name: "lanes",
          bytes: 2 * MiB + 4096,
          pinnedBy: []
        })
        yield* writer.remove(topic)
        expect(yield* directory.usage).toMatchObject({ retiredBytes: 2 * MiB + 4096, usedBytes: 0 })
        expect(yield* writer.reclaim).toBe(2 * MiB + 4096)
        expect((yield* directory.usage).freeBytes).toBe(16 * MiB)
        expect(yield* Effect.flip(writer.allocate(topic, 4096))).toMatchObject({ _tag: "ObjectDeleted" })
      }))

    it.scopedLive("the writer's tick frees deleted objects' extents by itself; an allocation that finds no room frees them at once", () =>
      Effect.gen(function*() {
        const b = yield* backing(config)
        const writer = yield* makeWriter({ area: b.area, epoch: 1, reclaimEveryMs: 20 }).pipe(
          Effect.provideService(CxlMemory, b.region)
        )
        const directory = yield* directoryOver(b.region, b.area)
        yield* writer.remove(yield* writer.create({ kind: "topic", name: "ticked", bytes: 4 * MiB }))
        expect((yield* directory.usage).retiredBytes).toBe(4 * MiB)
        yield* Effect.repeat(directory.usage, {
          until: (u) => u.retiredBytes === 0,
          schedule: Schedule.spaced("10 millis")
        })
          .pipe(Effect.timeout("10 seconds"))
        expect((yield* directory.usage).freeBytes).toBe(16 * MiB)

        const slow = yield* makeWriter({ area: b.area, epoch: 2, reclaimEveryMs: 3_600_000 }).pipe(
          Effect.provideService(CxlMemory, b.region)
        )
        const whole = yield* slow.create({ kind: "topic", name: "whole", bytes: 16 * MiB })
        yield* slow.remove(whole)
        expect((yield* slow.create({ kind: "topic", name: "again", bytes: 16 * MiB })).extent).toEqual(whole.extent)
      }))

    it.scoped("a writer taking over fences the old one, and undoes a create cut short between its extent and its entry", () =>
      Effect.gen(function*() {
        const b = yield* backing(config)
        const { writer: old, directory } = yield* open(b, 1)
        const kept = yield* old.create({ kind: "topic", name: "kept", bytes: MiB })
        // What a head that died mid-create leaves: a block taken for an entry never written, and an entry rewrite left open.
        const dying = new BuddyAllocator(b.region, b.area)
        dying.rebuild()
        expect(dying.allocate(10, 33, 999)).toBeDefined()
        const table = new DirectoryTable(b.region, b.area)
        const { free } = table.probe("topic", "half")
        new EntryView(b.region).storeVersion(b.area.entry(free), 1)
        expect((yield* directory.usage).usedBytes).toBe(5 * MiB)

        const next = yield* makeWriter({ area: b.area, epoch: 2, reclaimEveryMs: 60_000 }).pipe(
          Effect.provideService(CxlMemory, b.region)
        )
        expect(yield* Effect.flip(old.create({ kind: "topic", name: "late", bytes: 1 }))).toMatchObject({
          _tag: "NotDirectoryWriter",
          epoch: 1,
          writerEpoch: 2
        })
        expect(yield* Effect.flip(old.remove(kept))).toMatchObject({ _tag: "NotDirectoryWriter" })
        expect(
          yield* Effect.flip(makeWriter({ area: b.area, epoch: 1 }).pipe(Effect.provideService(CxlMemory, b.region)))
        ).toMatchObject({ _tag: "NotDirectoryWriter" })
        // The orphan block was freed (no pin could hold it), the half-written entry is gone, the live one stays.
        expect(yield* directory.usage).toMatchObject({ usedBytes: MiB, retiredBytes: 0, objects: 1 })
        expect(yield* directory.lookup("topic", "kept")).toEqual(kept)
        const half = yield* next.create({ kind: "topic", name: "half", bytes: 4 * MiB })
        expect(half.name).toBe("half")
        // The rewrite left open was closed: the slot reads whole again, and the name's probe takes it first.
        expect(half.slot).toBe(free)
        yield* next.remove(kept)
        yield* next.remove(half)
        yield* next.reclaim
        expect((yield* directory.usage).freeBytes).toBe(16 * MiB)
      }))

    it.scoped("a writer taking over while the old one reserves a new object's extent fences that create: no entry names the block", () =>
      Effect.gen(function*() {
        const b = yield* backing(config)
        // The host backs an extent while the writer's event loop turns (a step at a time): the standby takes over then.
        let next: DirectoryWriterShape | undefined
        const region = new Proxy(b.region, {
          get: (target, key) => {
            const value = Reflect.get(target, key, target)
            if (key !== "reserve") return typeof value === "function" ? value.bind(target) : value
            return (offset: number, length: number) => {
              const unbacked = target.reserve(offset, length)
              next ??= Effect.runSync(writerOver(b.region, b.area, 2)).shape
              return unbacked
            }
          }
        })
        const old = yield* makeWriter({ area: b.area, epoch: 1, reclaimEveryMs: 60_000 }).pipe(
          Effect.provideService(CxlMemory, region)
        )
        const directory = yield* directoryOver(b.region, b.area)
        expect(yield* Effect.flip(old.create({ kind: "topic", name: "big", bytes: MiB }))).toMatchObject({
          _tag: "NotDirectoryWriter",
          epoch: 1,
          writerEpoch: 2
        })
        // The new writer retired the block as an orphan (its entry was never written) and freed it: nothing names it.
        expect(yield* Effect.flip(directory.lookup("topic", "big"))).toMatchObject({ _tag: "ObjectNotFound" })
        expect(yield* directory.usage).toMatchObject({ usedBytes: 0, retiredBytes: 0, freeBytes: 16 * MiB, objects: 0 })
        expect((yield* next!.create({ kind: "topic", name: "big", bytes: MiB })).extent.bytes).toBe(MiB)
      }))

    it.scoped("a writer taking over merges the free buddies its predecessor died before merging: the heap is whole again", () =>
      Effect.gen(function*() {
        const b = yield* backing(config)
        const { writer: old, directory } = yield* open(b, 1)
        const halves = [
          yield* old.create({ kind: "topic", name: "low", bytes: 8 * MiB }),
          yield* old.create({ kind: "topic", name: "high", bytes: 8 * MiB })
        ]
        for (const half of halves) yield* old.remove(half)
        // What a writer that died freeing the second half leaves: both halves' records say free, the
        // merge of them into one block never written (a free writes its block's record, then merges).
        const records = new PageRecordView(b.region)
        for (const half of halves) {
          const page = (half.extent.offset - b.area.heap) / 4096
          records.write(b.area.pageRecord(page), {
            state: BlockState.free,
            order: 11,
            ownerSlot: 0,
            ownerGeneration: 0,
            retiredAt: 0
          })
        }
        const next = yield* makeWriter({ area: b.area, epoch: 2, reclaimEveryMs: 60_000 }).pipe(
          Effect.provideService(CxlMemory, b.region)
        )
        expect(yield* directory.usage).toMatchObject({ freeBytes: 16 * MiB, largestFreeBytes: 16 * MiB })
        expect((yield* next.create({ kind: "topic", name: "whole", bytes: 16 * MiB })).extent.bytes).toBe(16 * MiB)
      }))
  })

contract("region", liveBacking("directory"))
contract("in-process", memoryBacking)

describe("Directory across processes", () => {
  const shared: DirectoryConfig = { entrySlots: 512, holderLines: 8, heapBytes: 16 * MiB }

  it.scopedLive(
    "lookups and pins in three processes while the writer creates and deletes: never another object's bytes",
    () =>
      Effect.gen(function*() {
        const b = yield* liveBacking("directory")(shared)
        const { writer } = yield* open(b)
        const watchers = yield* Effect.forEach(
          [1, 2, 3],
          () => spawnFixture("directory-peer", [b.region.name, JSON.stringify(shared), "watch", "4", "64"])
        )
        yield* Effect.forEach(watchers, (w) => w.next(30_000))
        const live = new Map<number, DirectoryEntry>()
        const used = new Set<number>()
        let cycles = 0
        let reused = 0
        // At least 3.5 s and 1 200 cycles: the churn the test is for, however slowly a loaded host runs it.
        const stop = Date.now() + 3500
        while (Date.now() < stop || cycles < 1200) {
          const i = cycles++ % 64
          const old = live.get(i)
          if (old !== undefined) {
            yield* writer.remove(old)
            // Freed at once when no pin holds it (the tick is a minute away, and the heap never fills):
            // without this no extent would be reused in the run, and a reclaim that ignored pins would go unseen.
            yield* writer.reclaim
          }
          // Small objects, so a freed extent is soon another's: the lowest free block is taken first.
          const entry = yield* writer.create({ kind: "topic", name: `t${i}`, bytes: 4096 })
          if (used.has(entry.extent.offset)) reused++
          used.add(entry.extent.offset)
          b.region.f64[entry.extent.offset / 8] = entry.generation
          live.set(i, entry)
          if (cycles % 16 === 0) yield* Effect.sleep("1 millis")
        }
        const results = yield* Effect.forEach(watchers, (w) => w.next<Record<string, number>>(30_000))
        for (const r of results) {
          expect(r["pinned"]).toBeGreaterThan(0)
          expect(r["foreign"]).toBe(0)
        }
        // Extents were reused while the watchers pinned: the case the pins are for was met.
        expect(reused).toBeGreaterThan(cycles / 2)
      }),
    60_000
  )

  it.scopedLive(
    "a writer taking over deletes an entry it cannot read, and keeps its extent while a process that opened it before lives",
    () =>
      Effect.gen(function*() {
        const b = yield* liveBacking("directory")(shared)
        const { writer, directory } = yield* open(b)
        const topic = yield* writer.create({ kind: "topic", name: "held", bytes: 2 * MiB })
        // A holder as the log's are: it moves its pin to the newest epoch while the topic reads current.
        const holder = yield* spawnFixture("directory-peer", [
          b.region.name,
          JSON.stringify(shared),
          "keep",
          "topic",
          "held"
        ])
        const said = yield* holder.next<{ pid: number }>(20_000)
        // Its name's length as no build writes it: the entry decodes as no object, its state and generation as before.
        new EntryView(b.region).setNameBytes(b.area.entry(topic.slot), 100_000)
        const next = yield* makeWriter({ area: b.area, epoch: 2, reclaimEveryMs: 60_000 }).pipe(
          Effect.provideService(CxlMemory, b.region)
        )
        // The holder's next tick finds the topic gone: its pin stays from before the takeover, not moved past it.
        expect(yield* holder.next(20_000)).toEqual({ told: "held" })
        expect(yield* Effect.flip(Effect.scoped(directory.hold(topic)))).toMatchObject({ _tag: "ObjectDeleted" })
        expect(yield* next.reclaim).toBe(0)
        expect(yield* directory.usage).toMatchObject({ retiredBytes: 2 * MiB, freeBytes: 14 * MiB, objects: 0 })
        const damaged = { kind: "damaged", name: "objects", bytes: 2 * MiB, pinnedBy: [said.pid] } as const
        expect(yield* directory.holders).toEqual([damaged])
        expect(regionFullNow(b.region, b.area, 16 * MiB).message).toContain(
          `held: 2 MiB of objects whose directory entries could not be read, deleted when the head took the region ` +
            `over, pinned by pid ${said.pid} (freed once it closes what it opened before the damage, or exits)`
        )
        holder.process.kill("SIGKILL")
        yield* Deferred.await(holder.exited)
        expect(yield* next.reclaim).toBe(2 * MiB)
        expect(yield* directory.usage).toMatchObject({ retiredBytes: 0, freeBytes: 16 * MiB })
      }),
    60_000
  )

  it.scopedLive(
    "a process SIGKILLed while it pins a deleted object holds its extent only until it dies",
    () =>
      Effect.gen(function*() {
        const b = yield* liveBacking("directory")(shared)
        const { writer, directory } = yield* open(b)
        const topic = yield* writer.create({ kind: "topic", name: "held", bytes: 2 * MiB })
        const holder = yield* spawnFixture("directory-peer", [
          b.region.name,
          JSON.stringify(shared),
          "hold",
          "topic",
          "held"
        ])
        const said = yield* holder.next<{ pid: number }>(20_000)
        yield* writer.remove(topic)
        expect(yield* writer.reclaim).toBe(0)
        expect(yield* directory.usage).toMatchObject({ retiredBytes: 2 * MiB, freeBytes: 14 * MiB })
        expect(yield* directory.holders).toContainEqual({
          kind: "deleted",
          name: "objects",
          bytes: 2 * MiB,
          pinnedBy: [said.pid]
        })
        holder.process.kill("SIGKILL")
        yield* Deferred.await(holder.exited)
        expect(yield* writer.reclaim).toBe(2 * MiB)
        expect(yield* directory.usage).toMatchObject({ retiredBytes: 0, freeBytes: 16 * MiB })
      }),
    60_000
  )
})
