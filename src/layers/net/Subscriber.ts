/**
 * The Subscriber over a `LogReader` (`subscriberOver`): the local layer reads the region in
 * place (`layer`, in a process that maps it), the fake reads the in-memory log
 * (SubscriberMemory.ts); both run this code. Each pull delivers one batch as a view of where
 * it is stored, after confirming that the batch handed out before is still held (see
 * services/net/Subscriber.ts): a reader that fell behind retention fails with `LogOutOfRange`.
 *
 * One topic's reading is a `TopicReader` (TopicReader.ts): its cursor, its named consumer's
 * lease, the batch it handed out and its commits. A subscription to one topic pulls from one
 * (`subscribe`); a subscription to several topics or patterns takes turns over many
 * (SubscriberTopics.ts).
 *
 * A named consumer joins through `Consumers` (one member at a time) and reads from its
 * committed offset; a commit finds the batch holding the offset (the reader's `locate`) so
 * retention is released up to it. A consumer cut off for holding publishers too long fails its
 * member's next pull or commit with `ConsumerCutOff`; the next member resumes it (taking its hold
 * again) when its committed offset is still held, else gets `LogOutOfRange`.
 */
import { Effect, Layer, Option, Stream } from "effect"
import { Consumers, type ConsumersShape } from "../../services/log/Consumers.js"
import { LogReader, type LogReaderShape } from "../../services/log/LogReader.js"
import { Topics, type TopicsShape } from "../../services/log/Topics.js"
import {
  type SubscribeError,
  type SubscribeOptions,
  Subscriber,
  type SubscriberShape,
  type Subscription,
  type SubscriptionError
} from "../../services/net/Subscriber.js"
import { checkingOptions } from "./SubscribeOptionsCheck.js"
import type { BatchView } from "./SubscriberBatch.js"
import { subscribeTopicsOver } from "./SubscriberTopics.js"
import { openTopicReader, type TopicReader } from "./TopicReader.js"

export { autoCommitPolicy, DEFAULT_AUTO_COMMIT_MS } from "./TopicReader.js"

/** One topic's subscription: pulls from its reader, waiting for the log when nothing is there. */
const subscriptionOf = (topicReader: TopicReader, consumer: string | undefined): Subscription => {
  const pull: Effect.Effect<BatchView, SubscriptionError> = Effect.zipRight(
    topicReader.settle,
    Effect.suspend(function next(): Effect.Effect<BatchView, SubscriptionError> {
      return Effect.flatMap(topicReader.take, (view) =>
        view !== undefined ? Effect.succeed(view) : Effect.zipRight(
          Effect.zipRight(Effect.suspend(() => topicReader.awaitMore(topicReader.waitMs())), topicReader.afterWait),
          Effect.suspend(next)
        ))
    })
  )
  return {
    topic: topicReader.topic,
    start: topicReader.start,
    consumer,
    batches: Stream.repeatEffectOption(Effect.mapError(pull, Option.some)),
    pull,
    poll: (onBatch) => Effect.map(pull, (batch) => (onBatch(batch), 1)),
    position: topicReader.position,
    lag: topicReader.lag,
    commit: topicReader.commit
  }
}

/** `options` for a topic read from its first message (a pattern found it after the subscription started). */
const fromStart = ({ fromTime: _, ...options }: SubscribeOptions): SubscribeOptions => ({
  ...options,
  from: "earliest"
})

export const subscriberOver = (
  reader: LogReaderShape,
  consumers?: ConsumersShape,
  topics?: TopicsShape
): SubscriberShape =>
  checkingOptions({
    subscribe: (topic, options = {}) =>
      Effect.map(openTopicReader(reader, consumers, topic, options), (r) => subscriptionOf(r, options.consumer)),
    subscribeTopics: (selection, options = {}) =>
      subscribeTopicsOver(
        selection,
        options,
        topics,
        (topic, from) => openTopicReader(reader, consumers, topic, from === undefined ? options : fromStart(options))
      ),
    bounds: (topic): Effect.Effect<{ readonly earliest: number; readonly end: number }, SubscribeError> =>
      reader.bounds(topic)
  })

/** The local Subscriber: reads the region this process maps (needs its `LogReader`, `Consumers` and `Topics`, e.g. `Roles.reader`). */
export const layer: Layer.Layer<Subscriber, never, LogReader | Consumers | Topics> = Layer.effect(
  Subscriber,
  Effect.map(
    Effect.all([LogReader, Consumers, Topics]),
    ([reader, consumers, topics]) => subscriberOver(reader, consumers, topics)
  )
)
