/**
 * Channels: typed pub/sub between the processes of one host, by name. A channel is a named
 * object of kind "channel" in the region's directory; its extent holds one ring per writer
 * slot (src/layers/ipc/ChannelLayout.ts), so each writer is its ring's single writer and its
 * values reach every subscriber in the order it wrote them. Values cross as their Schema's
 * encoded form (JSON); a raw form carries bytes as they are. A full ring is backpressure that
 * ends in a typed error, never loss; a dead writer's ring and a dead reader's slots are taken
 * again by the next process that needs them. docs/ipc.md has the design.
 */
import { Context, type Effect, Schema, type Scope } from "effect"
import type { FrameBatch } from "../control/Rings.js"
import type { HeadUnavailable } from "../log/HeadWatch.js"
import type { DirectoryEntry } from "../region/Directory.js"

/** A channel's shape, fixed when it is created (a later open finds it as it is). */
export interface ChannelShape {
  /** Rings in the extent: how many processes may write at once. */
  readonly writerSlots: number
  /** Reader slots of every ring: how many subscriptions may be open at once. */
  readonly readerSlots: number
  /** Bytes of each writer's ring: what a writer may have written ahead of its slowest subscriber. */
  readonly ringBytes: number
}

export interface ChannelOptions extends Partial<ChannelShape> {
  /** How long `publish` waits for room before `ChannelFull` (default 10 s). */
  readonly publishTimeoutMs?: number
  /** Values a subscription decodes ahead of its `take` (default 256); past it, the writers wait. */
  readonly subscriberBuffer?: number
  /**
   * How long a subscription waiting for the next value may spin before it parks, in µs (default
   * 500, `CXLOG_CHANNEL_SPIN_MICROS`; 0: the process's own): adaptive, so a quiet channel parks at once.
   */
  readonly spinMicros?: number
}

/** A value as a subscriber receives it: which writer ring it came through and where in that ring. */
export interface ChannelMessage<A> {
  readonly value: A
  /** The writer slot (ring) it came through: values of one slot arrive in the order written. */
  readonly writer: number
  /** Its position in that writer's ring (grows with each value). */
  readonly sequence: number
}

/** The writing side of an open channel: this process holds one writer slot until the scope closes. */
export interface ChannelPublisher<A> {
  readonly writer: number
  /** Encodes and writes one value; waits for room while a subscriber is behind (`ChannelFull` after the bound). */
  readonly publish: (value: A) => Effect.Effect<void, ChannelPublishError>
  /** Encodes and writes many values, committed together. */
  readonly publishAll: (values: Iterable<A>) => Effect.Effect<void, ChannelPublishError>
}

/** A reading side: one reader slot on every writer ring, released with the scope (a ring whose reading ended broken, at once). */
export interface ChannelSubscription<A> {
  /**
   * The next value from any writer (each writer's in its order). A frame that does not decode
   * is `InvalidChannelFrame` for that one frame: the next `take` goes on with the frames after it.
   */
  readonly take: (timeoutMs: number) => Effect.Effect<ChannelMessage<A>, ChannelTakeError>
  /**
   * Every value available now, `max` at most, in the order `take` would return them (waiting up
   * to `timeoutMs` only while there is none): for a reader that handles values in batches. It
   * stops before a frame that does not decode; the next call fails with that frame's
   * `InvalidChannelFrame` alone, and the call after it goes on. A `max` below 1 takes nothing
   * and returns at once.
   */
  readonly takeUpTo: (max: number, timeoutMs: number) => Effect.Effect<Array<ChannelMessage<A>>, ChannelTakeError>
  /**
   * True once a value (or a frame's error) waits to be taken, false after `timeoutMs`: it takes
   * nothing, so a wait for values interrupted here loses none (a `take` interrupted as it
   * returns could).
   */
  readonly available: (timeoutMs: number) => Effect.Effect<boolean>
  /**
   * Runs `handler` on every value of every writer (each writer's in its order), decoded in the
   * ring's wake-up and handed straight over: no buffer, no fiber resumed and no timer per value,
   * so it is the form for latency. The values the buffer already held come first. A value
   * counts as processed once `handler` returns, so a slow handler holds its writers back.
   * While it runs, values go to it and not to `take`. It runs until interrupted; it ends with
   * `InvalidChannelFrame` at a frame that does not decode, with `ChannelBroken` when a ring's
   * reading ends, with `ChannelSubscriptionClosed` when the subscription's scope closes, and as
   * a defect when `handler` throws (that value counts as taken). The frames after its end wait
   * for the next `consume` or `take`. One runs at a time on a subscription.
   */
  readonly consume: (handler: (message: ChannelMessage<A>) => void) => Effect.Effect<never, ChannelConsumeError>
}

