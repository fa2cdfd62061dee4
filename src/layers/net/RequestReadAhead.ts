/**
 * A request connection's requests, answered one at a time in the order sent (admin:
 * AdminServer.ts; consumer groups: groups/GroupServer.ts), each stamped with when the broker read
 * it: what a request's bound counts from (RequestAccept.ts, `withinClientBound`). While a request
 * that waits on the head is being answered (`readingAhead`), the connection is read ahead, so a
 * request sent behind it is stamped as it arrives. Read only when taken up, such a request had the
 * slow one's time taken from its bound without the broker counting it: the client gave up while
 * the broker still thought it had time, and the change it then asked the head for could be made
 * after the client was told the outcome was unknown.
 *
 * Only then, not always: a reader always waiting on the connection takes each frame up as it
 * comes, a read and a wake each, where a connection read between answers takes what came
 * meanwhile in one read (a groups' connection settling acks: 6-10 % of its broker's rate).
 */
import { Clock, Effect, Fiber, type Scope } from "effect"
import type { WireViolation } from "./Control.js"
import type { Frame } from "./Frame.js"
import { nextWithinIdle } from "./RequestAccept.js"

/**
 * Requests read ahead of the one being answered, at most. Past them the broker stops reading, and
 * the client's further requests wait in the connection (their bounds counting from when the broker
 * reads them), so a client that sends faster than its answers come cannot grow the broker's memory.
 */
export const READ_AHEAD_REQUESTS = 32

/** A request frame and when the broker read it (epoch ms). */
export interface ArrivedFrame {
  readonly frame: Frame
  readonly arrivedAtMs: number
}

type Arrival = ArrivedFrame | { readonly ended: true } | { readonly violation: WireViolation }

export interface RequestsInTurn {
  /**
   * The next request: one read ahead, else the next the connection brings, waiting at most
   * `idleMs` for it (RequestAccept.ts, `nextWithinIdle`); undefined once the stream ended between
   * frames; failing with the violation that ended it once every request read before it was taken.
   */
  readonly next: Effect.Effect<ArrivedFrame | undefined, WireViolation>
  /** Runs `answering` while the connection is read ahead (a request that may wait on the head). */
  readonly readingAhead: <A, E, R>(answering: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
}

const arrivalOf = (
  read: Effect.Effect<Frame | undefined, WireViolation>,
  copy: boolean
): Effect.Effect<Arrival> =>
  Effect.matchEffect(read, {
    onFailure: (violation): Effect.Effect<Arrival> => Effect.succeed({ violation }),
    onSuccess: (frame): Effect.Effect<Arrival> =>
      frame === undefined
        ? Effect.succeed({ ended: true })
        : Effect.map(Clock.currentTimeMillis, (arrivedAtMs) => ({
          // A frame's payload is the reader's again at its next frame: one read ahead keeps a copy.
          frame: copy ? { ...frame, payload: frame.payload.slice() } : frame,
          arrivedAtMs
        }))
  })

const taken = (arrival: Arrival): Effect.Effect<ArrivedFrame | undefined, WireViolation> =>
  "frame" in arrival
    ? Effect.succeed(arrival)
    : "ended" in arrival
    ? Effect.succeed(undefined)
    : Effect.fail(arrival.violation)

/**
 * `nextFrame`'s requests in turn (`idleMs` read as each wait starts; 0: it may wait for ever).
 * The reader that reads ahead is a fiber of the connection's scope, never interrupted while the
 * connection lasts (a frame it took off the connection must reach `ahead`): once the answer is
 * given it finishes the read it is in, and `next` waits for it and takes that frame first.
 */
export const requestsInTurn = (
  nextFrame: Effect.Effect<Frame | undefined, WireViolation>,
  idleMs: () => number
): Effect.Effect<RequestsInTurn, never, Scope.Scope> =>
  Effect.gen(function*() {
    const scope = yield* Effect.scope
    const ahead: Array<Arrival> = []
    let reading = false
    let reader: Fiber.RuntimeFiber<void> | undefined
    const readAheadLoop: Effect.Effect<void> = Effect.suspend(() =>
      !reading || ahead.length >= READ_AHEAD_REQUESTS
        ? Effect.void
        : Effect.flatMap(arrivalOf(nextFrame, true), (arrival) => {
          ahead.push(arrival)
          return "frame" in arrival ? readAheadLoop : Effect.void
        })
    )
    const ended = () => {
      const last = ahead.at(-1)
      return last !== undefined && !("frame" in last)
    }
    const readingAhead = <A, E, R>(answering: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
      Effect.suspend(() => {
        reading = true
        const start = (reader === undefined || reader.unsafePoll() !== null) && !ended()
          ? Effect.map(
            Effect.forkIn(Effect.ensuring(readAheadLoop, Effect.sync(() => (reader = undefined))), scope),
            (fiber) => void (reader = fiber)
          )
          : Effect.void
        return Effect.zipRight(start, Effect.ensuring(answering, Effect.sync(() => (reading = false))))
      })
    // A reader still in its last read: its frame comes before any read here.
    const readerDone = Effect.suspend(() => reader === undefined ? Effect.void : Fiber.await(reader))
    const next: Effect.Effect<ArrivedFrame | undefined, WireViolation> = Effect.suspend(() => {
      const first = ahead.shift()
      if (first !== undefined) return taken(first)
      if (reader !== undefined && reader.unsafePoll() === null) {
        return Effect.zipRight(nextWithinIdle(readerDone, idleMs()), next)
      }
      return Effect.flatMap(nextWithinIdle(arrivalOf(nextFrame, false), idleMs()), taken)
    })
    return { next, readingAhead }
  })
