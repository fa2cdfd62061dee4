/**
 * Every cxlog counter and histogram, declared in one place. Names are `cxlog_<area>_<what>`.
 * Each area keeps its own block below.
 */
import { Metric, MetricBoundaries, type MetricKey, type MetricLabel } from "effect"

/** Latency boundaries in microseconds, 1 µs to 2^19 µs (about half a second), exponential; slower ones count in +Inf. */
export const latencyMicros = MetricBoundaries.exponential({ start: 1, factor: 2, count: 21 })

// ---- doorbell -------------------------------------------------------------------------
export const doorbellParks = Metric.counter("cxlog_doorbell_parks", {
  description: "doorbell parks (the waiting loop returned to the event loop until a wake)",
  incremental: true
})

// ---- broker and publisher (TCP data plane) --------------------------------------------
export const brokerConnections = Metric.gauge("cxlog_broker_connections", { description: "open publisher connections" })
export const brokerBatches = Metric.counter("cxlog_broker_batches", {
  description: "batches received and appended",
  incremental: true
})
export const brokerBytes = Metric.counter("cxlog_broker_bytes", {
  description: "batch payload bytes appended",
  incremental: true
})
export const brokerRejected = Metric.counter("cxlog_broker_rejected", {
  description: "connections closed with an error frame (tag: code)",
  incremental: true
})
export const brokerAckFrames = Metric.counter("cxlog_broker_ack_frames", {
  description: "ACK frames sent",
  incremental: true
})
export const brokerFencedFrames = Metric.counter("cxlog_broker_fenced_frames", {
  description: "SessionFenced frames sent",
  incremental: true
})
export const publisherBatches = Metric.counter("cxlog_publisher_batches", {
  description: "batches sealed",
  incremental: true
})
export const publisherResends = Metric.counter("cxlog_publisher_resends", {
  description: "batches sent again after a connection failure or a fence",
  incremental: true
})
export const publisherFenced = Metric.counter("cxlog_publisher_sessions_fenced", {
  description: "sessions fenced (a new epoch replayed the unacked suffix)",
  incremental: true
})
export const publisherAckLatency = Metric.histogram(
  "cxlog_publisher_ack_latency_us",
  latencyMicros,
  "seal-to-ack latency per batch (µs)"
)
export const publisherAckedMessages = Metric.counter("cxlog_publisher_acked_messages", {
  description: "messages acknowledged",
  incremental: true
})
export const publisherAckedBytes = Metric.counter("cxlog_publisher_acked_bytes", {
  description: "batch payload bytes acknowledged",
  incremental: true
})
export const brokerUnordered = Metric.gauge("cxlog_broker_unordered_batches", {
  description: "batches this broker appended that the sequencer has not consumed yet (read at scrape)"
})

// ---- rings and rpc --------------------------------------------------------------------
export const ringBackpressureWaits = Metric.counter("cxlog_ring_backpressure_waits", {
  description: "times a ring writer waited for readers to free space",
  incremental: true
})
export const ringReadersReaped = Metric.counter("cxlog_ring_readers_reaped", {
  description: "reader slots reaped",
  incremental: true
})
export const ringCorruptions = Metric.counter("cxlog_ring_corruptions", {
  description: "corrupt ring frames or lines seen by readers",
  incremental: true
})
export const RING_OCCUPANCY = "cxlog_ring_occupancy_bytes"
export const ringOccupancy = Metric.gauge(RING_OCCUPANCY, {
  description: "bytes a ring's slowest attached reader has not processed yet (tag: ring; read at scrape)"
})
export const barrierDuration = Metric.histogram(
  "cxlog_barrier_duration_us",
  latencyMicros,
  "barrier rounds from the first arrival to the release, as the coordinator saw them (µs; tag: mode)"
)
export const rpcCalls = Metric.counter("cxlog_rpc_calls", { description: "RPC calls made", incremental: true })
export const rpcTimeouts = Metric.counter("cxlog_rpc_timeouts", {
  description: "RPC calls that timed out",
  incremental: true
})
export const rpcDroppedReplies = Metric.counter("cxlog_rpc_dropped_replies", {
  description:
    "RPC replies and notices dropped for finding no room on the reply ring within its bound (a stalled reader)",
  incremental: true
})
export const rpcRejectedRequests = Metric.counter("cxlog_rpc_rejected_requests", {
  description: "RPC requests a server could not decode (answered with a typed error when addressable)",
  incremental: true
})