export interface Channel<A> {
  readonly name: string
  readonly entry: DirectoryEntry
  readonly shape: ChannelShape
  /**
   * Takes a writer slot for the scope (the first free one, or one whose process died);
   * `ChannelRemoved` once the channel was removed since this open.
   */
  readonly publisher: Effect.Effect<
    ChannelPublisher<A>,
    ChannelWritersBusy | InvalidChannel | ChannelRemoved,
    Scope.Scope
  >
  /**
   * Takes a reader slot on every writer ring for the scope; it sees what is written from now on.
   * `ChannelRemoved` once the channel was removed since this open.
   */
  readonly subscribe: Effect.Effect<
    ChannelSubscription<A>,
    ChannelReadersBusy | InvalidChannel | ChannelRemoved,
    Scope.Scope
  >
}

/** The raw form: frames of bytes, written by copy and read in place. */
export interface RawChannel {
  readonly name: string
  readonly entry: DirectoryEntry
  readonly shape: ChannelShape
  readonly publisher: Effect.Effect<
    RawPublisher,
    ChannelWritersBusy | InvalidChannel | ChannelRemoved,
    Scope.Scope
  >
  /** Takes a reader slot on every writer ring for the scope; it sees what is written from now on. */
  readonly subscribe: Effect.Effect<RawSubscription, ChannelReadersBusy | InvalidChannel | ChannelRemoved, Scope.Scope>
}

/** The raw form's writing side: frames copied into this process's writer ring. */
export interface RawPublisher {
  readonly writer: number
  /** Writes and commits one frame (waiting for room like `publish`). */
  readonly write: (frame: Uint8Array) => Effect.Effect<void, ChannelPublishError>
  /** Writes many frames and commits them together (and whenever the ring runs out of room on the way): one wake-up of the readers per commit. */
  readonly writeAll: (frames: Iterable<Uint8Array>) => Effect.Effect<void, ChannelPublishError>
  /**
   * Writes and commits at once, without an effect, the frames that fit now, in order: how many
   * (0 when the first does not fit, is too large, or the ring is closed). For hot paths: hand
   * what it did not write to `writeAll`, which waits for room or fails typed.
   */
  readonly tryWriteAll: (frames: ReadonlyArray<Uint8Array>) => number
}

export interface RawSubscription {
  /**
   * Runs `handler` on every frame of every writer (each writer's in order), the bytes read in
   * place: valid only while the handler runs. Runs until interrupted, or a ring's reading ends
   * (`ChannelBroken`: its reader slot was reaped, or the ring read as corrupt). That ring's
   * reader slot is given back then, and a later `consume` reads the other rings.
   */
  readonly consume: (
    handler: (frame: Uint8Array, writer: number, sequence: number) => void
  ) => Effect.Effect<never, ChannelBroken>
  /**
   * `consume` a batch at a time, for hot paths: `handler` gets every frame of one writer that
   * was committed when its ring's wake-up came, read in place (frame i is `batch.lengths[i]`
   * bytes of `batch.bytes` at `batch.offsets[i]`, at `batch.sequences[i]`), valid only while it
   * runs. The whole batch counts as delivered as it is handed on and as processed once the
   * handler returns: no view, counter store or effect per frame.
   */
  readonly consumeFrames: (
    handler: (batch: FrameBatch, writer: number) => void
  ) => Effect.Effect<never, ChannelBroken>
}

