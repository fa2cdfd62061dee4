/**
 * A member's stream as `chunkLoop` makes it: each run of its effect is one chunk, in turn; the
 * stream ends when the effect gives nothing more (a member through a broker told it left, as asked)
 * and fails with the effect's error (told why it left). And `eachChunk`, which consumes such a
 * stream by pulling it: every chunk in turn, each one's effect ended before the next is pulled,
 * failing with the stream's failure or its effect's, and pulling nothing after either.
 */
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Stream } from "effect"
import { chunkLoop, eachChunk } from "../../src/layers/groups/ChunkLoop.js"

/** An effect giving `runs` one after another, then `last` (undefined: the end; an Error: that failure). */
const runsThen = (runs: ReadonlyArray<ReadonlyArray<number>>, last: undefined | Error) => {
  let next = 0
  return Effect.suspend((): Effect.Effect<ReadonlyArray<number> | undefined, Error> => {
    const run = runs[next++]
    if (run !== undefined) return Effect.succeed(run)
    return last === undefined ? Effect.succeed(undefined) : Effect.fail(last)
  })
}

describe("chunkLoop", () => {
  it.effect("each run is a chunk, in order, and the stream ends when the effect gives nothing more", () =>
    Effect.gen(function*() {
      const chunks = yield* Stream.runCollect(Stream.chunks(chunkLoop(runsThen([[1, 2], [3], [4, 5, 6]], undefined))))
      expect(Chunk.toReadonlyArray(chunks).map((c) => Chunk.toReadonlyArray(c))).toEqual([[1, 2], [3], [4, 5, 6]])
    }))

  it.effect("the effect's failure is the stream's, after the chunks before it", () =>
    Effect.gen(function*() {
      const seen: Array<number> = []
      const failed = yield* Effect.flip(
        Stream.runForEach(chunkLoop(runsThen([[1], [2, 3]], new Error("left: group deleted"))), (n) =>
          Effect.sync(() => seen.push(n)))
      )
      expect(failed.message).toBe("left: group deleted")
      expect(seen).toEqual([1, 2, 3])
    }))
})

describe("eachChunk", () => {
  it.effect("runs its effect on every chunk, in order, each run ended before the next chunk is pulled", () =>
    Effect.gen(function*() {
      const events: Array<string> = []
      const runs = runsThen([[1, 2], [3], [4, 5, 6]], undefined)
      const pulled = chunkLoop(Effect.zipRight(Effect.sync(() => events.push("pull")), runs))
      yield* eachChunk(
        pulled,
        (chunk) =>
          Effect.sync(() => events.push(`start ${Chunk.join(Chunk.map(chunk, String), ",")}`)).pipe(
            Effect.zipRight(Effect.yieldNow()),
            Effect.zipRight(Effect.sync(() => events.push("end")))
          )
      )
      expect(events).toEqual([
        "pull",
        "start 1,2",
        "end",
        "pull",
        "start 3",
        "end",
        "pull",
        "start 4,5,6",
        "end",
        "pull"
      ])
    }))

  it.effect("the stream's failure is its failure, after the chunks before it", () =>
    Effect.gen(function*() {
      const seen: Array<number> = []
      const failed = yield* Effect.flip(
        eachChunk(
          chunkLoop(runsThen([[1], [2, 3]], new Error("left: group deleted"))),
          (chunk) => Effect.sync(() => seen.push(...chunk))
        )
      )
      expect(failed.message).toBe("left: group deleted")
      expect(seen).toEqual([1, 2, 3])
    }))

  it.effect("its effect's failure ends it: no chunk is pulled after it", () =>
    Effect.gen(function*() {
      let pulls = 0
      // Five chunks, then the end: a loop that went on past the failure would end, not fail.
      const counted = chunkLoop(Effect.sync(() => {
        pulls++
        return pulls <= 5 ? [pulls] : undefined
      }))
      const failed = yield* Effect.flip(
        eachChunk(counted, (chunk) => Chunk.unsafeHead(chunk) === 2 ? Effect.fail("refused 2") : Effect.void)
      )
      expect(failed).toBe("refused 2")
      expect(pulls).toBe(2)
    }))
})
