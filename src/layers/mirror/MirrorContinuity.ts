/**
 * Whether a stream whose last message a mirror of another region wrote continues this region's
 * log. A head recovered from its data directory (`cxlog head --recover`, or `--attach` / `--data-dir`
 * with the region gone) makes the region again under a new id, with the same topic, offsets and
 * messages: its mirror must go on in the stream it was writing. Another log (a region made afresh,
 * a topic made again) must not: the stream is continued only when the region holds the stream's
 * last offset with the same message — value, key, headers and publish timestamp.
 */
import { Effect, Option } from "effect"
import type { MirrorOptions } from "../../services/mirror/Mirror.js"
import type { SubscriberMessage, SubscriberShape } from "../../services/net/Subscriber.js"
import type { StreamEnd } from "./JetStreamTarget.js"
import type { MirroredMessage } from "./MirrorRecord.js"

const sameBytes = (a: Uint8Array | undefined, b: Uint8Array | undefined) =>
  a === undefined || b === undefined ? a === b : Buffer.compare(a, b) === 0

/** Whether the region's message is the one the stream holds for its offset. */
const sameMessage = (held: SubscriberMessage, mirrored: MirroredMessage): boolean => {
  const heldHeaders = held.headers ?? []
  const mirroredHeaders = mirrored.headers ?? []
  return held.timestamp === mirrored.timestamp && sameBytes(held.payload, mirrored.payload) &&
    sameBytes(held.key, mirrored.key) && heldHeaders.length === mirroredHeaders.length &&
    heldHeaders.every((h, i) => h.name === mirroredHeaders[i]!.name && sameBytes(h.value, mirroredHeaders[i]!.value))
}

/** The region's message at `offset` (a copy), if it holds it: none past its end or before what it keeps. */
const heldAt = (subscriber: SubscriberShape, options: MirrorOptions, offset: number) =>
  Effect.gen(function*() {
    const { earliest, end } = yield* subscriber.bounds(options.topic)
    if (offset < earliest || offset >= end) return Option.none<SubscriberMessage>()
    return yield* Effect.scoped(Effect.gen(function*() {
      const subscription = yield* subscriber.subscribe(options.topic, { from: offset })
      for (;;) {
        for (const message of yield* subscription.pull) {
          if (message.offset === offset) return Option.some(message.copy())
          if (message.offset > offset) return Option.none<SubscriberMessage>()
        }
      }
    })).pipe(
      // Below the end, so its batch is there to read: the bound is for a region that stopped answering.
      Effect.timeoutTo({ duration: options.requestTimeoutMs, onSuccess: (m) => m, onTimeout: () => Option.none() })
    )
  })

/** Succeeds when the region holds the stream's last message at its offset; else fails with the stream's refusal. */
export const continuesThisLog = (
  subscriber: SubscriberShape,
  options: MirrorOptions,
  offset: number,
  otherRegion: NonNullable<StreamEnd["otherRegion"]>
) =>
  Effect.gen(function*() {
    const held = yield* heldAt(subscriber, options, offset).pipe(
      Effect.catchTag("LogOutOfRange", () => Effect.succeed(Option.none<SubscriberMessage>()))
    )
    if (Option.isNone(held) || !sameMessage(held.value, otherRegion.last)) return yield* otherRegion.refused
    yield* Effect.logInfo(
      `mirror ${options.topic} → ${options.stream}: the stream's last message (offset ${offset}) came from region ${
        otherRegion.last.msgId.split("/")[0]
      }, and this region (${options.regionId}) holds the same message there (a region made again from its data directory): continuing the stream`
    )
  })