export interface ChannelsShape {
  /** Opens the channel of that name, creating it with `options`' shape if there is none. */
  readonly open: <A, I>(
    name: string,
    schema: Schema.Schema<A, I>,
    options?: ChannelOptions
  ) => Effect.Effect<Channel<A>, ChannelOpenError, Scope.Scope>
  /** The same channel as raw frames. */
  readonly openRaw: (name: string, options?: ChannelOptions) => Effect.Effect<RawChannel, ChannelOpenError, Scope.Scope>
  /** The live channels' names. */
  readonly list: Effect.Effect<ReadonlyArray<string>>
  /**
   * Removes the channel `name` from the region, giving its memory and directory entry back: a
   * later open makes a new one. `ChannelInUse` (naming the pids) while a live process writes or
   * subscribes to it; `ChannelNotFound` when there is none. An object of it opened before and
   * neither writing nor subscribed is not a use: its `publisher` and `subscribe` are then `ChannelRemoved`.
   */
  readonly remove: (
    name: string
  ) => Effect.Effect<void, ChannelNotFound | ChannelInUse | ChannelUnavailable | HeadUnavailable>
}

export class Channels extends Context.Tag("cxlog/Channels")<Channels, ChannelsShape>() {}

export class ChannelUnavailable extends Schema.TaggedError<ChannelUnavailable>()("ChannelUnavailable", {
  name: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `channel ${JSON.stringify(this.name)} could not be opened: ${this.reason}`
  }
}

export class ChannelNotFound extends Schema.TaggedError<ChannelNotFound>()("ChannelNotFound", { name: Schema.String }) {
  override get message() {
    return `no channel named ${JSON.stringify(this.name)}`
  }
}

export class ChannelInUse extends Schema.TaggedError<ChannelInUse>()("ChannelInUse", {
  name: Schema.String,
  pids: Schema.Array(Schema.Int)
}) {
  override get message() {
    return `channel ${JSON.stringify(this.name)} is in use by live process${this.pids.length === 1 ? "" : "es"} ${
      this.pids.join(", ")
    } (writing to it or subscribed): it can be removed once they close it`
  }
}

/**
 * A publisher or subscription asked of a channel object after the channel was removed
 * (`Channels.remove`, from any process): its rings are memory no later open finds, so nothing
 * is written there or read from there.
 */
export class ChannelRemoved extends Schema.TaggedError<ChannelRemoved>()("ChannelRemoved", { name: Schema.String }) {
  override get message() {
    return `channel ${
      JSON.stringify(this.name)
    } was removed after this object of it was opened: open the name again (a new channel) to use it`
  }
}

export class InvalidChannel extends Schema.TaggedError<InvalidChannel>()("InvalidChannel", {
  name: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `channel ${JSON.stringify(this.name)}: ${this.reason}`
  }
}

export class ChannelWritersBusy extends Schema.TaggedError<ChannelWritersBusy>()("ChannelWritersBusy", {
  name: Schema.String,
  writerSlots: Schema.Int
}) {
  override get message() {
    return `channel ${JSON.stringify(this.name)}: all ${this.writerSlots} writer slots are held by live processes`
  }
}

export class ChannelReadersBusy extends Schema.TaggedError<ChannelReadersBusy>()("ChannelReadersBusy", {
  name: Schema.String,
  readerSlots: Schema.Int
}) {
  override get message() {
    return `channel ${JSON.stringify(this.name)}: all ${this.readerSlots} reader slots are held by live processes`
  }
}

export class ChannelEncodeError extends Schema.TaggedError<ChannelEncodeError>()("ChannelEncodeError", {
  name: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `channel ${JSON.stringify(this.name)}: the value does not encode: ${this.reason}`
  }
}

export class ChannelFull extends Schema.TaggedError<ChannelFull>()("ChannelFull", {
  name: Schema.String,
  writer: Schema.Int,
  waitedMs: Schema.Number,
  /** The reader slot whose progress holds the writer back, -1 if none. */
  slowestReader: Schema.Int,
  /** That reader's process, when the slot still names one. */
  readerPid: Schema.optional(Schema.Int),
  /** Whether that process is stopped (SIGSTOP, a debugger): it holds every writer back until it runs again or dies. */
  readerStopped: Schema.optional(Schema.Boolean),
  /**
   * Of a batch (`publishAll`, `writeAll`) that found no room on the way: how many of its values,
   * from the first, were written (they reach subscribers); the rest were not. Absent: none was.
   */
  written: Schema.optional(Schema.Int)
}) {
  override get message() {
    const who = this.readerPid === undefined
      ? ""
      : `: pid ${this.readerPid}${this.readerStopped === true ? ", stopped" : ""}`
    const outcome = this.written === undefined || this.written === 0
      ? "nothing was written"
      : `the first ${this.written} values of the call were written, the rest not`
    return `channel ${
      JSON.stringify(this.name)
    }: writer ${this.writer} found no room after ${this.waitedMs} ms (reader slot ${this.slowestReader} is behind${who}); ${outcome}`
  }
}

