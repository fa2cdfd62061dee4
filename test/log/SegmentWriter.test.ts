/**
 * The segment writer's pipeline, on the in-process disk with its syncs held at a gate: appends
 * made while an fdatasync runs are written at once (not after it returns), that fdatasync moves
 * the frontier only over what was written before it began, and the next one covers the rest;
 * written chunks are reused without corrupting records still pending.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { makeMemoryDisk } from "../../src/layers/log/durable/SegmentsMemory.js"
import * as SegmentsMemoryLayers from "../../src/layers/log/durable/SegmentsMemory.js"

const record = (i: number, size = 1000 + (i % 7) * 8) => Uint8Array.from({ length: size }, (_, k) => (i * 13 + k) & 255)

describe("segment writer", () => {
  it.scopedLive("appends made during an fdatasync are written meanwhile; it covers only what came before it, the next one the rest", () =>
    Effect.gen(function*() {
      const disk = makeMemoryDisk()
      const segments = yield* SegmentsMemoryLayers.makeMemory(disk, "/data")
      const log = yield* segments.open("s")
      const frontiers: Array<number> = []
      log.onDurable((d) => frontiers.push(d))
      let release = () => {}
      disk.gate = new Promise((resolve) => (release = resolve))
      log.tryAppend(record(0))
      const file = disk.files.get([...disk.files.keys()].find((p) => p.endsWith(".seg"))!)!
      // Record 0 is written and its sync waits at the gate.
      while (file.size === 0) yield* Effect.sleep(1)
      const first = file.size
      for (let i = 1; i < 5; i++) log.tryAppend(record(i))
      // Written while that sync is held: the next sync need not write first.
      for (let i = 0; i < 1_000 && file.size === first; i++) yield* Effect.sleep(1)
      expect(file.size).toBeGreaterThan(first)
      expect(log.durable()).toBe(0)
      disk.gate = undefined
      release()
      yield* log.awaitDurable(5, 5_000)
      // The held sync began before records 1..4 were written: it made record 0 durable, the next one the rest.
      expect(frontiers).toEqual([1, 5])
      expect(log.syncs()).toBe(2)
    }).pipe(Effect.scoped))

  it.scopedLive("chunks written are filled again, and every record reads back as appended", () =>
    Effect.gen(function*() {
      const disk = makeMemoryDisk()
      const segments = yield* SegmentsMemoryLayers.makeMemory(disk, "/data")
      yield* Effect.scoped(Effect.gen(function*() {
        const log = yield* segments.open("s", { segmentBytes: 1 << 20 })
        // Rounds of appends, each round waiting for the disk: later rounds fill chunks earlier ones wrote.
        for (let round = 0; round < 20; round++) {
          for (let i = 0; i < 300; i++) log.tryAppend(record(round * 300 + i))
          if (round % 3 === 0) yield* log.awaitDurable(log.appended(), 5_000)
        }
        yield* log.awaitDurable(log.appended(), 5_000)
      }))
      const log = yield* segments.open("s", { segmentBytes: 1 << 20 })
      expect(log.durable()).toBe(6_000)
      let bad = -1
      yield* log.read(0, (i, bytes) => {
        if (bad < 0 && bytes.join() !== record(i).join()) bad = i
      })
      expect(bad).toBe(-1)
    }).pipe(Effect.scoped))
})
