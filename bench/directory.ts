/**
 * bench directory: the region directory's engine over a live region — `--objects` (default
 * 10 000) objects of `--object-kib` (default 16) created by name, each looked up (a hit) and a
 * name that is not there (a miss), each pinned and released, all deleted, their extents
 * reclaimed in one pass (what the writer's tick does), then all created again. Each operation is timed alone (hrtime); figures are p50/p99 in µs. The reference is
 * a JavaScript Map of the same names in this process (set, get), timed the same way: the
 * floor for a lookup with no shared memory. `recreatedAfterDelete` is true when the second
 * round fits exactly where the first did (the same extents) and the heap is whole after the
 * final deletes. `ratio` = Map get p50 ÷ directory lookup p50 (1 would be a lookup as cheap
 * as a private Map's).
 * Flags: --objects=N, --object-kib=N, --entries=N (entry slots, default 16384).
 */
import { Effect } from "effect"
import * as CxlMemoryLayers from "../src/layers/region/CxlMemory.js"
import { directoryOver, makeWriter } from "../src/layers/region/Directory.js"
import { directoryAreaBytes, makeDirectoryArea } from "../src/layers/region/DirectoryRecords.js"
import { SUPERBLOCK_BYTES } from "../src/layers/region/Superblock.js"
import { CxlMemory } from "../src/services/region/CxlMemory.js"
import type { DirectoryEntry } from "../src/services/region/Directory.js"
import { flag } from "./LogBench.js"
import { emit, summarize, table } from "./Report.js"

const micros = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1000

export const run = (args: ReadonlyArray<string>) =>
  Effect.scoped(Effect.gen(function*() {
    const objects = flag(args, "objects", 10_000)
    const objectBytes = flag(args, "object-kib", 16) * 1024
    const entrySlots = flag(args, "entries", 16_384)
    const heapBytes = 2 ** Math.ceil(Math.log2(objects * objectBytes))
    const config = { entrySlots, holderLines: 16, heapBytes }
    const region = yield* CxlMemoryLayers.make({
      name: `cxlog-bench-directory-${process.pid}`,
      size: SUPERBLOCK_BYTES + directoryAreaBytes(config),
      mode: "create"
    })
    const area = makeDirectoryArea(SUPERBLOCK_BYTES, config)
    const writer = yield* makeWriter({ area, epoch: 1 }).pipe(Effect.provideService(CxlMemory, region))
    const directory = yield* directoryOver(region, area)
    const names = Array.from({ length: objects }, (_, i) => `orders.region-${i % 97}.shard-${i}`)

    const timed = <A, E>(samples: Array<number>, effect: Effect.Effect<A, E>) =>
      Effect.suspend(() => {
        const t0 = process.hrtime.bigint()
        return Effect.tap(effect, () => Effect.sync(() => samples.push(micros(t0))))
      })
    const createAll = (samples: Array<number>) =>
      Effect.forEach(names, (name) => timed(samples, writer.create({ kind: "topic", name, bytes: objectBytes })))

    const create: Array<number> = []
    const first: ReadonlyArray<DirectoryEntry> = yield* createAll(create)
    const hit: Array<number> = []
    const miss: Array<number> = []
    const pin: Array<number> = []
    for (const name of names) {
      const entry = yield* timed(hit, directory.lookup("topic", name))
      yield* timed(miss, Effect.option(directory.lookup("channel", name)))
      yield* timed(pin, Effect.scoped(directory.hold(entry)))
    }
    const remove: Array<number> = []
    for (const entry of first) yield* timed(remove, writer.remove(entry))
    // What the writer's tick does: the deleted objects' extents go back to the heap.
    const reclaimStart = process.hrtime.bigint()
    yield* writer.reclaim
    const reclaimMs = micros(reclaimStart) / 1000
    const recreate: Array<number> = []
    const second: ReadonlyArray<DirectoryEntry> = yield* createAll(recreate)
    const sameExtents = first.every((e, i) => e.extent.offset === second[i]!.extent.offset)
    for (const entry of second) yield* writer.remove(entry)
    yield* writer.reclaim
    const usage = yield* directory.usage

    const map = new Map<string, number>()
    const mapSet: Array<number> = []
    const mapGet: Array<number> = []
    names.forEach((name, i) => {
      const t0 = process.hrtime.bigint()
      map.set(name, i)
      mapSet.push(micros(t0))
    })
    for (const name of names) {
      const t0 = process.hrtime.bigint()
      map.get(name)
      mapGet.push(micros(t0))
    }

    const s = {
      create: summarize(create),
      recreate: summarize(recreate),
      remove: summarize(remove),
      hit: summarize(hit),
      miss: summarize(miss),
      pin: summarize(pin),
      mapSet: summarize(mapSet),
      mapGet: summarize(mapGet)
    }
    const fixedBytesPerObject = directoryAreaBytes({ ...config, heapBytes: 0 }) / (entrySlots * 7 / 8)
    const rows = Object.entries(s).map(([op, v]) => [op, v.p50.toFixed(2), v.p99.toFixed(2), `${v.count}`])
    emit(table(["operation", "p50 µs", "p99 µs", "count"], rows), {
      bench: "directory",
      objects,
      objectBytes,
      createP50Us: s.create.p50,
      createP99Us: s.create.p99,
      recreateP50Us: s.recreate.p50,
      deleteP50Us: s.remove.p50,
      deleteP99Us: s.remove.p99,
      reclaimAllMs: reclaimMs,
      lookupP50Us: s.hit.p50,
      lookupMissP50Us: s.miss.p50,
      pinP50Us: s.pin.p50,
      mapSetP50Us: s.mapSet.p50,
      mapGetP50Us: s.mapGet.p50,
      directoryBytesPerObject: Math.round(fixedBytesPerObject),
      recreatedAfterDelete: sameExtents && usage.freeBytes === heapBytes,
      ratio: s.mapGet.p50 / s.hit.p50
    })
  }))
