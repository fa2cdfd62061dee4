/**
 * A subscription to several topics over one process's log (`subscribeTopicsOver`): one
 * `TopicReader` per topic (Subscriber.ts), each in a scope of its own, taking turns — a pull
 * takes the next batch of the topic after the last one that gave one (up to `STREAK` in a row from
 * a busy topic before the next gets its turn), and when none has one, waits for any of them.
 * Patterns are matched against the topics listed when it starts and again every `DISCOVERY_MS`
 * while it waits or reads: a topic that appeared meanwhile joins, read from its first message.
 * A topic deleted while read leaves the subscription when a pattern matched it; one it names
 * fails it (`TopicDeleted`), as a one-topic subscription does.
 */
import { Effect, ExecutionStrategy, Exit, Option, Scope, Stream } from "effect"
import { InvalidTopicPattern, parseSelection } from "../../services/log/TopicPattern.js"
import { type TopicsShape, withinRegion } from "../../services/log/Topics.js"
import {
  CommitRejected,
  type SubscribeError,
  type SubscribeOptions,
  type SubscriberBatch,
  type SubscriptionError,
  type TopicsSubscription
} from "../../services/net/Subscriber.js"
import type { BatchView } from "./SubscriberBatch.js"
import { type TopicReader, WAIT_SLICE_MS } from "./TopicReader.js"

/** How often patterns are matched against the topics again. */
export const DISCOVERY_MS = 250
/** Batches a topic may give in a row before the next topic gets its turn. */
const STREAK = 64

interface Member {
  readonly reader: TopicReader
  readonly scope: Scope.CloseableScope
  /** Named by the selection (not only matched by a pattern). */
  readonly named: boolean
}

/**
 * The subscription to `entries` (topic names and patterns). `openReader` opens one topic's reader
 * in the scope it runs in, from `options`, or from `from` for a topic a pattern found later.
 */
