/**
 * Every cxlog counter and histogram, declared in one place. Names are `cxlog_<area>_<what>`.
 * Each area keeps its own block below.
 */
import { Metric, MetricBoundaries } from "effect"

/** Latency boundaries in microseconds, 1 µs to ~1 s, exponential. */
export const latencyMicros = MetricBoundaries.exponential({ start: 1, factor: 2, count: 21 })

// ---- doorbell -------------------------------------------------------------------------
export const doorbellParks = Metric.counter("cxlog_doorbell_parks", { description: "native futex parks", incremental: true })

// ---- broker and publisher (TCP data plane) --------------------------------------------
export const brokerConnections = Metric.gauge("cxlog_broker_connections", { description: "open publisher connections" })
export const brokerBatches = Metric.counter("cxlog_broker_batches", { description: "batches received and appended", incremental: true })
export const brokerBytes = Metric.counter("cxlog_broker_bytes", { description: "batch payload bytes appended", incremental: true })
export const brokerRejected = Metric.counter("cxlog_broker_rejected", { description: "connections closed with an error frame (tag: code)", incremental: true })
export const brokerAckFrames = Metric.counter("cxlog_broker_ack_frames", { description: "ACK frames sent", incremental: true })
export const brokerFencedFrames = Metric.counter("cxlog_broker_fenced_frames", { description: "SessionFenced frames sent", incremental: true })
export const publisherBatches = Metric.counter("cxlog_publisher_batches", { description: "batches sealed", incremental: true })
export const publisherResends = Metric.counter("cxlog_publisher_resends", { description: "batches sent again after a connection failure or a fence", incremental: true })
export const publisherFenced = Metric.counter("cxlog_publisher_sessions_fenced", { description: "sessions fenced (a new epoch replayed the unacked suffix)", incremental: true })
export const publisherAckLatency = Metric.histogram("cxlog_publisher_ack_latency_us", latencyMicros, "seal-to-ack latency per batch (µs)")

// ---- rings and rpc --------------------------------------------------------------------
export const ringBackpressureWaits = Metric.counter("cxlog_ring_backpressure_waits", {
  description: "times a ring writer waited for readers to free space",
  incremental: true
})
export const ringReadersReaped = Metric.counter("cxlog_ring_readers_reaped", { description: "reader slots reaped", incremental: true })
export const ringCorruptions = Metric.counter("cxlog_ring_corruptions", { description: "corrupt ring frames or lines seen by readers", incremental: true })
export const rpcCalls = Metric.counter("cxlog_rpc_calls", { description: "RPC calls made", incremental: true })
export const rpcTimeouts = Metric.counter("cxlog_rpc_timeouts", { description: "RPC calls that timed out", incremental: true })
export const rpcRejectedRequests = Metric.counter("cxlog_rpc_rejected_requests", {
  description: "RPC requests a server could not decode (answered with a typed error when addressable)",
  incremental: true
})
