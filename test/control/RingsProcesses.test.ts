import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as RingsLayers from "../../src/layers/control/Rings.js"
import * as CxlMemoryLayers from "../../src/layers/region/CxlMemory.js"
import * as DoorbellLayers from "../../src/layers/region/Doorbell.js"
import { type RingAddress, ringFootprint } from "../../src/services/control/Rings.js"
import { CxlMemory } from "../../src/services/region/CxlMemory.js"
import { Doorbell } from "../../src/services/region/Doorbell.js"
import { checkFrame } from "../fixtures/ring-traffic.js"
import { spawnFixture, uniqueRegion } from "../helpers/Processes.js"

const STRESS_FRAMES = process.env["CXLOG_STRESS"] ? 5_000_000 : 1_000_000
const PARENT_BELL = 4096
/** Doorbell line of child `k`. */
const bell = (k: number) => PARENT_BELL + 64 * (k + 1)

const ringAt = (dataBytes: number, readerSlots = 4): RingAddress => ({ id: 1, offset: 16384, dataBytes, readerSlots })

/** A region holding `ring`, this process's doorbell and the region-backed Rings. */
const setup = (ring: RingAddress) =>
  Effect.gen(function*() {
    const name = yield* uniqueRegion("ringx")
    const size = Math.ceil((ring.offset + ringFootprint(ring.dataBytes, ring.readerSlots)) / 4096) * 4096
    const region = yield* CxlMemoryLayers.make({ name, size, mode: "create" })
    const doorbell = yield* DoorbellLayers.make({ offset: PARENT_BELL }).pipe(Effect.provideService(CxlMemory, region))
    const rings = yield* RingsLayers.make.pipe(
      Effect.provideService(CxlMemory, region),
      Effect.provideService(Doorbell, doorbell)
    )
    return { name, region, rings }
  })

const config = (
  name: string,
  k: number,
  ring: RingAddress,
  extra: object = {}
) => [JSON.stringify({ region: name, bell: bell(k), ring, ...extra })]

const startReaders = (name: string, ring: RingAddress, options: ReadonlyArray<object>) =>
  Effect.forEach(options, (extra, k) =>
    Effect.gen(function*() {
      const child = yield* spawnFixture("ring-reader", config(name, k, ring, extra))
      const attached = yield* child.next<{ attached: boolean; slot: number }>()
      expect(attached).toMatchObject({ attached: true })
      return { child, slot: attached.slot }
    }), { concurrency: "unbounded" })

