/**
 * The metric families each role serves from its first scrape (src/Metrics.ts; docs/observability.md,
 * "The metrics"), written out on their own so a family a role stops declaring fails a test.
 */
const controlPlane = [
  "cxlog_ring_backpressure_waits",
  "cxlog_ring_readers_reaped",
  "cxlog_ring_corruptions",
  "cxlog_ring_occupancy_bytes",
  "cxlog_rpc_calls",
  "cxlog_rpc_timeouts",
  "cxlog_rpc_dropped_replies",
  "cxlog_rpc_rejected_requests"
]
const readers = ["cxlog_reader_messages", "cxlog_reader_batches", "cxlog_reader_lag_messages"]

export const roleFamilyNames: Record<string, ReadonlyArray<string>> = {
  head: [
    "cxlog_doorbell_parks",
    ...controlPlane,
    "cxlog_barrier_duration_us",
    "cxlog_sequencer_rounds",
    "cxlog_sequencer_batches_ordered",
    "cxlog_sequencer_messages_ordered",
    "cxlog_sequencer_duplicates",
    "cxlog_sequencer_held",
    "cxlog_sequencer_fenced_sessions",
    "cxlog_sequencer_lapsed_sessions",
    "cxlog_sequencer_dropped",
    "cxlog_sequencer_goi_full_waits",
    "cxlog_segment_retention_failures",
    "cxlog_group_members",
    "cxlog_group_pending",
    "cxlog_group_oldest_pending_age_ms",
    "cxlog_group_lag_messages",
    "cxlog_group_acked",
    "cxlog_group_redeliveries",
    "cxlog_group_dead_letters"
  ],
  broker: [
    "cxlog_doorbell_parks",
    ...controlPlane,
    "cxlog_broker_connections",
    "cxlog_broker_batches",
    "cxlog_broker_bytes",
    "cxlog_broker_rejected",
    "cxlog_broker_ack_frames",
    "cxlog_broker_fenced_frames",
    "cxlog_broker_unordered_batches",
    "cxlog_log_append_batches",
    "cxlog_log_append_bytes",
    "cxlog_log_ring_full_waits",
    "cxlog_log_consumer_cut_offs",
    ...readers
  ],
  publisher: [
    "cxlog_publisher_batches",
    "cxlog_publisher_resends",
    "cxlog_publisher_sessions_fenced",
    "cxlog_publisher_ack_latency_us",
    "cxlog_publisher_acked_messages",
    "cxlog_publisher_acked_bytes"
  ],
  subscriber: ["cxlog_doorbell_parks", ...controlPlane, ...readers]
}
