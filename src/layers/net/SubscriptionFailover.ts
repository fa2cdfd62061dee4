/**
 * What a subscription through brokers, of one topic (RemoteSubscription.ts) or of several
 * (RemoteTopics.ts), does when its broker is gone: it subscribes again, with the request that
 * goes on where it is, at the next broker that takes it — any broker serves any topic. Written
 * once, so that both kinds give up on the same errors after the same time.
 */
import { Effect, Either, ExecutionStrategy, Exit, Scope } from "effect"
import { SubscriberConnectionFailed } from "../../services/net/Subscriber.js"
import type { Subscribe } from "./SubscribeFrames.js"
import { type Settings, subscribeAny } from "./SubscriberConnection.js"

/** How often a subscription whose broker is gone asks the brokers again. */
const FAILOVER_RETRY_MS = 100

/** The connection ended or failed under the subscription (not a frame or an error its broker sent). */
export const brokerGone = (e: SubscriberConnectionFailed) => e.code === "closed" || e.code === "unreachable"

/**
 * `again` subscribed at the next broker that takes it, in a scope forked from `scope` (the
 * caller closes the connection it replaces). Tried until `connectTimeoutMs` has passed while
 * brokers are restarting or the old one still holds a named consumer; a topic out of range,
 * corrupt or without a head fails at once, and anything else, or the time running out, fails as
 * the `broken` connection did, saying why no broker took over.
 */
export const subscribeElsewhere = (
  scope: Scope.Scope,
  settings: Settings,
  again: Subscribe,
  broken: SubscriberConnectionFailed
) =>
  Effect.gen(function*() {
    const deadline = performance.now() + settings.connectTimeoutMs
    for (;;) {
      const attemptScope = yield* Scope.fork(scope, ExecutionStrategy.sequential)
      const attempt = yield* Effect.either(Scope.extend(subscribeAny(settings, again), attemptScope))
      if (Either.isRight(attempt)) return { scope: attemptScope, ...attempt.right }
      yield* Scope.close(attemptScope, Exit.void)
      const e = attempt.left
      if (e._tag === "LogOutOfRange" || e._tag === "LogCorrupt" || e._tag === "HeadUnavailable") {
        return yield* Effect.fail(e)
      }
      // The old broker may not have released a named consumer yet, or every broker is restarting.
      const passing = e._tag === "SubscriberBrokersUnreachable" || e._tag === "ConsumerBusy"
      if (!passing || performance.now() >= deadline) {
        return yield* new SubscriberConnectionFailed({
          broker: broken.broker,
          code: broken.code,
          detail: `${broken.detail}; no other broker took the subscription over: ${e.message}`
        })
      }
      yield* Effect.sleep(FAILOVER_RETRY_MS)
    }
  })
