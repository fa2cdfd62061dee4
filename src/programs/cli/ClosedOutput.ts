/**
 * A command whose stdout is its output (`subscribe`, `consume`, `app start`, `serve`) stops once
 * nobody reads that output any more — `cxlog app start app.json | head -1` once head has its line
 * — as SIGTERM stops it, through its cleanup. Node says that the reader is gone only when a write
 * fails, so a command with nothing more to write (its children running on, a subscriber at the
 * tail) ran on for good, holding its children, its member or its slot; one that did write had its
 * EPIPE dropped (Report.ts, tolerateClosedOutput) and ran on too.
 *
 * Stdout that is a pipe or a socket is looked at every OUTPUT_CHECK_MS (the addon's poll(2) of
 * it); a terminal or a file has no reader to lose, and without the addon (a remote command on a
 * host where none loads) nothing is looked at, as before.
 */
import { Effect, Exit, Fiber, Schedule } from "effect"
import { fstatSync } from "node:fs"
import { loadAddonSync } from "../../native/Native.js"

/** How often stdout's reader is looked for: a command stops at most this long after it went. */
export const OUTPUT_CHECK_MS = 250

/** Completes once stdout has no reader any more; never when it cannot have lost one, or cannot be looked at. */
const outputGone: Effect.Effect<void> = Effect.suspend(() => {
  const addon = (() => {
    try {
      const stat = fstatSync(process.stdout.fd)
      return stat.isFIFO() || stat.isSocket() ? loadAddonSync() : undefined
    } catch {
      return undefined
    }
  })()
  if (addon === undefined) return Effect.never
  return Effect.sync(() => addon.outputClosed(process.stdout.fd)).pipe(
    Effect.repeat({ schedule: Schedule.spaced(OUTPUT_CHECK_MS), until: (closed) => closed }),
    Effect.asVoid
  )
})

/**
 * `command`, interrupted (its scopes closed, as by SIGTERM) once stdout's reader is gone: then it
 * ends as it would have, with nothing more to do. Not a race: one interrupted by a signal would not
 * wait for its command's cleanup, so the command stopping its children would outlive the program.
 */
export const untilOutputCloses = <A, E, R>(command: Effect.Effect<A, E, R>): Effect.Effect<A | void, E, R> =>
  Effect.gen(function*() {
    const running = yield* Effect.fork(command)
    let closed = false
    const watching = yield* Effect.fork(outputGone.pipe(
      Effect.zipRight(Effect.sync(() => (closed = true))),
      Effect.zipRight(Fiber.interrupt(running))
    ))
    const exit = yield* Fiber.await(running).pipe(
      Effect.onInterrupt(() => Effect.zipRight(Fiber.interrupt(watching), Fiber.interrupt(running)))
    )
    yield* Fiber.interrupt(watching)
    return closed && Exit.isInterrupted(exit) ? undefined : yield* exit
  })
