/**
 * The head's DiskCopies over its data directory (Segments): which topics' writers run, by topic
 * generation (a topic deleted and created again under its name is another), the removal of a
 * topic's two streams, `topic-NAME` and `state-NAME`, once its writers stopped, and a new topic's
 * create waiting until its writer holds retention (the tier woken for it, not at its next look).
 */
import { Deferred, Effect, Layer, Option, Queue } from "effect"
import { DiskCopies, type DiskCopiesShape } from "../../../services/log/DiskCopies.js"
import { Segments } from "../../../services/log/Segments.js"
import { type TopicInfo, TopicNotDeletable } from "../../../services/log/Topics.js"
import { streamOf } from "./DurableOrder.js"
import { stateStreamOf } from "./DurableTopicState.js"

/** One generation of a topic. */
export const copyKey = (topic: TopicInfo): string => `${topic.generation}:${topic.name}`

export const make: Effect.Effect<DiskCopiesShape, never, Segments> = Effect.gen(function*() {
  const segments = yield* Segments
  /** How to stop each running copy's writers. */
  const running = new Map<string, Effect.Effect<void>>()
  /** Copies removed whose topic is still in the directory (its deletion goes on): never started again. */
  const removed = new Set<string>()
  /** Copies whose writer holds its topic's retention. */
  const holding = new Set<string>()
  /** Creates waiting for their copy's writer to hold retention. */
  const waiting = new Map<string, Deferred.Deferred<void>>()
  /** A create asked the tier to look now (one pending wake is enough: a look starts every copy missing). */
  const wakes = yield* Queue.dropping<void>(1)
  /**
   * The tier has made its first look (its first pause). Before it, the topics are the head's
   * start's, whose writers the head waits for itself before it is ready (awaitSubscribed): a
   * create then has no tier to wait for.
   */
  let looked = false
  const removeStreams = (topic: TopicInfo) =>
    Effect.forEach([streamOf(topic.name), stateStreamOf(topic.name)], (stream) => segments.remove(stream), {
      discard: true
    }).pipe(
      Effect.mapError((e) =>
        new TopicNotDeletable({ name: topic.name, reason: `its copy on disk could not be removed: ${e.message}` })
      )
    )
  return {
    keeps: true,
    remove: (topic) =>
      Effect.suspend(() => {
        const key = copyKey(topic)
        removed.add(key)
        const stop = running.get(key) ?? Effect.void
        running.delete(key)
        return Effect.zipRight(stop, removeStreams(topic)).pipe(
          // The topic stays: the tier starts its writers again (they resume where they left the disk).
          Effect.tapError(() => Effect.sync(() => removed.delete(key)))
        )
      }),
    persisting: (topic, stop) =>
      Effect.sync(() => {
        const key = copyKey(topic)
        if (removed.has(key)) return false
        running.set(key, stop)
        return true
      }),
    gone: (topic) =>
      Effect.sync(() => {
        const key = copyKey(topic)
        running.delete(key)
        removed.delete(key)
        holding.delete(key)
        waiting.delete(key)
      }),
    awaitWriting: (topic, timeoutMs) =>
      Effect.gen(function*() {
        const key = copyKey(topic)
        if (holding.has(key)) return true
        yield* Queue.offer(wakes, undefined)
        if (!looked) return true
        let done = waiting.get(key)
        if (done === undefined) waiting.set(key, done = yield* Deferred.make<void>())
        const started = Option.isSome(yield* Effect.timeoutOption(Deferred.await(done), timeoutMs))
        if (!started) waiting.delete(key)
        return started
      }),
    writing: (topic) =>
      Effect.suspend(() => {
        const key = copyKey(topic)
        holding.add(key)
        const done = waiting.get(key)
        waiting.delete(key)
        return done === undefined ? Effect.void : Deferred.succeed(done, undefined)
      }),
    pause: (ms) =>
      Effect.suspend(() => {
        looked = true
        return Effect.asVoid(Effect.timeoutOption(Queue.take(wakes), ms))
      })
  }
})

export const layer: Layer.Layer<DiskCopies, never, Segments> = Layer.effect(DiskCopies, make)

/** A head started without a data directory: it keeps no copies, so it can remove none. */
export const layerWithoutDataDir: Layer.Layer<DiskCopies> = Layer.succeed(DiskCopies, {
  keeps: false,
  remove: (topic) =>
    Effect.fail(
      new TopicNotDeletable({
        name: topic.name,
        reason:
          "it has a copy on disk (replication factor 2) and the head runs without its data directory: start the head with --data-dir DIR to delete it"
      })
    ),
  persisting: () => Effect.succeed(false),
  gone: () => Effect.void,
  awaitWriting: () => Effect.succeed(false),
  writing: () => Effect.void,
  pause: (ms) => Effect.sleep(ms)
})
