/** Percentiles of latency samples (µs), for summaries and benchmarks. */
export const percentile = (sorted: ArrayLike<number>, p: number): number =>
  sorted.length === 0 ? Number.NaN : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!

/** The latency at every percentile 0, 1, …, 100 (a CDF with 101 points; empty without samples). */
export const quantiles = (samples: ArrayLike<number>): Array<number> => {
  const sorted = Float64Array.from(samples).sort()
  return sorted.length === 0 ? [] : Array.from({ length: 101 }, (_, p) => Math.round(percentile(sorted, p) * 10) / 10)
}

export const summarize = (samples: ArrayLike<number>) => {
  const sorted = Float64Array.from(samples).sort()
  return { p50: percentile(sorted, 50), p99: percentile(sorted, 99), count: sorted.length }
}
