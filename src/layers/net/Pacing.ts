/**
 * A publisher's pacing record: the adaptive send window's state, which PublisherState holds and
 * PublisherPacing.ts moves.
 */

/** Bounds and state of the send window; the comments name PublisherPacing.ts's constants. */
export interface Pacing {
  /** False: the window stays at the cap (`adaptiveWindow: false`, `--fixed-window`). */
  readonly adaptive: boolean
  readonly cap: number
  readonly floor: number
  /** Doubling per verdict until the queue first reaches ALPHA. */
  slowStart: boolean
  /** The queue left [ALPHA, BETA]: the window moves until it is back near the middle. */
  correcting: boolean
  /** The shortest seal-to-ACK time seen since the last probe (ms; Infinity: none yet). */
  base: number
  /** Batches that left the send window so far, when the round began, and when it ends. */
  left: number
  roundFrom: number
  roundEnd: number
  /** The round's timed batches and the sum of their times (ms). */
  roundTimed: number
  roundSum: number
  /** The window was full when one of the round's batches left (only then may it grow). */
  limited: boolean
  /** The window changed: the next round is not judged (its batches were sent under the old one). */
  settling: boolean
  /** When the base is next measured (performance.now() ms). */
  probeAt: number
  /** Probing since (batches sealed from then on met no queue); Infinity: not probing. */
  probeFrom: number
  probeMin: number
  probeTimed: number
  /** The window to return to after the probe. */
  resume: number
}