export class ChannelFrameTooLarge extends Schema.TaggedError<ChannelFrameTooLarge>()("ChannelFrameTooLarge", {
  name: Schema.String,
  bytes: Schema.Int,
  maxFrameBytes: Schema.Int
}) {
  override get message() {
    return `channel ${
      JSON.stringify(this.name)
    }: a ${this.bytes}-byte value exceeds its ${this.maxFrameBytes}-byte limit (a quarter of ringBytes)`
  }
}

export class InvalidChannelFrame extends Schema.TaggedError<InvalidChannelFrame>()("InvalidChannelFrame", {
  name: Schema.String,
  writer: Schema.Int,
  sequence: Schema.Number,
  reason: Schema.String
}) {
  override get message() {
    return `channel ${
      JSON.stringify(this.name)
    }: the frame at ${this.sequence} of writer ${this.writer} does not decode: ${this.reason}`
  }
}

export class ChannelTakeTimeout extends Schema.TaggedError<ChannelTakeTimeout>()("ChannelTakeTimeout", {
  name: Schema.String,
  timeoutMs: Schema.Number
}) {
  override get message() {
    return `channel ${JSON.stringify(this.name)}: no value within ${this.timeoutMs} ms`
  }
}

/** A take from a subscription whose scope has closed: its reader slots are given back, nothing more arrives. */
export class ChannelSubscriptionClosed
  extends Schema.TaggedError<ChannelSubscriptionClosed>()("ChannelSubscriptionClosed", { name: Schema.String })
{
  override get message() {
    return `channel ${JSON.stringify(this.name)}: the subscription is closed (its scope ended)`
  }
}

/** A publish or subscribe through a channel object that was closed (`CxlogChannel.close`), or under way when it was. */
export class ChannelClosed extends Schema.TaggedError<ChannelClosed>()("ChannelClosed", { name: Schema.String }) {
  override get message() {
    return `channel ${JSON.stringify(this.name)}: closed (this object of it: open the channel again to use it)`
  }
}

/**
 * A writer slot's ring can no longer be used by this side. Reading: its reader slot was reaped (its
 * process judged dead) or the ring read as corrupt, so the subscription reads that slot no more.
 * Writing: the ring no longer names this writer (closed, or taken over by another process).
 */
export class ChannelBroken extends Schema.TaggedError<ChannelBroken>()("ChannelBroken", {
  name: Schema.String,
  writer: Schema.Int,
  reason: Schema.String,
  side: Schema.optionalWith(Schema.Literal("reading", "writing"), { default: () => "reading" as const })
}) {
  override get message() {
    const channel = `channel ${JSON.stringify(this.name)}`
    return this.side === "writing"
      ? `${channel}: writer slot ${this.writer} can write no more: ${this.reason}; take a publisher again`
      : `${channel}: reading writer slot ${this.writer} ended: ${this.reason}; this subscription reads nothing more from that slot (subscribe again to read what is written from now on)`
  }
}

/** `HeadUnavailable`: a channel not found asks the head to create it, and the head is gone (a member of the region's). */
export type ChannelOpenError = ChannelUnavailable | InvalidChannel | HeadUnavailable
export type ChannelPublishError = ChannelEncodeError | ChannelFull | ChannelFrameTooLarge | ChannelBroken
export type ChannelTakeError = InvalidChannelFrame | ChannelTakeTimeout | ChannelBroken | ChannelSubscriptionClosed

/** How a typed subscription's `consume` ends (it has no bound to time out). */
export type ChannelConsumeError = Exclude<ChannelTakeError, ChannelTakeTimeout>