// ---- log core: append and sequencer ---------------------------------------------------
export const logAppendBatches = Metric.counter("cxlog_log_append_batches", {
  description: "batches appended into PBRs",
  incremental: true
})
export const logAppendBytes = Metric.counter("cxlog_log_append_bytes", {
  description: "payload bytes appended into Blogs",
  incremental: true
})
export const logRingFullWaits = Metric.counter("cxlog_log_ring_full_waits", {
  description: "appends that waited for PBR or Blog room (backpressure)",
  incremental: true
})
export const logConsumerCutOffs = Metric.counter("cxlog_log_consumer_cut_offs", {
  description: "named consumers cut off: their hold kept appends waiting for room past CXLOG_CONSUMER_HOLD_MS",
  incremental: true
})
export const logAppenderRounds = Metric.counter("cxlog_log_appender_rounds", {
  description: "sequencer rounds this process ran itself after its appends (no process woken to order them)",
  incremental: true
})
export const logAppenderMessagesOrdered = Metric.counter("cxlog_log_appender_messages_ordered", {
  description:
    "messages ordered by this process's own rounds (the head's cxlog_sequencer_messages_ordered counts the rest)",
  incremental: true
})
export const sequencerRounds = Metric.counter("cxlog_sequencer_rounds", {
  description: "sequencer rounds run (every topic scanned once)",
  incremental: true
})
export const sequencerBatchesOrdered = Metric.counter("cxlog_sequencer_batches_ordered", {
  description: "batches ordered (tag: broker)",
  incremental: true
})
export const sequencerMessagesOrdered = Metric.counter("cxlog_sequencer_messages_ordered", {
  description: "messages ordered (tag: broker)",
  incremental: true
})
export const sequencerDuplicates = Metric.counter("cxlog_sequencer_duplicates", {
  description: "duplicate batches dropped (still acknowledged)",
  incremental: true
})
export const sequencerHeld = Metric.gauge("cxlog_sequencer_held", {
  description: "batches held behind a mode-5 gap now"
})
export const sequencerFencedSessions = Metric.counter("cxlog_sequencer_fenced_sessions", {
  description: "sessions fenced by the hold timeout",
  incremental: true
})
export const sequencerLapsedSessions = Metric.counter("cxlog_sequencer_lapsed_sessions", {
  description:
    "sessions lapsed (orders 0/2/4): ended with batches ordered above a gap, or their line left torn by a killed head; their publishers are told unknown-session",
  incremental: true
})
export const sequencerDropped = Metric.counter("cxlog_sequencer_dropped", {
  description: "batches not ordered: of fenced sessions, refused (session table full) or corrupt",
  incremental: true
})
export const sequencerGoiFullWaits = Metric.counter("cxlog_sequencer_goi_full_waits", {
  description: "rounds that found a GOI full (registered subscribers behind)",
  incremental: true
})

// ---- durable tier ---------------------------------------------------------------------
export const segmentRetentionFailures = Metric.counter("cxlog_segment_retention_failures", {
  description: "retention passes that could not delete a segment (tag: stream); tried again at the next pass",
  incremental: true
})

// ---- readers --------------------------------------------------------------------------
export const readerMessages = Metric.counter("cxlog_reader_messages", {
  description: "messages delivered to a subscriber (tag: topic)",
  incremental: true
})
export const readerBatches = Metric.counter("cxlog_reader_batches", {
  description: "batches delivered to a subscriber (tag: topic)",
  incremental: true
})
export const READER_LAG = "cxlog_reader_lag_messages"
export const readerLag = Metric.gauge(READER_LAG, {
  description: "messages in a topic's total order a subscriber has not read yet (tag: topic; read at scrape)"
})

