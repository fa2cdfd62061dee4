/**
 * A channel's writing side: the first writer slot whose ring has no live writer becomes this
 * process's (a ring's writer line names its process by pid and start time, so a dead writer's
 * ring is taken over, its committed frames still read first). Values are encoded before
 * anything is reserved: a value that does not encode writes nothing.
 */
import { Effect, Either, type Scope } from "effect"
import { firstIssueLine } from "../../SchemaIssues.js"
import {
  type RingAddress,
  type RingInspector,
  type RingsShape,
  type RingWriteError,
  type RingWriter
} from "../../services/control/Rings.js"
import {
  ChannelBroken,
  ChannelEncodeError,
  ChannelFrameTooLarge,
  ChannelFull,
  type ChannelPublisher,
  type ChannelPublishError,
  ChannelWritersBusy,
  InvalidChannel,
  type RawPublisher
} from "../../services/ipc/Channels.js"
import type { JsonCodec } from "../control/JsonCodec.js"
import { isPidStopped } from "../region/ProcessInfo.js"
import type { BinaryValues } from "./BinaryValues.js"

const encoder = new TextEncoder()

/**
 * The process behind reader slot `slot` as the ring names it now, and whether it is stopped: what
 * a `ChannelFull` says of the reader holding the writer back, so a frozen subscriber is told from a
 * slow one (both hold every writer back; only the frozen one needs a SIGCONT or a kill).
 */
const readerOf = (inspector: RingInspector, slot: number) => {
  if (slot < 0 || slot >= inspector.address.readerSlots) return {}
  const reader = inspector.reader(slot)
  return reader.state === "free" || reader.pid <= 0
    ? {}
    : { readerPid: reader.pid, readerStopped: isPidStopped(reader.pid) }
}

/** A ring's write error as the channel's; `writtenBefore`: the call's values written before the ring's write began. */
const writeError =
  (name: string, writer: number, inspector: RingInspector) =>
  (e: RingWriteError, writtenBefore = 0): ChannelPublishError => {
    switch (e._tag) {
      case "RingFull": {
        const written = writtenBefore + (e.written ?? 0)
        return new ChannelFull({
          name,
          writer,
          waitedMs: e.waitedMs,
          slowestReader: e.slowestSlot,
          ...readerOf(inspector, e.slowestSlot),
          ...(written > 0 ? { written } : {})
        })
      }
      case "FrameTooLarge":
        return new ChannelFrameTooLarge({ name, bytes: e.length, maxFrameBytes: e.maxFrameBytes })
      case "RingClosed":
        // A writer's own ring reads closed once its scope closed it, or once the ring's occurrence no
        // longer names it (another process took the ring over, or the word was overwritten).
        return new ChannelBroken({
          name,
          writer,
          reason: `ring ${e.ring} was closed or taken over at sequence ${e.sequence}`,
          side: "writing"
        })
    }
  }

/** A writer slot this process holds: its ring, and a look at the ring's readers (for what `ChannelFull` names). */
export interface ClaimedWriter {
  readonly writer: number
  readonly ring: RingWriter
  readonly inspector: RingInspector
}

/** Takes the first writer slot free (or held by a dead process) for the scope. */
export const claimWriter = (
  rings: RingsShape,
  name: string,
  addresses: ReadonlyArray<RingAddress>,
  timeoutMs: number
): Effect.Effect<ClaimedWriter, ChannelWritersBusy | InvalidChannel, Scope.Scope> =>
  Effect.gen(function*() {
    for (const [writer, address] of addresses.entries()) {
      const claimed = yield* Effect.either(rings.writer(address, { timeoutMs }))
      if (Either.isRight(claimed)) {
        const inspector = yield* rings.inspect(address).pipe(
          Effect.mapError((e) => new InvalidChannel({ name, reason: e.message }))
        )
        return { writer, ring: claimed.right, inspector }
      }
      if (claimed.left._tag !== "RingWriterBusy") {
        return yield* new InvalidChannel({ name, reason: claimed.left.message })
      }
    }
    return yield* new ChannelWritersBusy({ name, writerSlots: addresses.length })
  })

/** Raw frames: copied into the ring as they are. */
export const rawPublisher = (name: string, { inspector, ring, writer }: ClaimedWriter): RawPublisher => {
  const failed = writeError(name, writer, inspector)
  return {
    writer,
    write: (frame) => Effect.asVoid(Effect.mapError(ring.write(frame), failed)),
    writeAll: (frames) => Effect.asVoid(Effect.mapError(ring.writeAll(frames), failed)),
    tryWriteAll: ring.tryWriteAll
  }
}

/**
 * Values: encoded by the channel's Schema, then written — in binary where the Schema has a binary
 * form and the value fits it (BinaryValues.ts), else as JSON text. Every value of a call is encoded
 * (or found to fit the binary form) before anything is reserved: one that does not encode writes
 * nothing. The frames that fit are written straight into their reserved space (the binary form
 * field by field, a text as UTF-8) and committed together; only a frame that finds no room (or is
 * too large) goes through the ring's `writeAll` with the rest, which waits for room or says why.
 */