describe("Rings across processes", () => {
  it.scopedLive(
    `stress: one writer process and three reader processes, ${STRESS_FRAMES} frames of 8 B to 4 KiB`,
    () =>
      Effect.gen(function*() {
        const ring = ringAt(512 << 10)
        const { name } = yield* setup(ring)
        const readers = yield* startReaders(name, ring, [{}, {}, {}])
        const writer = yield* spawnFixture(
          "ring-writer",
          config(name, 3, ring, { frames: STRESS_FRAMES, commitEvery: 16 })
        )
        expect(yield* writer.next()).toMatchObject({ ready: true })
        const done = yield* writer.next<{ sequence: number }>(600_000)
        for (const { child } of readers) {
          expect(yield* child.next(600_000)).toEqual({
            end: "closed",
            sequence: done.sequence,
            frames: STRESS_FRAMES,
            delivered: done.sequence,
            processed: done.sequence
          })
        }
      }),
    600_000
  )

  it.scopedLive("a slow reader process holds the writer back; nothing is overwritten", () =>
    Effect.gen(function*() {
      const ring = ringAt(32 << 10)
      const { name } = yield* setup(ring)
      const readers = yield* startReaders(name, ring, [{ delayMs: 2 }, {}])
      const writer = yield* spawnFixture("ring-writer", config(name, 2, ring, { frames: 3000, commitEvery: 4 }))
      expect(yield* writer.next()).toMatchObject({ ready: true })
      const done = yield* writer.next<{ sequence: number; waits: number }>(60_000)
      expect(done).toMatchObject({ done: true })
      expect(done.waits).toBeGreaterThan(0)
      for (const { child } of readers) {
        expect(yield* child.next(60_000)).toMatchObject({ end: "closed", frames: 3000, delivered: done.sequence })
      }
    }))

  it.scopedLive("a reader killed with SIGKILL is reaped and the blocked writer resumes", () =>
    Effect.gen(function*() {
      const ring = ringAt(32 << 10)
      const { name, rings } = yield* setup(ring)
      const inspector = yield* rings.inspect(ring)
      const [healthy, stuck] = yield* startReaders(name, ring, [{}, { stallAfter: 200 }])
      const writer = yield* spawnFixture("ring-writer", config(name, 2, ring, { frames: 3000, commitEvery: 4 }))
      expect(yield* writer.next()).toMatchObject({ ready: true })
      expect(yield* stuck!.child.next(30_000)).toMatchObject({ stalled: true })
      // The writer fills the ring up to the stuck reader's `processed`, and no further: looked at
      // until a 50 ms window in which it wrote nothing (no further is what must not happen).
      let last = -1
      yield* Effect.repeat(Effect.sleep("50 millis"), {
        until: () => {
          const now = inspector.writer().sequence
          const settled = now === last
          last = now
          return settled
        }
      })
      expect(inspector.writer().sequence - inspector.reader(stuck!.slot).processed).toBeLessThanOrEqual(ring.dataBytes)
      expect(yield* Effect.either(writer.next(300))).toMatchObject({ _tag: "Left" })
      stuck!.child.process.kill("SIGKILL")
      const done = yield* writer.next<{ sequence: number }>(30_000)
      expect(done).toMatchObject({ done: true })
      expect(yield* healthy!.child.next(30_000)).toMatchObject({
        end: "closed",
        frames: 3000,
        delivered: done.sequence
      })
      expect(inspector.reader(stuck!.slot).state).toBe("free")
    }))

  it.scopedLive("reapDead (the coordinator's call) frees the slots of dead reader processes only", () =>
    Effect.gen(function*() {
      const ring = ringAt(4096)
      const { name, rings } = yield* setup(ring)
      const [alive, doomed] = yield* startReaders(name, ring, [{}, {}])
      doomed!.child.process.kill("SIGKILL")
      yield* doomed!.child.exited
      expect(yield* rings.reapDead(ring)).toEqual([doomed!.slot])
      const inspector = yield* rings.inspect(ring)
      expect(inspector.reader(doomed!.slot).state).toBe("free")
      expect(inspector.reader(alive!.slot)).toMatchObject({ state: "attached", pid: alive!.child.process.pid })
    }))

  it.scopedLive("a writer killed mid-stream: the reader gets every committed frame, then RingWriterDead", () =>
    Effect.gen(function*() {
      const ring = ringAt(64 << 10)
      const { name, region, rings } = yield* setup(ring)
      const reader = yield* rings.reader(ring)
      const writer = yield* spawnFixture("ring-writer", config(name, 0, ring, { frames: null, commitEvery: 16 }))
      let frames = 0
      const ended = yield* Effect.gen(function*() {
        for (;;) {
          const batch = yield* reader.take()
          for (let i = 0; i < batch.count; i++, frames++) {
            expect(checkFrame(batch.bytes, region.crc32c, batch.offsets[i]!, batch.lengths[i]!, frames)).toBeUndefined()
          }
          if (frames >= 5000 && writer.process.exitCode === null && writer.process.signalCode === null) {
            writer.process.kill("SIGKILL")
          }
        }
      }).pipe(Effect.flip)
      const head = (yield* rings.inspect(ring)).writer()
      expect(ended).toMatchObject({ _tag: "RingWriterDead", pid: writer.process.pid, sequence: head.sequence })
      expect(head.closed).toBe(false)
      expect(reader.progress().delivered).toBe(head.sequence)
      expect(frames).toBeGreaterThanOrEqual(5000)
    }))
})
