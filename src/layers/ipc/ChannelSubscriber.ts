/**
 * A channel's reading side: one reader slot on every writer ring, each ring followed by its
 * own fiber through its writers' closes and deaths to the next writer of that slot. A ring's
 * frames are handed on in order, so each writer's values arrive in the order it wrote them;
 * a frame counts as processed only once its value is in the subscription's bounded buffer,
 * so a subscriber that does not take holds its writers back (backpressure), never loses.
 */
import { Effect, Either, ExecutionStrategy, Exit, Scope } from "effect"
import { firstIssueLine } from "../../SchemaIssues.js"
import type { RingAddress, RingReader, RingReadError, RingsShape } from "../../services/control/Rings.js"
import {
  ChannelBroken,
  type ChannelConsumeError,
  type ChannelMessage,
  ChannelReadersBusy,
  type ChannelSubscription,
  ChannelSubscriptionClosed,
  type ChannelTakeError,
  ChannelTakeTimeout,
  InvalidChannel,
  InvalidChannelFrame,
  type RawSubscription
} from "../../services/ipc/Channels.js"
import type { JsonCodec } from "../control/JsonCodec.js"
import { BINARY_MARK, BinaryRefusal, type BinaryValues } from "./BinaryValues.js"
import { makeChannelBuffer } from "./ChannelBuffer.js"

/** How long one wait for a ring's next writer lasts before it is taken again (the reader's heartbeat moves meanwhile). */
const NEXT_WRITER_WAIT_MS = 1_000

const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true })

/**
 * A reader slot on `address`: a free one, else one whose process is gone (the ring engine reclaims
 * it). While it waits for frames its process may spin up to `spinMicros`: a value that follows the
 * last within that is taken without a park and a kernel wake (see `ReaderOptions.spinMicros`).
 */
const attach = (rings: RingsShape, name: string, address: RingAddress, spinMicros: number) =>
  rings.reader(address, { spinMicros }).pipe(
    Effect.mapError((e) =>
      e._tag === "NoFreeReaderSlot"
        ? new ChannelReadersBusy({ name, readerSlots: address.readerSlots })
        : new InvalidChannel({ name, reason: e.message })
    )
  )

/** A reader slot held on one writer ring, and how to give it back before the subscription closes. */
interface HeldReader {
  readonly reader: RingReader
  /** Detaches the reader now (once its ring's reading ended broken); the subscription's close does it otherwise. */
  readonly release: Effect.Effect<void>
}

/**
 * A reader slot on every ring, each held in a scope of its own under the subscription's: a ring
 * whose reading ended broken gives its slot back at once, the others stay until the close.
 */
const attachAll = (
  rings: RingsShape,
  name: string,
  addresses: ReadonlyArray<RingAddress>,
  spinMicros: number
): Effect.Effect<ReadonlyArray<HeldReader>, ChannelReadersBusy | InvalidChannel, Scope.Scope> =>
  Effect.flatMap(Effect.scope, (subscription) =>
    Effect.forEach(addresses, (address) =>
      Effect.gen(function*() {
        const own = yield* Scope.fork(subscription, ExecutionStrategy.sequential)
        const reader = yield* Scope.extend(attach(rings, name, address, spinMicros), own)
        return { reader, release: Scope.close(own, Exit.void) }
      })))

/**
 * Reads one writer ring for ever: `read` (a `consume` of the ring) ends when its writer closes
 * or dies after every frame it committed was handed on; then the next writer of the slot is
 * awaited. A reaped slot or a corrupt ring ends the subscription of this ring, typed, and its
 * reader slot is given back before that is told: nothing more is read from it, and a
 * subscription that attaches next, or a removal looking for users, finds it free.
 */
const followRing = (
  name: string,
  writer: number,
  held: HeldReader,
  read: Effect.Effect<void, Exclude<RingReadError, { readonly _tag: "RingClosed" }>>
): Effect.Effect<never, ChannelBroken> =>
  Effect.forever(
    read.pipe(
      Effect.catchTag("RingWriterDead", () => Effect.void),
      Effect.zipRight(Effect.repeat(held.reader.awaitWriter(NEXT_WRITER_WAIT_MS), { until: (opened) => opened }))
    )
  ).pipe(
    Effect.mapError((e) => new ChannelBroken({ name, writer, reason: e.message })),
    Effect.tapError(() => held.release)
  )

type Received<A> = Either.Either<ChannelMessage<A>, InvalidChannelFrame | ChannelBroken>

const NO_BINARY_FORM = new BinaryRefusal("a binary frame, and this channel's Schema has no binary form")

