/**
 * What a publisher's lane keeps of the batches it sealed (`trim`, PublisherAcks.ts): the done
 * batches at the front of `unacked` go once they are more than half of it, so a lane keeps about
 * as many as it has in flight and none once all are done (a publisher over a thousand topics
 * otherwise holds a tail of done batches in each), but never one whose offset an ACK may still
 * name.
 */
import { describe, expect, it } from "@effect/vitest"
import { trim } from "../../src/layers/net/PublisherAcks.js"
import type { Batch, Lane } from "../../src/layers/net/PublisherState.js"

const batch = (seq: number, done: boolean) => ({ seq, done }) as Batch

/** A lane holding `batches` (seq order), its head past the done ones in front, as `advance` leaves it. */
const laneWith = (batches: Array<Batch>, awaitingOffset: Array<Batch> = []): Lane => {
  let head = 0
  while (head < batches.length && batches[head]!.done) head++
  return { unacked: batches, head, awaitingOffset } as unknown as Lane
}

const seqs = (lane: Lane) => lane.unacked.map((b) => b.seq)

describe("a publisher lane's sealed batches", () => {
  it("a lane whose batches are all done keeps none of them", () => {
    const lane = laneWith([batch(0, true), batch(1, true), batch(2, true)])
    trim(lane)
    expect(seqs(lane)).toEqual([])
    expect(lane.head).toBe(0)
  })

  it("done batches in front of those in flight go once they are more than half, the rest keep their order", () => {
    const lane = laneWith([batch(4, true), batch(5, true), batch(6, true), batch(7, false), batch(8, true)])
    trim(lane)
    expect(seqs(lane)).toEqual([7, 8])
    expect(lane.head).toBe(0)
    const fewDone = laneWith([batch(0, true), batch(1, false), batch(2, false)])
    trim(fewDone)
    expect(seqs(fewDone)).toEqual([0, 1, 2])
    expect(fewDone.head).toBe(1)
  })

  it("a done batch whose offset an ACK may still name stays, with every batch after it", () => {
    const awaiting = batch(13, true)
    const lane = laneWith([batch(10, true), batch(11, true), batch(12, true), awaiting, batch(14, true)], [awaiting])
    trim(lane)
    expect(seqs(lane)).toEqual([13, 14])
    expect(lane.unacked[0]).toBe(awaiting)
    expect(lane.head).toBe(2)
  })
})
