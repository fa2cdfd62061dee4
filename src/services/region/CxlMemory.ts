/**
 * CxlMemory: the shared region as an Effect service — its bytes and typed views, flush and
 * fence per coherence mode, doorbell wait/wake, and bounds-checked access.
 */
import { Context, Data, type Duration, Effect } from "effect"
import type { CacheInstruction, OpenMode, WaitOutcome } from "../../native/Native.js"

export type { CacheInstruction, OpenMode, WaitOutcome }
export type Coherence = "coherent" | "non-coherent"

/** A cache line: the unit of `publish` / `invalidate`, and of one writer per line. */
export const LINE_BYTES = 64

export interface RegionOptions {
  /** POSIX shm name (`cxlog-a`) or a file path (`/mnt/cxl/region`, `/dev/dax0.0`). */
  readonly name: string
  /** Bytes, a multiple of 4096; required to create, checked when attaching if given. */
  readonly size?: number
  readonly mode?: OpenMode
  readonly coherence?: Coherence
  /** The creator unlinks the region when its scope closes unless this is set. */
  readonly keep?: boolean
  /**
   * How many bytes from the start the creator reserves (default: all). The rest is reserved by
   * `reserve` as it is handed out, so memory is taken as it is used (a directory's heap: its
   * extents are reserved as they are allocated).
   */
  readonly reserveBytes?: number
  /** Layout parameters stored in the superblock by the creator (at most 64 numbers). */
  readonly params?: ReadonlyArray<number>
  /** Expected layout version (defaults to the current one). */
  readonly layoutVersion?: number
  /** How long an attacher waits for a creator that is still initialising. */
  readonly readyTimeoutMs?: number
  /** `readyTimeoutMs` as a duration (`"5 seconds"`, `Duration.seconds(5)`); given both, this one counts. */
  readonly readyTimeout?: Duration.DurationInput
}

/** One recorded `publish` or `invalidate`, with the instruction it ran ("none" in the in-process fake). */
export interface CacheLineOp {
  readonly path: "publish" | "invalidate"
  readonly instruction: CacheInstruction | "none"
  readonly offset: number
  readonly length: number
}

export interface CxlMemoryShape {
  readonly name: string
  readonly size: number
  /** True in the process that created the region. */
  readonly created: boolean
  readonly coherence: Coherence
  readonly layoutVersion: number
  /** The creator's layout parameters, as stored in the superblock. */
  readonly params: ReadonlyArray<number>
  /** True when other processes can map these bytes (the live layer); the fake's bytes live in this process only. */
  readonly crossProcess: boolean
  readonly buffer: ArrayBuffer
  readonly bytes: Uint8Array
  readonly i32: Int32Array
  readonly u32: Uint32Array
  readonly f64: Float64Array
  /**
   * Publication point: in non-coherent mode writes back the lines of [offset, offset+length)
   * and fences, so a commit word written next is never visible before them; coherent: nothing.
   */
  readonly publish: (offset: number, length: number) => void
  /**
   * Before polling a line written by another host in non-coherent mode: evicts the lines (never
   * a write-back that may keep them, such as CLWB), so the next load reads memory; coherent: nothing.
   */
  readonly invalidate: (offset: number, length: number) => void
  /** A full memory fence. */
  readonly fence: () => void
  /**
   * Makes sure the memory of whole pages [offset, offset+length) exists before anyone writes it
   * (a region file's pages allocated; a device's and the fake's always exist): undefined, or why
   * it cannot (the filesystem holding the region is full), where a write would have died of SIGBUS.
   */
  readonly reserve: (offset: number, length: number) => string | undefined
  /** Zeroes whole pages [offset, offset+length) and gives their memory back where it can (a hole in a region file). */
  readonly discard: (offset: number, length: number) => void
  readonly inBounds: (offset: number, length: number) => boolean
  readonly check: (offset: number, length: number) => Effect.Effect<void, RegionOutOfBounds>
  /** A zero-copy view of region bytes, bounds-checked. */
  readonly slice: (offset: number, length: number) => Effect.Effect<Uint8Array, RegionOutOfBounds>
  /** Parks until the 32-bit word at `offset` is woken, differs from `expected`, or the timeout passes. Never blocks the event loop. */
  readonly wait: (offset: number, expected: number, timeoutMs: number) => Effect.Effect<WaitOutcome, RegionOutOfBounds>
  /** Wakes up to `count` waiters parked on the word at `offset`; returns how many. */
  readonly wake: (offset: number, count?: number) => number
  /** crc32c (Castagnoli) of `length` bytes at `offset` of any buffer, chained from `seed`. */
  readonly crc32c: (bytes: ArrayBuffer | ArrayBufferView, offset: number, length: number, seed?: number) => number
  /** Test-only: record every range `publish` writes back (to prove flush-before-commit), and optionally every `invalidate`. */
  readonly flushLog: {
    readonly start: (options?: { readonly invalidations?: boolean }) => void
    /** The publish ranges since the last take, as (offset, length) pairs; drains the log. */
    readonly take: () => Float64Array
    /** Every recorded publish and invalidate since the last take, with its instruction; drains the log. */
    readonly takeOps: () => ReadonlyArray<CacheLineOp>
    readonly stop: () => void
  }
}