// ---- mirror (a topic into NATS JetStream) ------------------------------------------------
export const mirrorOffset = Metric.gauge("cxlog_mirror_offset", {
  description:
    "the first offset not yet in the JetStream stream: every offset below it is there once (tag: topic, stream)"
})
export const mirrorLagMessages = Metric.gauge("cxlog_mirror_lag_messages", {
  description: "offsets of the topic not yet in the stream (tag: topic, stream; updated every status interval)"
})
export const mirrorLagSeconds = Metric.gauge("cxlog_mirror_lag_seconds", {
  description:
    "age of the oldest message not yet in the stream, 0 when caught up (tag: topic, stream; updated every status interval)"
})
export const mirrorUnavailable = Metric.gauge("cxlog_mirror_unavailable", {
  description:
    "1 while JetStream does not take the mirror's messages (mirror-unavailable: retrying), else 0 (tag: topic, stream)"
})
export const mirrorRetries = Metric.counter("cxlog_mirror_retries", {
  description:
    "times the mirror reconnected and resumed from the stream's last message after a failure (tag: topic, stream)",
  incremental: true
})
export const mirrorPublishLatency = Metric.histogram(
  "cxlog_mirror_publish_latency_us",
  latencyMicros,
  "JetStream publish to ack, per message (µs; tag: topic, stream)"
)

// ---- what each role serves ------------------------------------------------------------
const controlPlane = [
  ringBackpressureWaits,
  ringReadersReaped,
  ringCorruptions,
  ringOccupancy,
  rpcCalls,
  rpcTimeouts,
  rpcDroppedReplies,
  rpcRejectedRequests
]
const readers = [readerMessages, readerBatches, readerLag]

// ---- consumer groups (read from each group's object at scrape, by the head) ----------------
export const groupMembers = Metric.gauge("cxlog_group_members", {
  description: "live members of a consumer group (tag: group; read at scrape)"
})
export const groupPending = Metric.gauge("cxlog_group_pending", {
  description: "messages a group handed out and not settled (tag: group; read at scrape)"
})
export const groupOldestPendingAge = Metric.gauge("cxlog_group_oldest_pending_age_ms", {
  description: "how long ago the oldest pending message was first delivered, 0 with none (tag: group; read at scrape)"
})
export const groupLag = Metric.gauge("cxlog_group_lag_messages", {
  description: "messages of the group's topic not handed out yet (tag: group; read at scrape)"
})
export const groupAcked = Metric.gauge("cxlog_group_acked", {
  description: "messages the group's members acked, since it was created (tag: group; read at scrape; only goes up)"
})
export const groupRedeliveries = Metric.gauge("cxlog_group_redeliveries", {
  description:
    "deliveries again (nak, ackWait, a member gone), since it was created (tag: group; read at scrape; only goes up)"
})
export const groupDeadLetters = Metric.gauge("cxlog_group_dead_letters", {
  description: "messages sent to the dead letters, since it was created (tag: group; read at scrape; only goes up)"
})
export const groupHoldCutOff = Metric.gauge("cxlog_group_hold_cut_off", {
  description:
    "1 while the group's hold on its topic is cut off (it kept publishers waiting past CXLOG_CONSUMER_HOLD_MS), else 0 (tag: group; read at scrape)"
})
const groups = [
  groupMembers,
  groupPending,
  groupOldestPendingAge,
  groupLag,
  groupAcked,
  groupRedeliveries,
  groupDeadLetters,
  groupHoldCutOff
]

/** A metric as its declaration needs it: asking for its value registers it, as its first update would. */
interface Declarable {
  readonly unsafeValue: (extraTags: ReadonlyArray<MetricLabel.MetricLabel>) => unknown
}

