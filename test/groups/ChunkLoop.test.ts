/**
 * A member's stream as `chunkLoop` makes it: each run of its effect is one chunk, in turn; the
 * stream ends when the effect gives nothing more (a member through a broker told it left, as asked)
 * and fails with the effect's error (told why it left).
 */
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Stream } from "effect"
import { chunkLoop } from "../../src/layers/groups/ChunkLoop.js"

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