export class CxlMemory extends Context.Tag("cxlog/CxlMemory")<CxlMemory, CxlMemoryShape>() {}

export class RegionExists extends Data.TaggedError("RegionExists")<{ readonly name: string }> {
  override get message() {
    return `region ${this.name} already exists (attach to it, or unlink it: rm /dev/shm/${
      this.name.replace(/^\//, "")
    })`
  }
}

export class RegionMissing extends Data.TaggedError("RegionMissing")<{ readonly name: string }> {
  override get message() {
    return `region ${this.name} does not exist (start the head first, or create it)`
  }
}

export class RegionSystemError extends Data.TaggedError("RegionSystemError")<{
  readonly name: string
  readonly op: string
  readonly errno: number
  readonly code: string
  readonly reason: string
}> {
  override get message() {
    return `region ${this.name}: ${this.op}: ${this.reason}`
  }
}

export class InvalidRegionSize extends Data.TaggedError("InvalidRegionSize")<
  { readonly name: string; readonly size: number; readonly reason: string }
> {
  override get message() {
    return `region ${this.name}: invalid size ${this.size}: ${this.reason}`
  }
}

/** Region options a caller gave that name no wait (`readyTimeout: "5 sekonds"`, a NaN `readyTimeoutMs`): why, naming the option. */
export class InvalidRegionOptions
  extends Data.TaggedError("InvalidRegionOptions")<{ readonly name: string; readonly reason: string }>
{
  override get message() {
    return `region ${this.name}: invalid options: ${this.reason}`
  }
}

/** Larger than one ArrayBuffer can be in this Node.js (`buffer.constants.MAX_LENGTH`): 4 GiB on Node 20, 2^53 − 1 bytes from Node 22. */
export class RegionTooLarge
  extends Data.TaggedError("RegionTooLarge")<{ readonly name: string; readonly size: number; readonly limit: number }>
{
  override get message() {
    return `region ${this.name} is ${this.size} bytes, more than this Node.js ${process.version} can map as one ArrayBuffer (${this.limit} bytes, buffer.constants.MAX_LENGTH; Node.js 22 and later allow 2^53 - 1)`
  }
}

export class RegionSizeMismatch extends Data.TaggedError("RegionSizeMismatch")<
  { readonly name: string; readonly expected: number; readonly found: number }
> {
  override get message() {
    return `region ${this.name} is ${this.found} bytes, expected ${this.expected}`
  }
}

export class RegionLayoutMismatch extends Data.TaggedError("RegionLayoutMismatch")<
  { readonly name: string; readonly expected: number; readonly found: number }
> {
  override get message() {
    return `region ${this.name} has layout version ${this.found}, this cxlog speaks ${this.expected}: another cxlog build made it; stop its processes and remove it (cxlog regions --remove ${this.name}), then start the head again`
  }
}

export class RegionCorrupt
  extends Data.TaggedError("RegionCorrupt")<{ readonly name: string; readonly reason: string }>
{
  override get message() {
    // Not a region cxlog can read, so `cxlog regions` neither lists nor removes it: the file itself goes.
    return `region ${this.name} is corrupt: ${this.reason} (not a cxlog region, or one damaged: if no process of ` +
      `yours uses it, remove it: rm /dev/shm/${this.name.replace(/^\//, "")})`
  }
}

export class RegionNotReady
  extends Data.TaggedError("RegionNotReady")<{ readonly name: string; readonly waitedMs: number }>
{
  override get message() {
    return `region ${this.name} was not initialised by its creator within ${this.waitedMs} ms`
  }
}

export class RegionOutOfBounds extends Data.TaggedError("RegionOutOfBounds")<
  { readonly offset: number; readonly length: number; readonly size: number }
> {
  override get message() {
    return `region access [${this.offset}, +${this.length}) is outside the ${this.size}-byte region`
  }
}

export type RegionOpenError =
  | InvalidRegionOptions
  | RegionExists
  | RegionMissing
  | RegionSystemError
  | InvalidRegionSize
  | RegionTooLarge
  | RegionSizeMismatch
  | RegionLayoutMismatch
  | RegionCorrupt
  | RegionNotReady