/** The families each role's processes update, by the role's name (its `role` label). */
const roleFamilies: Readonly<Record<string, ReadonlyArray<Declarable>>> = {
  head: [
    doorbellParks,
    ...controlPlane,
    barrierDuration,
    sequencerRounds,
    sequencerBatchesOrdered,
    sequencerMessagesOrdered,
    sequencerDuplicates,
    sequencerHeld,
    sequencerFencedSessions,
    sequencerLapsedSessions,
    sequencerDropped,
    sequencerGoiFullWaits,
    segmentRetentionFailures,
    ...groups
  ],
  broker: [
    doorbellParks,
    ...controlPlane,
    brokerConnections,
    brokerBatches,
    brokerBytes,
    brokerRejected,
    brokerAckFrames,
    brokerFencedFrames,
    brokerUnordered,
    logAppendBatches,
    logAppendBytes,
    logRingFullWaits,
    logConsumerCutOffs,
    logAppenderRounds,
    logAppenderMessagesOrdered,
    ...readers
  ],
  publisher: [
    publisherBatches,
    publisherResends,
    publisherFenced,
    publisherAckLatency,
    publisherAckedMessages,
    publisherAckedBytes
  ],
  subscriber: [doorbellParks, ...controlPlane, ...readers],
  mirror: [
    doorbellParks,
    ...controlPlane,
    ...readers,
    mirrorOffset,
    mirrorLagMessages,
    mirrorLagSeconds,
    mirrorUnavailable,
    mirrorRetries,
    mirrorPublishLatency
  ]
}

/**
 * Declares every family of `role` at zero, as Prometheus clients do, so its endpoint serves
 * them all from the first scrape (rate() and dashboards need a series before the first event).
 * A family whose series carry a label (a topic, a broker) gets one series without it, at zero,
 * which the endpoint serves until the family has series of its own. Values already there are
 * left as they are.
 */
export const declareRoleFamilies = (role: string | undefined): void => {
  for (const metric of (role === undefined ? undefined : roleFamilies[role]) ?? []) metric.unsafeValue([])
}

// ---- values read at scrape time -------------------------------------------------------
const samplers = new Set<() => void>()

/**
 * Gauges that are read rather than pushed (a ring's occupancy, a reader's lag): `sample`
 * updates them and runs before every export, so a stalled component still shows its true
 * value. Returns the function that stops sampling.
 */
export const sampleOnScrape = (sample: () => void): () => void => {
  samplers.add(sample)
  return () => void samplers.delete(sample)
}

/**
 * Effect's registry never drops a series, so one tagged with a named object deleted since (a
 * consumer group) would keep its last values there for good: a scrape leaves out every series
 * some `shown` registered here says no to. Returns the function that stops filtering.
 */
const seriesFilters = new Set<(key: MetricKey.MetricKey.Untyped) => boolean>()

export const showOnScrape = (shown: (key: MetricKey.MetricKey.Untyped) => boolean): () => void => {
  seriesFilters.add(shown)
  return () => void seriesFilters.delete(shown)
}

/** Series served while held open (`holdSeries`): metric name → its tag's key, and per value how many hold it. */
const heldSeries = new Map<string, { readonly tag: string; readonly holders: Map<string, number> }>()

/**
 * Holds the series of `name` tagged `tag`=`value` served until the returned function is called:
 * a gauge read from something that closes (a cursor on a topic, a ring's writer) is served while
 * one such is open in this process, then left out, where its last value would stay as if current.
 */
export const holdSeries = (name: string, tag: string, value: string): () => void => {
  let held = heldSeries.get(name)
  if (held === undefined) {
    held = { tag, holders: new Map() }
    heldSeries.set(name, held)
  }
  const { holders } = held
  holders.set(value, (holders.get(value) ?? 0) + 1)
  let released = false
  return () => {
    if (released) return
    released = true
    const left = holders.get(value)! - 1
    if (left === 0) holders.delete(value)
    else holders.set(value, left)
  }
}

/** Whether a scrape serves the series of `key`: held open if it is a held one, and no filter says no. */
export const isShownOnScrape = (key: MetricKey.MetricKey.Untyped): boolean => {
  const held = heldSeries.get(key.name)
  const tag = held === undefined ? undefined : key.tags.find((label) => label.key === held.tag)
  if (tag !== undefined && !held!.holders.has(tag.value)) return false
  for (const shown of seriesFilters) if (!shown(key)) return false
  return true
}

/**
 * Runs every registered sampler (the exporter calls it before reading the registry). One that
 * throws is dropped, so it fails one scrape, not every scrape after; the others still run, and
 * the first error is thrown once they have.
 */
export const runSamplers = (): void => {
  let failure: { readonly error: unknown } | undefined
  for (const sample of samplers) {
    try {
      sample()
    } catch (error) {
      samplers.delete(sample)
      failure ??= { error }
    }
  }
  if (failure !== undefined) throw failure.error
}
