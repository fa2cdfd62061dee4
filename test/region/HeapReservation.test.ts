/**
 * A live region whose creator reserved only what precedes the directory's heap (the head's
 * regions, Roles.ts): the heap takes the host's memory an extent at a time as the directory hands
 * it out, gives it back when the extent is freed, and a filesystem with no room left for an
 * extent is a typed `RegionFull` naming it — never a SIGBUS at a writer's first store.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import { statSync } from "node:fs"
import { join } from "node:path"
import * as CxlMemoryLayers from "../../src/layers/region/CxlMemory.js"
import { directoryOver, makeWriter } from "../../src/layers/region/Directory.js"
import {
  directoryAreaBytes,
  type DirectoryConfig,
  makeDirectoryArea
} from "../../src/layers/region/DirectoryRecords.js"
import { SUPERBLOCK_BYTES } from "../../src/layers/region/Superblock.js"
import { CxlMemory } from "../../src/services/region/CxlMemory.js"
import { uniqueRegion } from "../helpers/Processes.js"
import { smallTmpfs } from "../helpers/Tmpfs.js"

const MiB = 2 ** 20
const smallHeap: DirectoryConfig = { entrySlots: 64, holderLines: 8, heapBytes: 64 * MiB }

/** A directory over a region at `path` (a shm name or a file) whose creator reserved what precedes the heap. */
const directoryAt = (path: string, config: DirectoryConfig = smallHeap) =>
  Effect.gen(function*() {
    const area = makeDirectoryArea(SUPERBLOCK_BYTES, config)
    const region = yield* CxlMemoryLayers.make({
      name: path,
      size: SUPERBLOCK_BYTES + directoryAreaBytes(config),
      mode: "create",
      reserveBytes: area.heap
    })
    const writer = yield* makeWriter({ area, epoch: 1, reclaimEveryMs: 0 }).pipe(
      Effect.provideService(CxlMemory, region)
    )
    const directory = yield* directoryOver(region, area)
    return { region, area, writer, directory }
  })

/** The bytes the host backs the region file with. */
const backed = (file: string) => statSync(file).blocks * 512