export const subscribeTopicsOver = (
  entries: ReadonlyArray<string>,
  options: SubscribeOptions,
  topics: TopicsShape | undefined,
  openReader: (topic: string, from?: "earliest") => Effect.Effect<TopicReader, SubscribeError, Scope.Scope>
): Effect.Effect<TopicsSubscription, SubscribeError | InvalidTopicPattern, Scope.Scope> =>
  Effect.gen(function*() {
    const selection = parseSelection(entries)
    if (selection instanceof InvalidTopicPattern) return yield* selection
    if (selection.patterns.length > 0 && topics === undefined) {
      return yield* Effect.dieMessage("this Subscriber has no Topics service to match patterns against")
    }
    const scope = yield* Effect.scope
    const members: Array<Member> = []
    const byTopic = new Map<string, Member>()
    const join = (topic: string, named: boolean, from?: "earliest") =>
      Effect.gen(function*() {
        const own = yield* Scope.fork(scope, ExecutionStrategy.sequential)
        const reader = yield* Scope.extend(openReader(topic, from), own).pipe(
          Effect.tapError(() => Scope.close(own, Exit.void))
        )
        const member = { reader, scope: own, named }
        members.push(member)
        byTopic.set(topic, member)
      })
    const leave = (member: Member) =>
      Effect.suspend(() => {
        members.splice(members.indexOf(member), 1)
        byTopic.delete(member.reader.topic)
        return Scope.close(member.scope, Exit.void)
      })
    for (const name of selection.names) yield* join(name, true)
    /** Topics a pattern matches that it does not read yet: joined (from `from`), each that still exists. */
    let discoveredAt = -Infinity
    const discover = (from?: "earliest") =>
      Effect.gen(function*() {
        discoveredAt = performance.now()
        if (selection.patterns.length === 0) return
        for (const info of yield* withinRegion(topics!.list)) {
          if (byTopic.has(info.name) || !selection.patterns.some((p) => p.matches(info.name))) continue
          // Deleted since it was listed: not there to read.
          yield* Effect.catchTag(join(info.name, false, from), "TopicNotFound", () => Effect.void)
        }
      })
    yield* discover()
    const discoverDue = Effect.suspend(() =>
      performance.now() - discoveredAt >= DISCOVERY_MS ? discover("earliest") : Effect.void
    )

    /** The member whose batch was handed out last, and where the turn is. */
    let current: Member | undefined
    let streak = 0
    /** The next batch of `member`, if it has one; a deleted topic a pattern matched leaves instead. */
    const takeFrom = (member: Member): Effect.Effect<BatchView | undefined, SubscriptionError> =>
      member.reader.take.pipe(
        Effect.catchTag("TopicDeleted", (e) => (member.named ? Effect.fail(e) : Effect.as(leave(member), undefined)))
      )
    /** The next batch of any topic now, taking turns; undefined when none has one. */
    const takeAny = Effect.gen(function*() {
      if (current !== undefined && streak < STREAK && members.includes(current)) {
        const view = yield* takeFrom(current)
        if (view !== undefined) {
          streak++
          return view
        }
      }
      const from = current === undefined ? 0 : members.indexOf(current) + 1
      const count = members.length
      for (let k = 0; k < count; k++) {
        const member = members[(from + k) % count]
        if (member === undefined || member === current) continue
        const view = yield* takeFrom(member)
        if (view !== undefined) {
          current = member
          streak = 1
          return view
        }
      }
      if (current !== undefined && members.includes(current)) {
        // Its streak was over but none other had anything: it goes on.
        const view = yield* takeFrom(current)
        if (view !== undefined) {
          streak = 1
          return view
        }
      }
      return undefined
    })
    /** Until any topic has something (or a wait's bound: an auto-commit, the next discovery). */
    const waitForAny = Effect.gen(function*() {
      let ms = selection.patterns.length > 0 ? DISCOVERY_MS : WAIT_SLICE_MS
      for (const member of members) ms = Math.min(ms, member.reader.waitMs())
      if (members.length === 0) yield* Effect.sleep(ms)
      else yield* Effect.raceAll(members.map((member) => member.reader.awaitMore(ms)))
      for (const member of [...members]) yield* member.reader.afterWait
    })
    /** The batch `member` handed out is done with; a topic a pattern matched that was deleted meanwhile leaves. */
    const settle = (member: Member) =>
      member.reader.settle.pipe(
        Effect.catchTag("TopicDeleted", (e) => (member.named ? Effect.fail(e) : leave(member)))
      )
    const pull: Effect.Effect<SubscriberBatch, SubscriptionError> = Effect.gen(function*() {
      if (current !== undefined && members.includes(current)) yield* settle(current)
      for (;;) {
        yield* discoverDue.pipe(Effect.orDie)
        const view = yield* takeAny
        if (view !== undefined) return view
        yield* waitForAny
      }
    })
    const subscription: TopicsSubscription = {
      selection: entries,
      topics: () => members.map((member) => member.reader.topic),
      unreadableMatches: 0,
      batches: Stream.repeatEffectOption(Effect.mapError(pull, Option.some)),
      pull,
      poll: (onBatch) => Effect.map(pull, (batch) => (onBatch(batch), 1)),
      position: (topic) => byTopic.get(topic)?.reader.position(),
      lag: Effect.map(
        Effect.forEach([...members], (member) => member.reader.lag),
        (lags) => lags.reduce((sum, lag) => sum + lag, 0)
      ),
      consumer: options.consumer,
      commit: (to) =>
        to === undefined
          ? Effect.forEach([...members], (member) => member.reader.commit(), { discard: true })
          : Effect.suspend(() => {
            const member = byTopic.get(to.topic)
            return member === undefined
              ? Effect.fail(new CommitRejected({ topic: to.topic, reason: "this subscription does not read it" }))
              : member.reader.commit(to.offset)
          })
    }
    return subscription
  })
