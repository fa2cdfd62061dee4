/**
 * What a remote subscriber and an admin client check of their connection options before anything connects: a
 * JavaScript caller can pass anything, and a wrong one is `InvalidSubscribeOptions` in one line
 * naming it, not a RangeError from a buffer, a timeout that blames the broker, or a value clamped
 * in silence.
 */
import { Effect } from "effect"
import { InvalidSubscribeOptions, type SubscriberShape } from "../../services/net/Subscriber.js"
import { type RemoteLinkOptions, remoteLinkProblem } from "./RemoteLink.js"
import { MAX_CREDIT } from "./SubscribeFrames.js"

/** The smallest receive buffer: a broker's control frames and a small batch fit. */
const MIN_BUFFER_BYTES = 64 << 10
/** The smallest largest batch a subscriber takes: a message of a few hundred bytes, framed. */
const MIN_BATCH_BYTES = 1 << 10

const shown = (value: unknown): string => (typeof value === "string" ? JSON.stringify(value) : String(value))
const isIntegerIn = (value: unknown, min: number, max: number): boolean =>
  typeof value === "number" && Number.isInteger(value) && value >= min && value <= max

/** A remote subscriber's connection options (SubscriberRemote.ts), as far as they are checked here. */
type SubscriberConnection = RemoteLinkOptions & {
  readonly credit?: number
  readonly bufferBytes?: number
  readonly maxBatchBytes?: number
}

/** Why `options` cannot make a remote subscriber, or undefined. */
export const remoteSubscriberProblem = (options: SubscriberConnection): string | undefined => {
  const { bufferBytes, credit, maxBatchBytes } = options
  const link = remoteLinkProblem(options)
  if (link !== undefined) return link
  if (credit !== undefined && !isIntegerIn(credit, 1, MAX_CREDIT)) {
    return `credit must be a whole number of frames from 1 to ${MAX_CREDIT}, not ${shown(credit)}`
  }
  if (bufferBytes !== undefined && !isIntegerIn(bufferBytes, MIN_BUFFER_BYTES, 2 ** 31 - 1)) {
    return `bufferBytes must be a whole number of bytes, at least ${MIN_BUFFER_BYTES} (64 KiB), not ${
      shown(bufferBytes)
    }`
  }
  if (maxBatchBytes !== undefined && !isIntegerIn(maxBatchBytes, MIN_BATCH_BYTES, 2 ** 31 - 1)) {
    return `maxBatchBytes must be a whole number of bytes, at least ${MIN_BATCH_BYTES}, not ${shown(maxBatchBytes)}`
  }
  return undefined
}

/** A subscriber whose every call fails with `reason`: what a remote subscriber given options it cannot take is. */
export const refusingSubscriber = (reason: string): SubscriberShape => {
  const refused = Effect.fail(new InvalidSubscribeOptions({ reason }))
  return { subscribe: () => refused, subscribeTopics: () => refused, bounds: () => refused }
}
