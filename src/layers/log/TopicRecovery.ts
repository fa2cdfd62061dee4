/**
 * How a sequencer takes a topic on (first sight of it, or a restart): `recoverTopic` rebuilds
 * its `TopicOrder` from what its storage holds (`OrderHistory`: the published lines and the
 * GOI) and its session table; `discovered` hands the outcome to the round.
 */
import { Effect } from "effect"
import { sequencerLapsedSessions } from "../../Metrics.js"
import { orderPolicy } from "../../services/log/OrderModes.js"
import { LogCorrupt, type TopicInfo } from "../../services/log/Topics.js"
import type { OrderHistory } from "./OrderHistory.js"
import { AHEAD_WINDOW, SessionState } from "./Records.js"
import { type OrderSettings, TopicOrder, type TopicStorage } from "./TopicOrder.js"

/**
 * Re-creates the engine's sessions from the table (a restart): active and fenced lines; else
 * names a bad line. A line torn by a killed writer lapses in orders 0/2/4 when its bitmap reads
 * non-empty: frontier and bitmap may come from two writes, and either way a batch would be
 * acknowledged without being ordered or ordered twice. One that reads empty is whole enough:
 * `write` stores each bitmap word's final value in ascending order and a moved frontier only
 * shifts bits to lower words, so an empty read means nothing was ordered above the frontier
 * before that write, and what that write's round ordered is in the GOI, which the restart
 * replays. In order 5 the frontier alone counts, one word, whole either way.
 */
export const restoreSessions = (topic: TopicOrder): string | undefined => {
  let problem: string | undefined
  const { sessions } = topic.storage
  sessions.forEachSession((slot, clientId, sessionEpoch, state, fields, torn) => {
    if (state !== SessionState.active && state !== SessionState.fenced) return
    if (
      torn && !orderPolicy(topic.info.order).sessionInSequence && fields.ahead !== undefined && fields.ahead.size > 0
    ) {
      sessions.lapse(slot, clientId, sessionEpoch, fields)
      // Before any round (whose tally would count it), so counted here.
      sequencerLapsedSessions.unsafeUpdate(1, [])
      return
    }
    if (!Number.isSafeInteger(fields.next) || fields.next < 0) {
      problem ??= `session line ${slot} frontier ${fields.next} is invalid`
    } else topic.engine.restore(clientId, sessionEpoch, slot, fields)
  })
  return problem
}

/**
 * A batch found in the GOI at a restart: its session (if not released) counts it as ordered. Names
 * the entry's problem instead when it is further above the session's frontier than a sequencer
 * orders (orders 0/2/4), which only a damaged entry can be.
 */
export const replayOrdered = (
  topic: TopicOrder,
  clientId: number,
  sessionEpoch: number,
  batchSeq: number
): string | undefined => {
  const session = topic.engine.session(clientId, sessionEpoch)
  if (session === undefined) return undefined
  if (!orderPolicy(topic.info.order).sessionInSequence && !(batchSeq - session.next <= AHEAD_WINDOW)) {
    return `batch ${batchSeq} of session ${clientId}/${sessionEpoch} is more than ${AHEAD_WINDOW} above its frontier ${session.next}`
  }
  topic.engine.recoverOrdered(session, batchSeq)
  return undefined
}

/** Each broker's scan cursor (its consumed-through) and counters from its published line; else names a bad line. */
const takeBrokerLines = (topic: TopicOrder, history: OrderHistory): string | undefined => {
  for (const b of topic.storage.lanes()) {
    const line = history.broker(b)
    const consumed = line.consumedThrough
    if (!Number.isSafeInteger(consumed) || consumed < 0) return `broker ${b} consumed-through ${consumed} is invalid`
    topic.scan[b] = consumed
    topic.orderedBatches[b] = line.orderedBatches
    topic.orderedMessages[b] = line.orderedMessages
    topic.duplicates[b] = line.duplicates
    topic.dropped[b] = line.dropped
  }
  return undefined
}

/**
 * Takes the topic's published state back when another process's round moved it since this
 * one's last (its `rounds` word differs from the value this process's own round left): the
 * frontier and every broker's line, the scan restarting at each broker's consumed-through, and
 * the engine's sessions forgotten, each taken from its line again when a batch of it arrives
 * (`OrderEngine.forget`). Only a completed round moves `rounds`, after everything it published,
 * and rounds never overlap (the round marker), so what is read here is whole; a round cut short
 * by its process's death is recovered by the head before anyone runs another (`recoverTopic`).
 * Returns false when a line is not sane (the caller orders nothing of the topic this round).
 */
