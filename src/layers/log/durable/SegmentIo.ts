/** The segment engine's file operations as Effects, their failures named by path and operation. */
import { Effect } from "effect"
import { DiskFull, SegmentIoError, type SegmentWriteError } from "../../../services/log/Segments.js"

export const errnoOf = (e: unknown): { code: string; reason: string } => {
  const err = e as NodeJS.ErrnoException
  return {
    code: typeof err?.code === "string" ? err.code : "EIO",
    reason: err instanceof Error ? err.message : String(e)
  }
}

/** A file operation's failure, naming the path and the operation; ENOSPC/EDQUOT is `DiskFull`. */
export const errorOf = (directory: string, path: string, operation: string, e: unknown): SegmentWriteError => {
  const { code, reason } = errnoOf(e)
  return code === "ENOSPC" || code === "EDQUOT"
    ? new DiskFull({ directory, path })
    : new SegmentIoError({ path, operation, code, reason })
}

/** A promise of a file operation as an Effect whose failure is `errorOf`. */
export const io = <A>(
  directory: string,
  path: string,
  operation: string,
  run: () => Promise<A>
): Effect.Effect<A, SegmentWriteError> =>
  Effect.tryPromise({ try: run, catch: (e) => errorOf(directory, path, operation, e) })

/** `io` for reads and deletions, where a full disk cannot happen. */
export const ioRead = <A>(path: string, operation: string, run: () => Promise<A>): Effect.Effect<A, SegmentIoError> =>
  Effect.tryPromise({ try: run, catch: (e) => new SegmentIoError({ path, operation, ...errnoOf(e) }) })
