/**
 * Appender.tryReserve: receiving a batch's payload in place before it is appended (the
 * broker's socket reads into the reserved space), and revocation when another append takes it.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import {
  appendSimple,
  drain,
  header,
  implementations,
  makeBatch,
  readAll,
  SMALL_BLOG_BYTES,
  smallConfig
} from "../fixtures/log-harness.js"

const spec = { name: "t", order: 2 as const, ackLevel: 1 as const, replicationFactor: 1 }

/** Whether two views cover the same bytes. */
const sameBytes = (a: Uint8Array, b: Uint8Array) => a.buffer === b.buffer && a.byteOffset === b.byteOffset

for (const impl of implementations) {
  describe(`Appender.tryReserve: ${impl.label}`, () => {
    it.scoped("a payload received into the reserved space is appended from there; another append first revokes the space", () =>
      Effect.gen(function*() {
        const cluster = yield* impl.make()
        yield* cluster.topics.create(spec)
        const a = yield* cluster.appender(0)
        // The topic's state is set up by a first append.
        yield* appendSimple(a, "t", 1, 0, 0)
        const first = makeBatch([100, 200], 1)
        let revokedFirst = 0
        const view = a.tryReserve("t", first.payload.length, 32, () => revokedFirst++)
        if (!(view instanceof Uint8Array)) return expect.unreachable(`no space: ${String(view)}`)
        // Room for the slack too: the space is free past the payload.
        expect(view.length).toBe(first.payload.length + 32)
        view.set(first.payload)
        let inPlace = false
        const receipt = a.tryAppendWith("t", header(1, 0, 1, first), (dst) => {
          inPlace = sameBytes(dst, view)
          if (!inPlace) dst.set(view.subarray(0, first.payload.length))
        })
        expect(receipt).toMatchObject({ brokerId: 0, pbrSeq: 1 })
        // Over the region the append writes where the payload already is; the store keeps a copy of its own.
        expect(inPlace).toBe(impl.label !== "layerMemory")
        expect(revokedFirst).toBe(1)

        // Half of the next batch has arrived when another append comes: the holder is told first, with its bytes intact.
        const second = makeBatch([3000, 10], 2)
        const half = second.payload.length / 2
        const saved = new Uint8Array(second.payload.length)
        let revokedWith: Array<number> | undefined
        const space = a.tryReserve("t", second.payload.length, 32, () => {
          saved.set(space2().subarray(0, half))
          revokedWith = [...saved.subarray(0, half)]
        })
        const space2 = () => space as Uint8Array
        expect(space).toBeInstanceOf(Uint8Array)
        space2().set(second.payload.subarray(0, half))
        yield* appendSimple(a, "t", 2, 0, 0)
        expect(revokedWith).toEqual([...second.payload.subarray(0, half)])
        // The rest arrives in the holder's own buffer; the append copies it all.
        saved.set(second.payload.subarray(half), half)
        expect(a.tryAppendWith("t", header(1, 0, 2, second), (dst) => dst.set(saved))).toMatchObject({ pbrSeq: 3 })

        yield* drain(yield* cluster.sequencer())
        const read = yield* readAll(cluster.reader, "t")
        expect(read.map((b) => [b.clientId, b.batchSeq, b.crcOk])).toEqual([[1, 0, true], [1, 1, true], [2, 0, true], [
          1,
          2,
          true
        ]])
      }))

    it.scoped("no space without room: a full Blog says wait, and so does a topic this process has not set up", () =>
      Effect.gen(function*() {
        const cluster = yield* impl.make()
        yield* cluster.topics.create(spec)
        const a = yield* cluster.appender(1)
        expect(a.tryReserve("nope", 64, 32, () => {})).not.toBeInstanceOf(Uint8Array)
        const big = makeBatch([smallConfig.maxBatchBytes - 8])
        const fits = Math.floor(SMALL_BLOG_BYTES / big.payload.length)
        for (let seq = 0; seq < fits - 1; seq++) yield* a.append("t", header(2, 0, seq, big), big.payload)
        // A batch that leaves room for exactly one more big one up to the Blog's end.
        const filler = makeBatch([SMALL_BLOG_BYTES - fits * big.payload.length - 8])
        yield* a.append("t", header(2, 0, fits - 1, filler), filler.payload)
        // Room for one more batch up to the Blog's end, but not for the slack past it: the space offered is the payload alone.
        const last = a.tryReserve("t", big.payload.length, 32, () => {})
        expect(last instanceof Uint8Array ? last.length : last).toBe(big.payload.length)
        yield* a.append("t", header(2, 0, fits, big), big.payload)
        expect(a.tryReserve("t", big.payload.length, 32, () => {})).toBe("wait")
      }))
  })
}
