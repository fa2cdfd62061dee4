/**
 * Every cxlog counter and histogram, declared in one place. Names are `cxlog_<area>_<what>`.
 * Each area keeps its own block below.
 */
import { Metric, MetricBoundaries } from "effect"

/** Latency boundaries in microseconds, 1 µs to ~1 s, exponential. */
export const latencyMicros = MetricBoundaries.exponential({ start: 1, factor: 2, count: 21 })

// ---- doorbell -------------------------------------------------------------------------
export const doorbellParks = Metric.counter("cxlog_doorbell_parks", { description: "native futex parks", incremental: true })
