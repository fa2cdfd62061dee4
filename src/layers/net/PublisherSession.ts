/**
 * The publisher's session and its links: the first link to open registers the session (the
 * log hands out its epoch) and the others attach to it; a link that goes down has its
 * batches resent through the others; a fence or a forgotten session starts a new session that
 * replays the unacknowledged suffix; a failure or `close` ends it all. `linkEvents` is what
 * the links report to (PublisherLink.ts).
 */
import { Effect } from "effect"
import { publisherFenced } from "../../Metrics.js"
import { BrokerRejected, PublisherClosed, type PublishError } from "../../services/net/Publisher.js"
import { failAckWaiters, learnOffsets, settleAwaiting } from "./PublisherAcks.js"
import type { PublisherLink, PublisherLinkEvents } from "./PublisherLink.js"
import { notify, type PublisherState } from "./PublisherState.js"
import { stopBounds } from "./PublisherWaits.js"
import { acknowledge, acknowledgeOrdered, dispatch, drainUnrouted } from "./PublisherWindow.js"

/** What the links report to: each event acts on the publisher's state. */
export const linkEvents = (s: PublisherState): PublisherLinkEvents => ({
  opened: (link, sessionEpoch) => {
    if (s.epoch === undefined) registered(s, link, sessionEpoch)
    drainUnrouted(s)
  },
  acked: (link, sessionEpoch, count, orders, level) => {
    if (sessionEpoch !== s.epoch) return
    if (level < s.ackLevel) return acknowledgeOrdered(s, count)
    learnOffsets(s, orders)
    acknowledge(s, count, link.index)
  },
  fenced: (sessionEpoch, committed) => {
    if (sessionEpoch === s.epoch) fence(s, committed)
  },
  sessionUnknown: (link, detail) => sessionLost(s, link, detail),
  failed: (error) => fail(s, error),
  down: (link, reason) => linkDown(s, link, reason),
  retry: (link) => connectLink(s, link)
})

/**
 * Opens a link. Without a session, the first link to open registers one (the log hands out
 * the epoch) and the others attach to it once it exists.
 */
export const connectLink = (s: PublisherState, link: PublisherLink): void => {
  if (s.failure !== undefined) return
  if (s.epoch === undefined) {
    if (s.registrar !== undefined && s.registrar !== link) return
    s.registrar = link
  }
  link.open(s.epoch)
}

/** The log registered the session on `link`: the other links attach to it now (one waiting out a backoff too). */
const registered = (s: PublisherState, link: PublisherLink, sessionEpoch: number) => {
  s.epoch = sessionEpoch
  s.registrar = undefined
  for (const other of s.links) {
    if (other === link || other.state === "opening" || other.state === "open") continue
    connectLink(s, other)
  }
}

/**
 * The log no longer knows the session (it ended and its record was reused). With
 * nothing unacknowledged a new session carries on; otherwise whether those batches are
 * in the log cannot be known, and the publisher fails rather than guess.
 */
const sessionLost = (s: PublisherState, link: PublisherLink, detail: string) => {
  if (s.unacked.slice(s.head).some((batch) => !batch.done)) {
    return fail(s, new BrokerRejected({ broker: `${link.name} ${link.address}`, code: "unknown-session", detail }))
  }
  restartSession(s)
}

/** Drops every link and registers a new session; batches waiting for a link go out under it. */
const restartSession = (s: PublisherState) => {
  s.epoch = undefined
  s.orderedSeq = 0
  s.registrar = undefined
  for (const link of s.links) link.close()
  for (const link of s.links) connectLink(s, link)
}

/**
 * A link lost its session: its outstanding batches go to the other links now, and if it was
 * registering the session another link does meanwhile. Whether it should retry.
 */
const linkDown = (s: PublisherState, link: PublisherLink, reason: string): boolean => {
  s.log(Effect.logDebug(`publisher ${s.clientId}: ${link.name} ${link.address} down: ${reason}`))
  for (let i = s.head; i < s.unacked.length; i++) {
    const batch = s.unacked[i]!
    if (!batch.done && batch.link === link.index) dispatch(s, batch)
  }
  // Done batches it carried whose offset it had not named yet: it never will.
  settleAwaiting(s, (batch) => batch.lastLink === link.index)
  if (s.failure !== undefined) return false
  if (s.registrar === link) {
    s.registrar = undefined
    const next = s.links.find((other) => other !== link && other.state === "idle")
    if (next !== undefined) connectLink(s, next)
  }
  return true
}

/**
 * The session ended at `committed` (fenced by a gap, or released after idling): register
 * a new session and replay the rest under it.
 */
const fence = (s: PublisherState, committed: number) => {
  acknowledge(s, committed, undefined)
  s.counts.fences++
  publisherFenced.unsafeUpdate(1, [])
  const replay = s.unacked.slice(s.head).filter((batch) => !batch.done)
  s.log(
    Effect.logInfo(
      `publisher ${s.clientId}: session epoch ${s.epoch} ended at ${committed}; replaying ${replay.length} batches in a new session`
    )
  )
  replay.forEach((batch, seq) => {
    batch.seq = seq
    batch.link = -1
    // Ordered in the old session means nothing in the new one (the fence covers what was ordered anyway).
    if (batch.ordered) {
      batch.ordered = false
      s.orderedInFlight--
      s.inFlight++
    }
  })
  s.unacked = replay
  s.head = 0
  s.orderedSeq = 0
  s.unrouted = [...replay]
  s.nextSeq = replay.length
  restartSession(s)
}

/** The publisher fails with `error`: every wait and `publishAcked` caller ends with it, every link is dropped. */
export const fail = (s: PublisherState, error: PublishError): void => {
  if (s.failure !== undefined) return
  s.failure = error
  clearTimeout(s.lingerTimer)
  failAckWaiters(s, error)
  stopBounds(s)
  for (const link of s.links) link.close()
  notify(s)
}

/**
 * Closing: the session is released at once (its CLOSE names how many batches it sent, so
 * the log releases it once those are ordered), not left to idle out.
 */
export const closePublisher = (s: PublisherState): void => {
  const link = s.epoch === undefined ? undefined : s.links.find((candidate) => candidate.state === "open")
  if (link !== undefined && s.epoch !== undefined) link.closeSession(s.epoch, s.nextSeq)
  fail(s, new PublisherClosed())
}
