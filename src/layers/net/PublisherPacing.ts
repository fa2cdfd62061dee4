/**
 * The adaptive send window (#33): delay-based, as TCP Vegas, so a saturating publisher keeps
 * its throughput without the whole cap queued in front of the brokers.
 *
 * Time is cut in rounds: a round ends once the first batch sealed in it has left the send
 * window (one round trip) and at least a window's worth have (an ACK may cover every batch in
 * flight at once). Each batch leaving the window gives its seal-to-ACK time (at ACK 2 its seal
 * to ordered: the disk is the ordered window's); the base is the shortest (a batch that met no
 * queue), the round's time their mean. Of the batches in flight, the share of the round trip
 * spent queued, `queued = inFlight × (1 − base / rtt)`, is what the window adds beyond what the
 * path holds (Vegas's diff). While `queued` stays in [ALPHA, BETA] the window holds; once it
 * leaves the band the window steps halfway towards the middle at each verdict until `queued`
 * is within TOLERANCE of it (hysteresis: noise inside the band moves nothing, and a window
 * pushed out of it comes back to the same size). It grows only when it was full, doubling at
 * first (slow start) until `queued` first reaches ALPHA. A verdict is given every other round:
 * the round after a change still carries batches sent under the window before it.
 *
 * The band is wide on purpose. On a CPU-bound cluster a queue is not only waste: every broker
 * read, sequencer round and ACK frame covers the batches waiting for it. 1 GiB e2e, 2 brokers
 * (2026-11-24, a shared host): a fixed window of 16 cost 2.1-2.6 CPU s/GiB against 1.3-1.5 at
 * 256; a band of 32..64 kept 86 % of the fixed 256's MB/s; 48..96 (a window of 80-95 there) kept
 * it within the host's noise (median pair 0.99, 15 pairs) at 6 % more CPU per GiB, with an ACK
 * p50 of 2.4-5.1 ms against 6.8-15.4; 64..128 saved no CPU that the noise showed.
 *
 * The base only falls between probes, and a path that became slower for good (a longer route,
 * a broker gone) would leave it too low and the window short of the path. So every
 * PROBE_INTERVAL_MS the window drops to its floor until as many batches sealed under it are
 * back (they met no queue): the shortest of their times is the base, and the window returns.
 *
 * Batches sent more than once give no time (Karn): theirs spans a lost connection. The window
 * stays within [floor, cap]: the cap is `maxInFlightBatches` (`--window`), the floor one batch
 * per link (at least 2) so every broker keeps one in flight. At light load nothing changes: a
 * window that is never full never grows, and one batch in flight is under the floor. Per batch
 * the work is a few additions on this record, per round a verdict: no allocation, no timer.
 */
import type { Pacing } from "./Pacing.js"
import type { Batch, PublisherState } from "./PublisherState.js"

/** Queued batches the window holds at while they stay in [ALPHA, BETA]… */
const ALPHA = 48
const BETA = 96
/** …and, once they leave it, steps halfway to the middle at each verdict until within TOLERANCE of it. */
const MIDDLE = (ALPHA + BETA) / 2
const TOLERANCE = (BETA - ALPHA) / 12
/** How often the base is measured again (ms). */
const PROBE_INTERVAL_MS = 10_000

/** A publisher's pacing: adaptive under the cap, or fixed at it. */
export const newPacing = (adaptive: boolean, cap: number, links: number): Pacing => ({
  adaptive,
  cap,
  floor: Math.min(cap, Math.max(2, links)),
  slowStart: true,
  correcting: true,
  base: Infinity,
  left: 0,
  roundFrom: 0,
  roundEnd: 1,
  roundTimed: 0,
  roundSum: 0,
  limited: false,
  settling: false,
  probeAt: performance.now() + PROBE_INTERVAL_MS,
  probeFrom: Infinity,
  probeMin: Infinity,
  probeTimed: 0,
  resume: cap
})

/** The window a publisher starts with: adaptive, ALPHA (a burst of that many at light load goes at once, as before), then slow start. */
export const initialWindow = (p: Pacing): number => (p.adaptive ? Math.min(p.cap, Math.max(p.floor, ALPHA)) : p.cap)

/** `batch` leaves the send window at `now` (before `inFlight` counts it out): its time joins the round's. */
export const paceLeaving = (s: PublisherState, batch: Batch, now: number): void => {
  const p = s.pacing
  if (!p.adaptive) return
  p.left++
  if (s.inFlight >= s.window) p.limited = true
  if (batch.sends > 1) return
  const rtt = now - batch.sealedAt
  p.roundSum += rtt
  p.roundTimed++
  if (rtt < p.base) p.base = rtt
  if (batch.sealedAt >= p.probeFrom) {
    p.probeTimed++
    if (rtt < p.probeMin) p.probeMin = rtt
  }
}

/** After an ACK: a round that has ended gets its verdict (and a probe that is due starts). */
export const paceRound = (s: PublisherState): void => {
  const p = s.pacing
  if (!p.adaptive || p.left < p.roundEnd) return
  const batches = p.left - p.roundFrom
  const timed = p.roundTimed
  const rtt = p.roundSum / timed
  const limited = p.limited
  p.roundFrom = p.left
  p.roundEnd = Math.max(s.counts.batches + 1, p.left + s.window)
  p.roundTimed = 0
  p.roundSum = 0
  p.limited = false
  if (p.probeFrom !== Infinity) return probed(s, p)
  if (p.settling) {
    p.settling = false
  } else if (timed > 0) {
    // In flight: the window, or fewer when it was not full.
    setWindow(s, p, verdict(s.window, p, Math.min(s.window, batches) * (1 - p.base / rtt), limited))
  }
  const now = performance.now()
  if (now >= p.probeAt) {
    p.resume = s.window
    p.probeFrom = now
    p.probeMin = Infinity
    p.probeTimed = 0
    setWindow(s, p, p.floor)
  }
}

/** The next window for `queued` batches waiting in the round just ended (`limited`: the window was full). */
const verdict = (window: number, p: Pacing, queued: number, limited: boolean): number => {
  if (queued > BETA || queued < ALPHA) p.correcting = true
  else if (Math.abs(queued - MIDDLE) <= TOLERANCE) p.correcting = false
  if (!p.correcting) return window
  if (queued > MIDDLE) {
    p.slowStart = false
    return window - Math.ceil((queued - MIDDLE) / 2)
  }
  // A window that was not full says nothing of a larger one.
  if (!limited) return window
  if (p.slowStart && queued < ALPHA) return window * 2
  p.slowStart = false
  return window + Math.ceil((MIDDLE - queued) / 2)
}

/** A probe ends once batches sealed under the floor are back: the shortest of their times is the base. */
const probed = (s: PublisherState, p: Pacing) => {
  if (p.probeTimed < p.floor) return
  p.base = p.probeMin
  p.probeFrom = Infinity
  p.probeAt = performance.now() + PROBE_INTERVAL_MS
  setWindow(s, p, p.resume)
}

const setWindow = (s: PublisherState, p: Pacing, window: number) => {
  const next = Math.min(p.cap, Math.max(p.floor, window))
  if (next === s.window) return
  s.window = next
  p.settling = true
}
