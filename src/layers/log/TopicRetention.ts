/**
 * The head's retention of its topics in the region: every second it trims each topic whose spec
 * bounds what it keeps (`retention.maxMessages`: a trim keeping that many; `retention.maxAgeMs`:
 * one before the first message that young, by the publishers' stamps). A trim is a move of the
 * topic's retention line (TopicTrim.ts): readers behind it get LogOutOfRange naming the earliest
 * offset, and the memory below it is free for what comes next. It runs over the `Topics` service,
 * so the same code keeps the region's topics (the head's log) and the store's (tests, over a
 * TestClock).
 */
import { Clock, Duration, Effect, Layer } from "effect"
import { type TopicInfo, Topics, type TopicsShape, type TrimTarget, withinRegion } from "../../services/log/Topics.js"
import { everyTick } from "../region/Cadence.js"

/** How often the head looks. */
export const RETENTION_EVERY = Duration.seconds(1)

/** The trims a topic's retention asks for now (none when its spec bounds nothing). */
const trimsOf = (info: TopicInfo, nowMs: number): ReadonlyArray<TrimTarget> => {
  const { retention } = info
  if (retention === undefined || info.replicationFactor > 1) return []
  return [
    ...(retention.maxMessages === undefined ? [] : [{ keepMessages: retention.maxMessages }]),
    ...(retention.maxAgeMs === undefined ? [] : [{ beforeTime: Math.max(0, nowMs - retention.maxAgeMs) }])
  ]
}

/**
 * One pass: each topic trimmed to what its retention keeps at `nowMs`. A topic deleted meanwhile is
 * left; any other refusal is logged and the pass goes on (the next pass tries again).
 */
export const enforceRetention = (topics: TopicsShape, nowMs: number): Effect.Effect<void> =>
  Effect.flatMap(
    withinRegion(topics.list),
    (list) =>
      Effect.forEach(list, (info) =>
        Effect.forEach(trimsOf(info, nowMs), (target) =>
          topics.trim(info.name, target).pipe(
            Effect.catchTag("TopicNotFound", () => Effect.void),
            Effect.catchAll((e) => Effect.logWarning(`retention: topic ${info.name}: ${e.message}`)),
            Effect.asVoid
          )), { discard: true })
  )

/**
 * The head's retention, at once and then at every tick of `RETENTION_EVERY` for as long as the
 * layer lives (the head's log; a store's tests). On the cadence's grid (Cadence.ts): an idle head
 * wakes for it together with its other once-a-second work, not at a moment of its own.
 */
export const layer: Layer.Layer<never, never, Topics> = Layer.scopedDiscard(
  Effect.gen(function*() {
    const topics = yield* Topics
    const pass = Effect.flatMap(Clock.currentTimeMillis, (nowMs) => enforceRetention(topics, nowMs))
    yield* Effect.forkScoped(Effect.zipRight(pass, everyTick(() => Duration.toMillis(RETENTION_EVERY), pass)))
  })
)