export const syncTopic = (topic: TopicOrder): boolean => {
  const rounds = topic.storage.rounds()
  if (rounds === topic.seenRounds) return true
  const history = topic.storage.history()
  const { committed, totalOrder } = history
  if (
    !Number.isSafeInteger(committed) || committed < 0 || !Number.isSafeInteger(totalOrder) || totalOrder < committed
  ) return false
  if (takeBrokerLines(topic, history) !== undefined) return false
  topic.goiNext = committed
  topic.totalNext = totalOrder
  topic.engine.forget(history.fencedSessions)
  topic.sessionsPartial = true
  topic.seenRounds = rounds
  return true
}

/**
 * Before the head's sweep of idle sessions, which must know every session, not only those whose
 * batches came since `syncTopic`: every line taken again (the scan restarting at each broker's
 * consumed-through, as the engine's holds are dropped with its sessions).
 */
export const takeAllSessions = (topic: TopicOrder): string | undefined => {
  for (const b of topic.storage.lanes()) topic.scan[b] = topic.consumedThrough(b)
  topic.engine.forget(0)
  topic.sessionsPartial = false
  return restoreSessions(topic)
}

/**
 * Rebuilds a topic's order from its storage alone (first sight of the topic, or a restart):
 * frontier and per-broker cursors from its lines, sessions from its table, then every
 * retained GOI entry and the tail past the published frontier that a killed sequencer
 * committed (frontiers and duplicate detection must account for them all), whose slots it
 * finishes. A line or entry that fails its checks is named instead (LogCorrupt): that topic
 * is not ordered.
 */
export const recoverTopic = (
  info: TopicInfo,
  storage: TopicStorage,
  history: OrderHistory,
  settings: OrderSettings
): TopicOrder | LogCorrupt => {
  const corrupt = (reason: string) => new LogCorrupt({ reason: `topic ${info.name}: ${reason}` })
  const topic = new TopicOrder(info, storage, settings)
  topic.seenRounds = storage.rounds()
  const { committed, totalOrder } = history
  if (
    !Number.isSafeInteger(committed) || committed < 0 || !Number.isSafeInteger(totalOrder) || totalOrder < committed
  ) {
    return corrupt(`order line frontier ${committed} / ${totalOrder} is invalid`)
  }
  const badBroker = takeBrokerLines(topic, history)
  if (badBroker !== undefined) return corrupt(badBroker)
  topic.goiNext = committed
  topic.totalNext = totalOrder
  topic.lowest = storage.lowestCursor()
  const badLine = restoreSessions(topic)
  if (badLine !== undefined) return corrupt(badLine)
  for (let g = Math.max(0, committed - storage.goiSlots);; g++) {
    const entry = history.entry(g)
    if (entry === undefined) {
      if (g < committed) continue
      break
    }
    const { broker, pbrSeq } = entry
    if (broker >= settings.maxBrokers || !Number.isSafeInteger(pbrSeq) || pbrSeq < 0) {
      return corrupt(`GOI entry ${g} is invalid`)
    }
    // Released sessions are over: their lines hold final frontiers.
    const replayed = replayOrdered(topic, entry.clientId, entry.sessionEpoch, entry.batchSeq)
    if (replayed !== undefined) return corrupt(`GOI entry ${g}: ${replayed}`)
    if (g < committed) continue
    if (entry.totalOrder !== topic.totalNext) return corrupt(`GOI entry ${g} breaks the total order`)
    storage.seek(broker, pbrSeq)
    if (!storage.finished()) storage.finish(broker, pbrSeq, g, topic.totalNext)
    topic.goiNext = g + 1
    topic.totalNext += entry.messageCount
  }
  return topic
}

/** What discovery hands the round of a topic: its recovered order, or nothing when it could not be recovered (logged). */
export const discovered = (
  info: TopicInfo,
  recovered: TopicOrder | LogCorrupt
): Effect.Effect<ReadonlyArray<TopicOrder>> =>
  recovered instanceof LogCorrupt
    ? Effect.as(Effect.logError(`sequencer: ${recovered.message}; topic ${info.name} is not ordered`), [])
    : Effect.succeed([recovered])
