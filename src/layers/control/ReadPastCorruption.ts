/**
 * A request ring read by its server past damage. A request ring has one writer, its client; a
 * frame there that fails its checks (what a crashed or buggy process could leave in the region)
 * makes every later frame unreadable from that position, and reading it again fails the same way
 * for good while the client's calls wait out their bounds. So the reader that found it is
 * detached and another attached at the ring's head: the frames from the damage to that head are
 * never read, the ones committed after it are, as written. Whoever serves the ring is told once
 * per break, with the stretch that was never read, to tell the client and its own user. A ring
 * whose own leading sequence is damaged is told the same way, at once, and never read.
 */
import { Effect, Either, ExecutionStrategy, Exit, Scope } from "effect"
import type {
  InvalidRingAddress,
  NoFreeReaderSlot,
  ReaderOptions,
  RingAddress,
  RingBreak,
  RingClosed,
  RingCorrupt,
  RingReader,
  RingReadError,
  RingsShape
} from "../../services/control/Rings.js"
import { readForever } from "./RpcReadForever.js"

/**
 * Reads `address` with `read` for the scope (RpcReadForever.ts), moving past each corrupt stretch
 * as above and telling `broken` of it. The readers are held in a scope forked before the reading
 * fiber, so the fiber stops before any of them is detached at the close.
 */
export const readPastCorruption = <R>(
  rings: RingsShape,
  address: RingAddress,
  options: ReaderOptions,
  read: (reader: RingReader) => Effect.Effect<void, Exclude<RingReadError, RingClosed>, R>,
  broken: (ringBreak: RingBreak) => Effect.Effect<void>
): Effect.Effect<void, InvalidRingAddress | NoFreeReaderSlot, Scope.Scope | R> =>
  Effect.gen(function*() {
    const readers = yield* Scope.fork(yield* Effect.scope, ExecutionStrategy.sequential)
    const attach = Effect.flatMap(Scope.fork(readers, ExecutionStrategy.sequential), (own) =>
      Effect.map(
        Scope.extend(rings.reader(address, options), own),
        (reader) => ({ reader, detach: Scope.close(own, Exit.void) })
      ))
    const first = yield* Effect.either(attach)
    if (Either.isLeft(first)) {
      if (first.left._tag !== "RingCorrupt") return yield* first.left
      // The ring's own leading sequence is damaged: no reader attaches, so nothing is read from it.
      // Told once; whoever serves it serves its other rings.
      return yield* broken({ error: first.left, resumedAt: undefined })
    }
    let held = first.right
    const pastCorrupt = (error: RingCorrupt) =>
      Effect.gen(function*() {
        yield* held.detach
        const next = yield* Effect.either(attach)
        if (Either.isLeft(next)) {
          yield* broken({ error, resumedAt: undefined })
          return yield* Effect.never
        }
        held = next.right
        yield* broken({ error, resumedAt: held.reader.progress().delivered })
      })
    yield* Effect.forkScoped(
      readForever(() => held.reader, Effect.suspend(() => read(held.reader)), undefined, pastCorrupt)
    )
  })
