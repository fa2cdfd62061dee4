/**
 * A member's deliveries as a stream whose every chunk is what one run of an effect gave: a loop
 * of the channel's own steps. `Stream.repeatEffectChunk` and its `Option` variant cost several
 * times more per chunk — as much as a member's whole work on a chunk's messages — and a member's
 * code runs once a chunk, rarely enough that much of it is never optimised: what a chunk costs is
 * what the member pays. Local members (GroupMember.ts) and members through a broker
 * (ConsumerGroupsRemote.ts) both stream this way.
 */
import { Channel, Chunk, type Effect, Stream } from "effect"

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
