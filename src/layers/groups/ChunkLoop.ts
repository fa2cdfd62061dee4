/**
 * Streams of chunks, made and consumed at a chunk's cost.
 *
 * `chunkLoop`: a member's deliveries as a stream whose every chunk is what one run of an effect
 * gave, a loop of the channel's own steps. `Stream.repeatEffectChunk` and its `Option` variant
 * cost several times more per chunk — as much as a member's whole work on a chunk's messages —
 * and a member's code runs once a chunk, rarely enough that much of it is never optimised: what a
 * chunk costs is what the member pays. Local members (GroupMember.ts) and members through a
 * broker (ConsumerGroupsRemote.ts) both stream this way.
 *
 * `eachChunk`: runs an effect on each chunk of a stream, pulling the chunks itself
 * (`Stream.toPull`). Consumed by `Stream.runForEachChunk` instead, a stream of such chunks keeps
 * much of what it allocates alive through V8's young-generation collections, which then move it to
 * the old generation, freed only by a full collection: over chunks of 64 fresh objects, 43 % of the
 * bytes allocated against 0.3 %, and 1.2 µs of CPU an object against 0.18
 * (`node --trace-gc-nvp scripts/chunk-sink-gc.mjs sink|pull`; docs/consumers.md).
 */
import { Channel, Chunk, Effect, Option, Stream } from "effect"

/** The chunks `next` gives, in turn, until it gives `undefined` (the stream ends) or fails. */
export const chunkLoop = <A, E>(next: Effect.Effect<ReadonlyArray<A> | undefined, E>): Stream.Stream<A, E> => {
  const step = Channel.fromEffect(next)
  const loop: Channel.Channel<Chunk.Chunk<A>, unknown, E, unknown, void, unknown> = Channel.flatMap(
    step,
    (taken) =>
      taken === undefined ? Channel.void : Channel.flatMap(Channel.write(Chunk.unsafeFromArray(taken)), () => loop)
  )
  return Stream.fromChannel(loop)
}

/** Runs `each` on every chunk of `stream`, in order, until the stream ends or either fails. */
export const eachChunk = <A, E, R, E2, R2>(
  stream: Stream.Stream<A, E, R>,
  each: (chunk: Chunk.Chunk<A>) => Effect.Effect<unknown, E2, R2>
): Effect.Effect<void, E | E2, R | R2> =>
  Effect.scoped(Effect.flatMap(Stream.toPull(stream), (pull) => {
    const next: Effect.Effect<void, E | E2, R | R2> = Effect.matchEffect(pull, {
      onFailure: (ended) => Option.match(ended, { onNone: () => Effect.void, onSome: Effect.fail }),
      onSuccess: (chunk) => Effect.flatMap(each(chunk), () => next)
    })
    return next
  }))