export const typedPublisher = <A>(
  name: string,
  codec: JsonCodec,
  binary: BinaryValues | undefined,
  { inspector, ring, writer }: ClaimedWriter
): ChannelPublisher<A> => {
  const failed = writeError(name, writer, inspector)
  // The ring's bytes as a Buffer (a view of the same memory): `write` encodes UTF-8 in place.
  const bytes = Buffer.from(ring.bytes.buffer, ring.bytes.byteOffset, ring.bytes.byteLength)
  /** A value ready to write: its binary frame's size (a number), or its JSON text. */
  type Encoded = number | string
  const tooLarge = (bytes: number) => new ChannelFrameTooLarge({ name, bytes, maxFrameBytes: ring.maxFrameBytes })
  /**
   * `value` ready to write, or why it cannot be: refused before anything of its call is reserved,
   * since the frames a `publishAll` reserved before it would go out with the next commit.
   */
  const encode = (value: A): Encoded | ChannelEncodeError | ChannelFrameTooLarge => {
    const frameBytes = binary === undefined ? -1 : binary.frameBytes(value)
    if (frameBytes > 0) return frameBytes > ring.maxFrameBytes ? tooLarge(frameBytes) : frameBytes
    const encoded = codec.encode(value)
    if (Either.isLeft(encoded)) return new ChannelEncodeError({ name, reason: firstIssueLine(encoded.left) })
    // A UTF-16 unit is 3 UTF-8 bytes at most: only a long text is measured.
    if (encoded.right.length * 3 > ring.maxFrameBytes) {
      const textBytes = Buffer.byteLength(encoded.right, "utf8")
      if (textBytes > ring.maxFrameBytes) return tooLarge(textBytes)
    }
    return encoded.right
  }
  const refused = (
    e: Encoded | ChannelEncodeError | ChannelFrameTooLarge
  ): e is ChannelEncodeError | ChannelFrameTooLarge =>
    e instanceof ChannelEncodeError || e instanceof ChannelFrameTooLarge
  /** Writes `value` into a frame reserved now; false when the ring has no room for it now (or it is too large). */
  const tryWrite = (value: A, encoded: Encoded): boolean => {
    if (typeof encoded === "number") {
      const at = ring.tryReserve(encoded)
      if (at < 0) return false
      binary!.write(value, bytes, at, encoded)
      return true
    }
    const length = Buffer.byteLength(encoded, "utf8")
    const at = ring.tryReserve(length)
    if (at < 0) return false
    bytes.write(encoded, at, length, "utf8")
    return true
  }
  /** A frame of its own for a value that waits for room. */
  const frameOf = (value: A, encoded: Encoded): Uint8Array => {
    if (typeof encoded === "string") return encoder.encode(encoded)
    const frame = new Uint8Array(encoded)
    binary!.write(value, frame, 0, encoded)
    return frame
  }
  /**
   * The values a call could not write in place, after `writtenBefore` it did: the ring's own path,
   * which commits what is reserved (those too), waits for room or says why.
   */
  const writeRest = (
    values: ReadonlyArray<A>,
    encoded: ReadonlyArray<Encoded>,
    writtenBefore: number
  ): Effect.Effect<void, ChannelPublishError> =>
    Effect.asVoid(
      Effect.mapError(
        ring.writeAll(values.map((value, i) => frameOf(value, encoded[i]!))),
        (e) => failed(e, writtenBefore)
      )
    )
  return {
    writer,
    publish: (value) =>
      Effect.suspend(() => {
        const encoded = encode(value)
        if (refused(encoded)) return Effect.fail(encoded)
        if (!tryWrite(value, encoded)) return writeRest([value], [encoded], 0)
        ring.commit()
        return Effect.void
      }),
    publishAll: (values) =>
      Effect.suspend(() => {
        // A JavaScript caller's one value where the list goes: Array.from made none of a number (written
        // as nothing, in silence) and threw a TypeError at undefined.
        if (typeof (values as Partial<Iterable<A>> | null | undefined)?.[Symbol.iterator] !== "function") {
          return Effect.fail(
            new ChannelEncodeError({ name, reason: `publishAll takes an iterable of values, not ${String(values)}` })
          )
        }
        const all = Array.from(values)
        const encoded: Array<Encoded> = []
        for (const value of all) {
          const e = encode(value)
          if (refused(e)) return Effect.fail(e)
          encoded.push(e)
        }
        for (let i = 0; i < all.length; i++) {
          if (!tryWrite(all[i]!, encoded[i]!)) return writeRest(all.slice(i), encoded.slice(i), i)
        }
        ring.commit()
        return Effect.void
      })
  }
}