const decodeFrame = <A>(
  name: string,
  codec: JsonCodec,
  binary: BinaryValues | undefined,
  frame: Uint8Array,
  writer: number,
  sequence: number
): Received<A> => {
  // A binary frame (BinaryValues.ts) starts with a byte no JSON text starts with.
  if (frame[0] === BINARY_MARK) {
    const read = binary === undefined ? NO_BINARY_FORM : binary.read(frame)
    return read instanceof BinaryRefusal
      ? Either.left(new InvalidChannelFrame({ name, writer, sequence, reason: read.reason }))
      : Either.right({ value: read as A, writer, sequence })
  }
  let text: string
  try {
    text = decoder.decode(frame)
  } catch {
    return Either.left(new InvalidChannelFrame({ name, writer, sequence, reason: "not UTF-8 text" }))
  }
  return Either.match(codec.decode(text), {
    onLeft: (e) => Either.left(new InvalidChannelFrame({ name, writer, sequence, reason: firstIssueLine(e) })),
    onRight: (value) => Either.right({ value: value as A, writer, sequence })
  })
}

/**
 * A typed subscription: every ring read in batches from its wake-up (`consumeSync`), each frame
 * decoded straight into one bounded buffer that `take` and `takeUpTo` empty, or, while a
 * `consume` runs, straight to its handler. A full buffer pauses that ring's reading until a take
 * makes room or a `consume` starts (the frame counts as processed then).
 */
export const typedSubscription = <A>(
  rings: RingsShape,
  name: string,
  codec: JsonCodec,
  binary: BinaryValues | undefined,
  addresses: ReadonlyArray<RingAddress>,
  capacity: number,
  spinMicros: number
): Effect.Effect<ChannelSubscription<A>, ChannelReadersBusy | InvalidChannel, Scope.Scope> =>
  Effect.gen(function*() {
    const readers = yield* attachAll(rings, name, addresses, spinMicros)
    const received = makeChannelBuffer<Received<A>>(capacity)
    /** The running `consume`'s hand-off: set, the rings' frames skip the buffer. */
    let direct: DirectConsumer<A> | undefined
    /** Hands `item` on: to the running consume, else into the buffer once it has room. */
    const handOnWhenRoom = (item: Received<A>): Effect.Effect<void> =>
      Effect.suspend(() => {
        if (direct !== undefined) {
          direct.onItem(item)
          return Effect.void
        }
        return received.offer(item) ? Effect.void : Effect.zipRight(received.awaitRoom, handOnWhenRoom(item))
      })
    const handOn = (item: Received<A>): Effect.Effect<void> | undefined => {
      if (direct !== undefined) {
        direct.onItem(item)
        return undefined
      }
      return received.offer(item) ? undefined : handOnWhenRoom(item)
    }
    for (const [writer, held] of readers.entries()) {
      const read = held.reader.consumeSync((frame, sequence) =>
        handOn(decodeFrame<A>(name, codec, binary, frame, writer, sequence))
      )
      yield* followRing(name, writer, held, read).pipe(
        Effect.catchAll((broken) => handOnWhenRoom(Either.left(broken))),
        Effect.forkScoped
      )
    }
    // Closed first as the scope ends: a take waiting then, or made after, fails at once rather than at its bound.
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        received.close()
        direct?.end(closed)
      })
    )
    // A bound that is no number ("500", a JavaScript caller's) waited not at all, as NaN does: said
    // as NaN, where the error's own Schema refused it and the take died with a ParseError.
    const timedOut = (timeoutMs: number) =>
      Effect.fail(new ChannelTakeTimeout({ name, timeoutMs: typeof timeoutMs === "number" ? timeoutMs : Number.NaN }))
    const closed = Effect.fail(new ChannelSubscriptionClosed({ name }))
    /** What `taken` makes of the buffer once it holds something, waiting at most `timeoutMs` for that. */
    const whenAvailable = <R>(timeoutMs: number, taken: () => Effect.Effect<R, ChannelTakeError>) => {
      const started = performance.now()
      const again = (): Effect.Effect<R, ChannelTakeError> =>
        received.isClosed() ? closed : received.size() > 0 ? taken() : Effect.flatMap(
          received.awaitItem(timeoutMs - (performance.now() - started)),
          (arrived) => (arrived || received.isClosed() ? again() : timedOut(timeoutMs))
        )
      return again()
    }
    // Called only while the buffer holds an item (`whenAvailable` checked it in the same step).
    const takeOne = (): Effect.Effect<ChannelMessage<A>, ChannelTakeError> => received.pollOne()!
    const takeSome = (max: number) => (): Effect.Effect<Array<ChannelMessage<A>>, ChannelTakeError> => {
      const first = received.pollOne()!
      if (Either.isLeft(first)) return Effect.fail(first.left)
      const messages = [first.right]
      // Up to the next frame that did not decode (or the break), which the next take returns.
      for (let next = received.peek(); messages.length < max && next !== undefined && Either.isRight(next);) {
        messages.push(next.right)
        received.pollOne()
        next = received.peek()
      }
      return Effect.succeed(messages)
    }
    const consume = (handler: (message: ChannelMessage<A>) => void) =>
      Effect.async<never, ChannelConsumeError>((resume) => {
        if (received.isClosed()) return resume(closed)
        if (direct !== undefined) {
          return resume(Effect.dieMessage(`channel ${name}: a subscription runs one consume at a time`))
        }
        const consumer = directConsumer(handler, (ending) => {
          if (direct === consumer) direct = undefined
          if (ending !== undefined) resume(ending)
        })
        // What the buffer already holds goes first, so each writer's values keep their order.
        for (let item = received.pollOne(); item !== undefined; item = received.pollOne()) {
          consumer.onItem(item)
          if (consumer.ended) return
        }
        direct = consumer
        return Effect.sync(() => consumer.end(undefined))
      })
    return {
      take: (timeoutMs) => Effect.suspend(() => whenAvailable(timeoutMs, takeOne)),
      // Room for no value (0, or no number at all) takes none at once: there is nothing to wait for.
      takeUpTo: (max, timeoutMs) =>
        max >= 1 ? Effect.suspend(() => whenAvailable(timeoutMs, takeSome(Math.floor(max)))) : Effect.succeed([]),
      available: (timeoutMs) => received.awaitItem(timeoutMs),
      consume
    }
  })

