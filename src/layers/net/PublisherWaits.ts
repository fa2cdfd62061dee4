/**
 * The publisher's waits (window room, a flush, a message's ACK): each hooked up to `notify`
 * or to its batch, all bounded by one timer, failing with `PublishAckTimeout` that names each
 * link's acked/sent counts.
 */
import { Effect } from "effect"
import { type BrokerLink, PublishAckTimeout, type PublishError } from "../../services/net/Publisher.js"
import { MAX_TIMER_MS } from "../../SettingText.js"
import { type Bounded, outstanding, type PublisherState, SessionOnLink } from "./PublisherState.js"

/** Arms the bounds' timer for `at` (performance.now() ms) unless it fires sooner already. */
const armBound = (s: PublisherState, at: number) => {
  if (s.boundTimer !== undefined && s.boundAt <= at) return
  clearTimeout(s.boundTimer)
  s.boundAt = at
  // Capped: Node fires a longer delay after 1 ms, which would re-arm every millisecond.
  s.boundTimer = setTimeout(s.expireBoundsTask, Math.min(MAX_TIMER_MS, Math.max(0, Math.ceil(at - performance.now()))))
}

/** Fails the waits past their bound; the timer then waits for the nearest of the others. */
export const expireBounds = (s: PublisherState): void => {
  s.boundTimer = undefined
  s.boundAt = Infinity
  const now = performance.now()
  let next = Infinity
  for (const wait of s.bounded) {
    const at = wait.expiresAt()
    if (at <= now) wait.expire()
    else next = Math.min(next, at)
  }
  if (next < Infinity) armBound(s, next)
}

/** The publisher failed: no wait needs bounding any more (each was failed with it). */
export const stopBounds = (s: PublisherState): void => {
  clearTimeout(s.boundTimer)
  s.boundTimer = undefined
}

/**
 * The one shape of every wait here (window room, a flush, a message's ACK): a callback wait
 * that `start` hooks up (handing it how to settle; returning how to unhook it), bounded by
 * `timeoutMs` from its start — or, with `restartOnAck`, from the last batch completed since.
 * No timer or fiber of its own: one timer bounds every wait (`armBound`), and it only holds
 * the process while a wait is in progress (a busy publisher waits once per ACK).
 */
export const boundedWait = <A>(
  s: PublisherState,
  timeoutMs: number,
  restartOnAck: boolean,
  start: (settle: (outcome: Effect.Effect<A, PublishError | PublishAckTimeout>) => void) => () => void
): Effect.Effect<A, PublishError | PublishAckTimeout> =>
  Effect.async<A, PublishError | PublishAckTimeout>((resume) => {
    const startedAt = performance.now()
    let unhook: (() => void) | undefined
    let ended = false
    const end = () => {
      ended = true
      unhook?.()
      unhook = undefined
      s.bounded.delete(wait)
      if (s.bounded.size === 0) s.boundTimer?.unref()
    }
    const wait: Bounded = {
      expiresAt: () => (restartOnAck && s.lastAckAt > startedAt ? s.lastAckAt : startedAt) + timeoutMs,
      expire: () => {
        end()
        resume(Effect.fail(ackTimeout(s, timeoutMs)))
      }
    }
    s.bounded.add(wait)
    if (s.bounded.size === 1) s.boundTimer?.ref()
    armBound(s, startedAt + timeoutMs)
    const stop = start((outcome) => {
      end()
      resume(outcome)
    })
    // A wait settled while starting must not leave its hook behind.
    if (ended) stop()
    else unhook = stop
    return Effect.sync(end)
  })

/** Hooks a wait up to `notify`: it settles once the publisher failed or `ready()` holds. */
export const wakeWhen = (
  s: PublisherState,
  ready: () => boolean,
  settle: (outcome: Effect.Effect<void, PublishError>) => void
) => {
  const wake = () => {
    if (s.failure !== undefined) settle(Effect.fail(s.failure))
    else if (ready()) settle(Effect.void)
  }
  s.waiters.add(wake)
  return () => {
    s.waiters.delete(wake)
  }
}

/**
 * Waits for window room; an ACK that completes a batch restarts the bound, so only a
 * window that stays full for `ackTimeoutMs` (the head or the brokers are gone) fails.
 */
export const awaitRoom = (
  s: PublisherState,
  ready: () => boolean
): Effect.Effect<void, PublishError | PublishAckTimeout> =>
  Effect.suspend(() => {
    if (s.failure !== undefined) return Effect.fail(s.failure)
    if (ready()) return Effect.void
    return boundedWait<void>(s, s.settings.ackTimeoutMs, true, (settle) => wakeWhen(s, ready, settle))
  })

/** Each link as `stats` and `PublishAckTimeout` name it. */
export const brokerCounts = (s: PublisherState): ReadonlyArray<BrokerLink> =>
  s.links.map((link) => {
    const connected = link.state === "open"
    let sessions = 0
    if (connected) { for (const lane of s.lanes) if (lane.onLink[link.index] === SessionOnLink.open) sessions++ }
    return {
      name: link.name,
      address: link.address,
      acked: s.linkCounts[link.index]!.acked,
      sent: s.linkCounts[link.index]!.sent,
      connected,
      sessions,
      ...(connected || link.lastClose === undefined ? {} : { lastClose: link.lastClose })
    }
  })

/** A wait for ACKs that outlived `timeoutMs`, naming each broker's counts. */
const ackTimeout = (s: PublisherState, timeoutMs: number) =>
  new PublishAckTimeout({ timeoutMs, outstanding: outstanding(s), brokers: brokerCounts(s) })
