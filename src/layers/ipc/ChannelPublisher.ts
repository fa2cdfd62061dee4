/**
 * A channel's writing side: the first writer slot whose ring has no live writer becomes this
 * process's (a ring's writer line names its process by pid and start time, so a dead writer's
 * ring is taken over, its committed frames still read first). Values are encoded before
 * anything is reserved: a value that does not encode writes nothing.
 */
import { Effect, Either, type Scope } from "effect"
import {
  type RingAddress,
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

const encoder = new TextEncoder()

const writeError = (name: string, writer: number) => (e: RingWriteError): ChannelPublishError => {
  switch (e._tag) {
    case "RingFull":
      return new ChannelFull({ name, writer, waitedMs: e.waitedMs, slowestReader: e.slowestSlot })
    case "FrameTooLarge":
      return new ChannelFrameTooLarge({ name, bytes: e.length, maxFrameBytes: e.maxFrameBytes })
    case "RingClosed":
      return new ChannelBroken({ name, writer, reason: e.message })
  }
}

/** Takes the first writer slot free (or held by a dead process) for the scope. */
export const claimWriter = (
  rings: RingsShape,
  name: string,
  addresses: ReadonlyArray<RingAddress>,
  timeoutMs: number
): Effect.Effect<
  { readonly writer: number; readonly ring: RingWriter },
  ChannelWritersBusy | InvalidChannel,
  Scope.Scope
> =>
  Effect.gen(function*() {
    for (const [writer, address] of addresses.entries()) {
      const claimed = yield* Effect.either(rings.writer(address, { timeoutMs }))
      if (Either.isRight(claimed)) return { writer, ring: claimed.right }
      if (claimed.left._tag !== "RingWriterBusy") {
        return yield* new InvalidChannel({ name, reason: claimed.left.message })
      }
    }
    return yield* new ChannelWritersBusy({ name, writerSlots: addresses.length })
  })

/** Raw frames: copied into the ring as they are. */
export const rawPublisher = (name: string, writer: number, ring: RingWriter): RawPublisher => {
  const failed = writeError(name, writer)
  return {
    writer,
    write: (frame) => Effect.asVoid(Effect.mapError(ring.write(frame), failed)),
    writeAll: (frames) => Effect.asVoid(Effect.mapError(ring.writeAll(frames), failed)),
    tryWriteAll: ring.tryWriteAll
  }
}

/**
 * Values: encoded by the channel's Schema as JSON text, then written. Every value of a call is
 * encoded before anything is reserved (one that does not encode writes nothing); the texts that
 * fit are written as UTF-8 straight into their reserved frames and committed together, and only
 * a text that finds no room (or is too large) goes through the ring's `writeAll` with the rest,
 * which waits for room or says why.
 */
export const typedPublisher = <A>(
  name: string,
  codec: JsonCodec,
  writer: number,
  ring: RingWriter
): ChannelPublisher<A> => {
  const failed = writeError(name, writer)
  // The ring's bytes as a Buffer (a view of the same memory): `write` encodes UTF-8 in place.
  const bytes = Buffer.from(ring.bytes.buffer, ring.bytes.byteOffset, ring.bytes.byteLength)
  const textOf = (value: A): string | ChannelEncodeError => {
    const encoded = codec.encode(value)
    return Either.isRight(encoded) ? encoded.right : new ChannelEncodeError({ name, reason: encoded.left.message })
  }
  /** Writes `text` as UTF-8 into a frame reserved now; false when the ring has no room for it now (or it is too large). */
  const tryWrite = (text: string): boolean => {
    const length = Buffer.byteLength(text, "utf8")
    const at = ring.tryReserve(length)
    if (at < 0) return false
    bytes.write(text, at, length, "utf8")
    return true
  }
  /** The texts a call could not write in place: the ring's own path, which commits what is reserved, waits for room or says why. */
  const writeRest = (texts: ReadonlyArray<string>): Effect.Effect<void, ChannelPublishError> =>
    Effect.asVoid(Effect.mapError(ring.writeAll(texts.map((text) => encoder.encode(text))), failed))
  return {
    writer,
    publish: (value) =>
      Effect.suspend(() => {
        const text = textOf(value)
        if (typeof text !== "string") return Effect.fail(text)
        if (!tryWrite(text)) return writeRest([text])
        ring.commit()
        return Effect.void
      }),
    publishAll: (values) =>
      Effect.suspend(() => {
        const texts: Array<string> = []
        for (const value of values) {
          const text = textOf(value)
          if (typeof text !== "string") return Effect.fail(text)
          texts.push(text)
        }
        for (let i = 0; i < texts.length; i++) if (!tryWrite(texts[i]!)) return writeRest(texts.slice(i))
        ring.commit()
        return Effect.void
      })
  }
}
