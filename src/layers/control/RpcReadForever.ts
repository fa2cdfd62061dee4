/** How an Rpc server or client reads a ring for as long as it runs, through writers ending and read errors. */
import { Clock, Effect } from "effect"
import type { RingClosed, RingCorrupt, RingReader, RingReadError } from "../../services/control/Rings.js"

/** Bound of one wait for a new writer of a ring whose writer closed or died (a writer opening the ring wakes it at once). */
const REOPEN_WAIT_MS = 60_000
/** Pause before reading a ring again after an error other than its writer ending. */
export const RETRY_AFTER_ERROR_MS = 1_000
/** How often a read error that keeps coming back is logged again. */
const REPEAT_WARNING_MS = 60_000

/**
 * Reads `reader` with `read` (its `consume` or `consumeSync`) for good: a closed or dead writer
 * is waited out (a new one may come, and opening the ring wakes us at once; a wait that ends with
 * none pauses RETRY_AFTER_ERROR_MS before the next read); any other error (a
 * corrupt ring, a reaped slot) is logged and the ring read again after RETRY_AFTER_ERROR_MS.
 * A ring that stays corrupt fails every retry: the first error is logged, then at most one
 * line per REPEAT_WARNING_MS with how many failed since (not a line a second for good) — unless
 * `pastCorrupt` is given: a corrupt ring is handed to it instead (ReadPastCorruption.ts moves the reader
 * past the damage), and read again when it returns.
 */
export const readForever = <R, R2 = never>(
  reader: () => RingReader,
  read: Effect.Effect<void, Exclude<RingReadError, RingClosed>, R>,
  reattach?: Effect.Effect<void, never, R2>,
  pastCorrupt?: (error: RingCorrupt) => Effect.Effect<void, never, R2>
) =>
  Effect.suspend(() => {
    let unreported = 0
    let warnedAt = -Infinity
    const warn = (error: Exclude<RingReadError, RingClosed>) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => {
        unreported++
        if (now - warnedAt < REPEAT_WARNING_MS) return Effect.void
        const repeats = warnedAt === -Infinity
          ? ""
          : ` (${unreported} failed reads in the last ${Math.round((now - warnedAt) / 1000)} s)`
        warnedAt = now
        unreported = 0
        return Effect.logWarning(
          `rpc: ring ${reader().address.id}: ${error.message}${repeats}; reading it again every ${RETRY_AFTER_ERROR_MS} ms`
        )
      })
    // A wait for a new writer that ends with none (its bound passed, or the doorbell closed under a
    // reader still running, which ends every wait at once) pauses before the ring is read again:
    // the reader polls once a second then, instead of spinning on the closed ring.
    const awaitNextWriter = Effect.flatMap(
      Effect.suspend(() => reader().awaitWriter(REOPEN_WAIT_MS)),
      (opened) => opened ? Effect.void : Effect.sleep(RETRY_AFTER_ERROR_MS)
    )
    return read.pipe(
      Effect.matchEffect({
        onSuccess: () => awaitNextWriter,
        onFailure: (error) =>
          error._tag === "RingWriterDead"
            ? awaitNextWriter
            : error._tag === "ReaderReaped" && reattach !== undefined
            ? reattach
            : error._tag === "RingCorrupt" && pastCorrupt !== undefined
            ? pastCorrupt(error)
            : Effect.zipRight(warn(error), Effect.sleep(RETRY_AFTER_ERROR_MS))
      }),
      Effect.forever
    )
  })
