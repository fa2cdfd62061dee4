/**
 * Each stamped message's ACK latency from its `publish` call to its ACK, the points `cxlog
 * bench` takes for every system (the peers' PeerLoad.ts takes the same): one clock reading
 * when due messages are handed to the publisher together, and one when the publisher says a
 * batch of them is acknowledged (`PublisherOptions.onAcknowledged`). Only the measured
 * messages are timed; a warm-up's are not.
 */
import type { MessageRange } from "../../services/net/Publisher.js"

export interface MessageClock {
  /** From now on, times messages `from` … `from + count - 1` (publisher message numbers). */
  readonly measure: (from: number, count: number) => void
  /** Message `seq` was handed to the publisher at `at` (performance.now() ms). */
  readonly published: (seq: number, at: number) => void
  /** The publisher's `onAcknowledged`. */
  /** The messages of `range` were acknowledged at `at` (performance.now() ms; now when not given). */
  readonly acknowledged: (range: Pick<MessageRange, "from" | "count">, at?: number) => void
  /** The measured messages' latencies in µs, one per message acknowledged, in message order. */
  readonly latenciesUs: () => Float64Array
}

export const makeMessageClock = (): MessageClock => {
  let first = 0
  let publishedAt = new Float64Array(0)
  let latencyUs = new Float64Array(0)
  let acked = new Uint8Array(0)
  return {
    measure: (from, count) => {
      first = from
      publishedAt = new Float64Array(count)
      latencyUs = new Float64Array(count)
      acked = new Uint8Array(count)
    },
    published: (seq, at) => {
      const i = seq - first
      if (i >= 0 && i < publishedAt.length) publishedAt[i] = at
    },
    acknowledged: ({ count, from }, at = performance.now()) => {
      const start = Math.max(from - first, 0)
      const end = Math.min(from + count - first, publishedAt.length)
      for (let i = start; i < end; i++) {
        latencyUs[i] = (at - publishedAt[i]!) * 1000
        acked[i] = 1
      }
    },
    latenciesUs: () => latencyUs.filter((_, i) => acked[i] === 1)
  }
}
