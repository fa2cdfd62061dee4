/**
 * What every Subscriber checks of a subscribe's options before it opens anything: `from` is a
 * position and `fromTime` a time, at most one of them is given, and no option it does not take.
 * A JavaScript caller can pass anything; a wrong one is `InvalidSubscribeOptions` in one line,
 * not a Schema tree from deep in the request.
 */
import { Effect, Schema } from "effect"
import { type NamesOf, unknownOptionsReason } from "../../OptionNames.js"
import { ConsumerNameInvalid } from "../../services/log/Consumers.js"
import { TopicName, TopicNotFound } from "../../services/log/Topics.js"
import { InvalidSubscribeOptions, type SubscribeOptions, type SubscriberShape } from "../../services/net/Subscriber.js"
import { consumerNameBytes } from "../log/Consumers.js"

/** A value as the caller gave it: a string quoted, anything else as JavaScript prints it (NaN stays NaN). */
const shown = (value: unknown): string => (typeof value === "string" ? JSON.stringify(value) : String(value))

const isTopicName = Schema.is(TopicName)

/** The options a subscribe takes: any other is a caller's mistake (`fromTimestamp`), not left out in silence. */
const OPTION_NAMES: NamesOf<SubscribeOptions> = { from: true, fromTime: true, consumer: true, autoCommit: true }

/** What `autoCommit` takes besides "off". */
const AUTO_COMMIT_NAMES: NamesOf<Exclude<SubscribeOptions["autoCommit"], "off" | undefined>> = {
  everyMessages: true,
  intervalMs: true
}

/**
 * Why `autoCommit` is no policy, or undefined. Read as the default otherwise: a JavaScript
 * caller's `false` or "none" would commit every 100 ms what it meant to commit itself.
 */
const autoCommitProblem = (autoCommit: unknown): string | undefined => {
  if (autoCommit === undefined || autoCommit === "off") return undefined
  const unknown = unknownOptionsReason(autoCommit, AUTO_COMMIT_NAMES, "autoCommit")
  if (unknown !== undefined) return `autoCommit is "off" or { everyMessages, intervalMs }: ${unknown}`
  const { everyMessages, intervalMs } = autoCommit as { everyMessages?: unknown; intervalMs?: unknown }
  if (
    everyMessages !== undefined &&
    !(typeof everyMessages === "number" && (Number.isSafeInteger(everyMessages) || everyMessages === Infinity) &&
      everyMessages >= 1)
  ) {
    return `autoCommit's everyMessages must be a whole number of messages, at least 1, not ${shown(everyMessages)}`
  }
  if (intervalMs !== undefined && !(typeof intervalMs === "number" && intervalMs >= 0)) {
    return `autoCommit's intervalMs must be a number of milliseconds, 0 or more, not ${shown(intervalMs)}`
  }
  return undefined
}

/** Why `options` cannot start a subscription, or undefined. */
export const invalidSubscribeOptions = (options: SubscribeOptions | undefined): InvalidSubscribeOptions | undefined => {
  if (options === undefined) return undefined
  const unknown = unknownOptionsReason(options, OPTION_NAMES, "a subscription")
  if (unknown !== undefined) return new InvalidSubscribeOptions({ reason: unknown })
  const { consumer, from, fromTime } = options
  if (consumer !== undefined && typeof consumer !== "string") {
    return new InvalidSubscribeOptions({ reason: `consumer must be a consumer's name, not ${shown(consumer)}` })
  }
  if (
    from !== undefined && from !== "earliest" && from !== "latest" &&
    !(typeof from === "number" && Number.isSafeInteger(from) && from >= 0)
  ) {
    return new InvalidSubscribeOptions({
      reason: `from ${shown(from)} is not a position: earliest, latest or a message offset (0, 1, …)`
    })
  }
  if (fromTime !== undefined && !(typeof fromTime === "number" && Number.isFinite(fromTime) && fromTime >= 0)) {
    return new InvalidSubscribeOptions({
      reason: `fromTime ${
        shown(fromTime)
      } is not a time: give milliseconds since the epoch (Date.now(), date.getTime())`
    })
  }
  const autoCommit = autoCommitProblem(options.autoCommit)
  if (autoCommit !== undefined) return new InvalidSubscribeOptions({ reason: autoCommit })
  if (from !== undefined && fromTime !== undefined) {
    return new InvalidSubscribeOptions({
      reason: `from ${shown(from)} and fromTime ${fromTime} are both given: fromTime starts in place of from, give one`
    })
  }
  return undefined
}

/**
 * Why a subscribe cannot start, before anything is opened: its options, or a consumer name the
 * log would refuse (said as such, not as a broker's refusal of the request).
 */
const refusal = (options: SubscribeOptions | undefined): InvalidSubscribeOptions | ConsumerNameInvalid | undefined => {
  const invalid = invalidSubscribeOptions(options)
  if (invalid !== undefined || options?.consumer === undefined) return invalid
  const name = consumerNameBytes(options.consumer)
  return name instanceof ConsumerNameInvalid ? name : undefined
}

/** `shape` with its subscribes refused at once when their options are not what they must be. */
export const checkingOptions = (shape: SubscriberShape): SubscriberShape => ({
  ...shape,
  subscribe: (topic, options) => {
    // A name no topic can have (a JavaScript caller's number, "", 300 letters) names no topic, in place
    // and through brokers alike: a remote request would not carry it, failing with a Schema tree.
    if (!isTopicName(topic)) return Effect.fail(new TopicNotFound({ name: String(topic) }))
    const refused = refusal(options)
    return refused === undefined ? shape.subscribe(topic, options) : Effect.fail(refused)
  },
  subscribeTopics: (selection, options) => {
    // A JavaScript caller's one name where the list goes (`topics: "orders"`) is no list of its letters.
    const refused = Array.isArray(selection)
      ? refusal(options)
      : new InvalidSubscribeOptions({
        reason: `topics must be a list of names and patterns (["orders", "audit.*"]), not ${shown(selection)}`
      })
    return refused === undefined ? shape.subscribeTopics(selection, options) : Effect.fail(refused)
  }
})