/** How a running `consume` ends: a frame's error, a break, a throw or the scope (undefined: it was interrupted). */
type ConsumeEnding = Effect.Effect<never, ChannelConsumeError> | undefined

/** A running `consume`: where the rings' values go, and its one end. */
interface DirectConsumer<A> {
  readonly onItem: (item: Received<A>) => void
  /** Ends it (later calls and values do nothing): `finish` clears the hand-off and resumes the consume. */
  readonly end: (ending: ConsumeEnding) => void
  readonly ended: boolean
}

const directConsumer = <A>(
  handler: (message: ChannelMessage<A>) => void,
  finish: (ending: ConsumeEnding) => void
): DirectConsumer<A> => {
  const consumer = {
    ended: false,
    end: (ending: ConsumeEnding) => {
      if (consumer.ended) return
      consumer.ended = true
      finish(ending)
    },
    onItem: (item: Received<A>): void => {
      if (Either.isLeft(item)) return consumer.end(Effect.fail(item.left))
      try {
        handler(item.right)
      } catch (error) {
        // The value counts as handed over; the frames after it wait for the next consume or take.
        consumer.end(Effect.die(error))
      }
    }
  }
  return consumer
}

/** Raw frames, read in place: one `consumeSync` per ring, the handler called from the ring's wake-up. */
export const rawSubscription = (
  rings: RingsShape,
  name: string,
  addresses: ReadonlyArray<RingAddress>,
  spinMicros: number
): Effect.Effect<RawSubscription, ChannelReadersBusy | InvalidChannel, Scope.Scope> =>
  Effect.map(attachAll(rings, name, addresses, spinMicros), (readers) => {
    /** The rings whose reading ended broken (their slots given back): a later consume reads the others, as a typed subscription does. */
    const broken = new Set<number>()
    /** Breaks not told yet: two rings may break at once, and a consume ends telling one. */
    const untold = new Map<number, ChannelBroken>()
    /** Follows every ring not broken at once, each with the read `readOf` makes of it. */
    const followAll = (readOf: (reader: RingReader, writer: number) => Parameters<typeof followRing>[3]) =>
      Effect.suspend(() => {
        const [first] = untold.values()
        if (first !== undefined) return Effect.fail(first)
        return Effect.forEach(
          readers,
          (held, writer) =>
            broken.has(writer) ? Effect.void : followRing(name, writer, held, readOf(held.reader, writer)).pipe(
              Effect.tapError((e) => Effect.sync(() => (broken.add(writer), untold.set(writer, e))))
            ),
          { concurrency: "unbounded", discard: true }
        ).pipe(Effect.zipRight(Effect.never))
      }).pipe(Effect.tapError((e) => Effect.sync(() => untold.delete(e.writer))))
    return {
      consume: (handler) =>
        followAll((reader, writer) => reader.consumeSync((frame, sequence) => handler(frame, writer, sequence))),
      consumeFrames: (handler) => followAll((reader, writer) => reader.consumeFrames((batch) => handler(batch, writer)))
    }
  })
