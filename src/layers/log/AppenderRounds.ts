/**
 * An appender (a broker, or a local publisher) ordering its own batches: after its appends to a
 * topic it runs the sequencer's round for that topic itself when nobody else is inside one, so an
 * uncontended batch is in the total order when its append returns to the event loop, with no
 * process woken to order it (docs/log.md, "Ordering where a batch is appended").
 *
 * It is the same round as the head's (`orderTopic` in SequencerRound.ts) over the same storage
 * (RegionTopicStorage.ts); what differs is who may run it when:
 * - only over a cache-coherent region (non-coherent CXL cannot trust cross-host atomics: the head
 *   orders there), and only for topics whose session lines no one else writes (replication
 *   factor 1: the head's durable tier writes the durable word of RF 2 sessions);
 * - only inside the round marker, taken by compare-and-swap from 0 (`beginAppenderRound`), while
 *   a ready head holds an unexpired lease: the head keeps the lease, failover and fencing;
 * - never over what the head keeps to itself: held batches and their deadlines, a full GOI,
 *   sweeps of idle sessions. A topic with batches held or a stalled GOI is left to the head, and a
 *   round that holds a batch or leaves work behind rings the head.
 * Its cached state of the topic is current only while the topic's `rounds` word is what its own
 * last round left; otherwise the round takes it back from the region first (`syncTopic`).
 */
import { logAppenderMessagesOrdered, logAppenderRounds } from "../../Metrics.js"
import type { SequencerOptions } from "../../services/log/Sequencer.js"
import type { TopicInfo } from "../../services/log/Topics.js"
import { type CxlMemoryShape, LINE_BYTES } from "../../services/region/CxlMemory.js"
import type { DoorbellShape } from "../../services/region/Doorbell.js"
import type { LogArea } from "./Layout.js"
import { ringEveryone, ringWaiters } from "./Participants.js"
import { LeaseLineView, OrderLineView, SequencerLineView } from "./RecordViews.js"
import { RegionTopicStorage, type RegionViews, regionViews } from "./RegionTopicStorage.js"
import { RoundTally } from "./RoundTally.js"
import { beginAppenderRound, endAppenderRound } from "./SequencerLease.js"
import { orderTopic, workLeft } from "./SequencerRound.js"
import { type OrderSettings, orderSettings, TopicOrder } from "./TopicOrder.js"

/** What an appender's attempt to order its topic came to. */
export const AppenderRound = {
  /** It ordered everything committed to the topic's PBRs: nobody needs waking to order it. */
  ordered: 0,
  /** It did not run a round, or left something for the head (a held batch, a full GOI, more than one round's worth): ring the head. */
  head: 1
} as const
export type AppenderRound = (typeof AppenderRound)[keyof typeof AppenderRound]

export interface AppenderRounds {
  /**
   * After this turn's appends to the `topics`: orders them here where this process may (see the
   * module's note), in one round marker for the turn and one ring after it. `head` if any is left
   * to the head.
   */
  readonly order: (topics: Iterable<TopicInfo>) => AppenderRound
  /** The topic was deleted: its cached order goes. */
  readonly forget: (info: TopicInfo) => void
}

/** Whether the head keeps the topic to itself now: batches held (their deadlines are the head's) or its GOI full. */
const headsTopic = (
  region: CxlMemoryShape,
  area: LogArea,
  orders: OrderLineView,
  sequencerLines: SequencerLineView,
  topic: TopicOrder
): boolean => {
  const orderLine = area.orderLine(topic.info.id)
  region.invalidate(orderLine, LINE_BYTES)
  if (orders.stalled(orderLine) !== 0) return true
  for (const b of topic.storage.lanes()) {
    const line = area.sequencerLine(topic.info.id, b)
    region.invalidate(line, LINE_BYTES)
    if (sequencerLines.held(line) > 0) return true
  }
  return false
}

/** Rings who waits for what the turn's rounds moved (readers, ACK trackers of the brokers whose batches they ordered), this process's own waiters re-checked in place. */
const ringAfter = (v: RegionViews, doorbell: DoorbellShape, tally: RoundTally): void => {
  if (tally.movedSessions()) ringEveryone(v.region, v.area, doorbell)
  else ringWaiters(v.region, v.area, doorbell, (b) => tally.batches[b] > 0)
  doorbell.poke()
}

export const appenderRounds = (
  region: CxlMemoryShape,
  area: LogArea,
  doorbell: DoorbellShape,
  options: SequencerOptions = {}
): AppenderRounds => {
  const lease = new LeaseLineView(region)
  const orders = new OrderLineView(region)
  const sequencerLines = new SequencerLineView(region)
  const settings: OrderSettings = orderSettings(area.config, options)
  const views = regionViews(region, area, undefined, 0)
  const topics = new Map<number, TopicOrder>()
  const enabled = region.coherence === "coherent"

  /** The topic's order as this process knows it; a new one takes the region's state at its first round (`seenRounds` matches no count). */
  const topicOrder = (info: TopicInfo): TopicOrder => {
    let topic = topics.get(info.id)
    if (topic === undefined || topic.info.generation !== info.generation) {
      topic = new TopicOrder(info, new RegionTopicStorage(views, info), settings)
      topic.seenRounds = Number.NaN
      topics.set(info.id, topic)
    }
    return topic
  }

  /** What the turn's rounds published, rung once after them (a broker writing a thousand topics rang for each). */
  const turn = new RoundTally(area.config.maxBrokers)
  let published = false

  /** Orders one topic inside the turn's marker: whether the head must still look at it. */
  const orderOne = (topic: TopicOrder, nowMs: number): boolean => {
    if (orderTopic(topic, nowMs, settings, false)) {
      published = true
      turn.add(topic.tally)
    }
    logAppenderRounds.unsafeUpdate(1, [])
    if (topic.tally.messages > 0) logAppenderMessagesOrdered.unsafeUpdate(topic.tally.messages, [])
    return topic.tally.held > 0 || topic.tally.stalled || topic.tally.fenced > 0 || workLeft(topic)
  }

  const order = (infos: Iterable<TopicInfo>): AppenderRound => {
    let head = false
    let epoch: number | undefined
    const nowMs = Date.now()
    turn.reset()
    published = false
    try {
      for (const info of infos) {
        if (!enabled || info.replicationFactor !== 1) {
          head = true
          continue
        }
        const topic = topicOrder(info)
        if (headsTopic(region, area, orders, sequencerLines, topic)) {
          head = true
          continue
        }
        // The marker is taken once for the turn, at its first topic to order; another round inside it leaves the rest to the head.
        if (epoch === undefined) {
          epoch = beginAppenderRound(lease, nowMs)
          if (epoch === undefined) return AppenderRound.head
          views.epoch = epoch
        }
        if (orderOne(topic, nowMs)) head = true
      }
    } finally {
      if (epoch !== undefined) endAppenderRound(lease)
    }
    if (published) ringAfter(views, doorbell, turn)
    return head ? AppenderRound.head : AppenderRound.ordered
  }
  return {
    order,
    forget: (info) => {
      if (topics.get(info.id)?.info.generation === info.generation) topics.delete(info.id)
    }
  }
}