describe("the directory's heap, reserved as it is handed out (live region)", () => {
  it("a directory's area off a page is refused: its extents would not be whole pages", () => {
    expect(() => makeDirectoryArea(SUPERBLOCK_BYTES + 128, smallHeap)).toThrow(
      /starts on a page \(4096 bytes\), not at 4224/
    )
    expect(makeDirectoryArea(SUPERBLOCK_BYTES, smallHeap).heap % 4096).toBe(0)
  })

  it.scopedLive("an extent takes its memory when allocated and gives it back when freed; written, it reads back", () =>
    Effect.gen(function*() {
      const name = yield* uniqueRegion("heapreserve")
      const file = `/dev/shm/${name}`
      const { area, directory, region, writer } = yield* directoryAt(name)
      const before = backed(file)
      // What precedes the heap, not the heap's 64 MiB.
      expect(before).toBeLessThan(area.heap + MiB)
      const big = yield* writer.create({ kind: "topic", name: "big", bytes: 16 * MiB })
      expect(backed(file) - before).toBeGreaterThanOrEqual(16 * MiB)
      region.bytes.fill(7, big.extent.offset, big.extent.offset + big.extent.bytes)
      expect(region.bytes[big.extent.offset + big.extent.bytes - 1]).toBe(7)
      yield* writer.remove(big)
      yield* writer.reclaim
      expect(yield* Effect.flip(directory.lookup("topic", "big"))).toMatchObject({ _tag: "ObjectNotFound" })
      expect(backed(file)).toBeLessThan(before + MiB)
      // The extent comes back zeroed to its next owner.
      const again = yield* writer.create({ kind: "topic", name: "again", bytes: 16 * MiB })
      expect(again.extent.offset).toBe(big.extent.offset)
      expect(region.bytes.subarray(again.extent.offset, again.extent.offset + again.extent.bytes).every((b) => b === 0))
        .toBe(true)
    }))

  it.scopedLive("a large extent is reserved a step at a time, the event loop turning; changes meanwhile wait their turn", () =>
    Effect.gen(function*() {
      const name = yield* uniqueRegion("heapsteps")
      const { directory, writer } = yield* directoryAt(name, { entrySlots: 64, holderLines: 8, heapBytes: 512 * MiB })
      let turns = 0
      const ticking = setInterval(() => turns++, 0)
      yield* Effect.addFinalizer(() => Effect.sync(() => clearInterval(ticking)))
      // Two 128 MiB extents asked for at once (8 steps each): both made, apart, and timers ran meanwhile.
      const before = turns
      const [a, b] = yield* Effect.all([
        writer.create({ kind: "topic", name: "a", bytes: 128 * MiB }),
        writer.create({ kind: "topic", name: "b", bytes: 128 * MiB })
      ], { concurrency: "unbounded" })
      expect(turns).toBeGreaterThan(before)
      // Each its own object: one reads the directory's next generation after the other wrote it.
      expect(a.slot).not.toBe(b.slot)
      expect(a.generation).not.toBe(b.generation)
      expect(Math.abs(a.extent.offset - b.extent.offset)).toBeGreaterThanOrEqual(128 * MiB)
      expect((yield* directory.lookup("topic", "a")).extent).toEqual(a.extent)
      expect((yield* directory.lookup("topic", "b")).extent).toEqual(b.extent)
    }))

  it.scopedLive("a filesystem with no room for an extent is RegionFull naming it; deleting makes room again", () =>
    Effect.gen(function*() {
      const dir = yield* smallTmpfs("24m")
      const file = join(dir, "region")
      const { writer } = yield* directoryAt(file)
      // The heap has 64 MiB; the filesystem holds 24 MiB: the third 8 MiB extent finds no memory.
      const made = []
      let refused: unknown
      for (let i = 0; i < 8 && refused === undefined; i++) {
        const outcome = yield* Effect.either(writer.create({ kind: "topic", name: `t${i}`, bytes: 8 * MiB }))
        if (Either.isLeft(outcome)) refused = outcome.left
        else made.push(outcome.right)
      }
      expect(made.length).toBeGreaterThanOrEqual(1)
      expect(made.length).toBeLessThan(3)
      expect(refused).toMatchObject({ _tag: "RegionFull", requested: 8 * MiB })
      expect(String((refused as Error).message)).toMatch(
        /heap has an extent of 8 MiB free, but the host could not back 8388608 bytes of region .*region \(the filesystem holding it is full\): make room on that filesystem/
      )
      // Nothing of the refused extent stays held: deleting one makes room for it.
      yield* writer.remove(made[0]!)
      yield* writer.reclaim
      const after = yield* writer.create({ kind: "topic", name: "after", bytes: 8 * MiB })
      expect(after.extent.bytes).toBe(8 * MiB)
      expect(backed(file)).toBeLessThanOrEqual(24 * MiB)
    }))

  it.scopedLive("an extent refused part way through its reservation gives back the steps it had reserved", () =>
    Effect.gen(function*() {
      const dir = yield* smallTmpfs("24m")
      const file = join(dir, "region")
      const { writer } = yield* directoryAt(file)
      const before = backed(file)
      // 32 MiB is reserved 16 MiB at a time: the first step fits the 24 MiB filesystem, the second does not.
      const refused = yield* Effect.flip(writer.create({ kind: "topic", name: "big", bytes: 32 * MiB }))
      expect(refused).toMatchObject({ _tag: "RegionFull", requested: 32 * MiB })
      expect(backed(file)).toBe(before)
      // And the filesystem still has room for what fits.
      const fits = yield* writer.create({ kind: "topic", name: "fits", bytes: 16 * MiB })
      expect(fits.extent.bytes).toBe(16 * MiB)
    }))
})
