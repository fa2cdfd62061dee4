/**
 * What a sequencer round did (`RoundTally`), in one topic or over all of them, and how a
 * round's tally is recorded in the metrics.
 */
import { Metric } from "effect"
import {
  sequencerBatchesOrdered,
  sequencerDropped,
  sequencerDuplicates,
  sequencerFencedSessions,
  sequencerGoiFullWaits,
  sequencerHeld,
  sequencerLapsedSessions,
  sequencerMessagesOrdered,
  sequencerRounds
} from "../../Metrics.js"
import type { SequencerRound } from "../../services/log/Sequencer.js"

/** What one round did, in one topic or over all of them. */
export class RoundTally {
  ordered = 0
  messages = 0
  duplicates = 0
  held = 0
  fenced = 0
  dropped = 0
  /** Close markers handled. */
  markers = 0
  released = 0
  lapsed = 0
  stalled = false
  /** Topics looked at (a round's total only: see `SequencerRound.topicsLooked`). */
  looked = 0
  /** Per broker. */
  readonly batches: Float64Array
  readonly batchMessages: Float64Array
  constructor(brokers: number) {
    this.batches = new Float64Array(brokers)
    this.batchMessages = new Float64Array(brokers)
  }
  reset(): void {
    this.ordered =
      this.messages =
      this.duplicates =
      this.held =
      this.fenced =
      this.dropped =
      this.markers =
      this.released =
      this.lapsed =
      this.looked =
        0
    this.stalled = false
    this.batches.fill(0)
    this.batchMessages.fill(0)
  }
  add(t: RoundTally): void {
    this.ordered += t.ordered
    this.messages += t.messages
    this.duplicates += t.duplicates
    this.held += t.held
    this.fenced += t.fenced
    this.dropped += t.dropped
    this.markers += t.markers
    this.released += t.released
    this.lapsed += t.lapsed
    this.stalled ||= t.stalled
    for (let b = 0; b < this.batches.length; b++) {
      this.batches[b] += t.batches[b]
      this.batchMessages[b] += t.batchMessages[b]
    }
  }
  /**
   * Whether the round may have moved a session frontier other than by ordering batches (a fence,
   * a release, a drop, a duplicate, a close marker): then every broker's ACK trackers look again,
   * not only those of the brokers in `batches`.
   */
  movedSessions(): boolean {
    return this.duplicates + this.fenced + this.dropped + this.markers + this.released + this.lapsed > 0
  }
  /** Whether the round moved anything (then it is published, and the next round follows at once). */
  moved(): boolean {
    return this.ordered + this.duplicates + this.held + this.fenced + this.dropped + this.markers + this.released +
        this.lapsed > 0
  }
  toRound(): SequencerRound {
    const { ordered, messages, duplicates, held, fenced, dropped, released, lapsed, stalled, looked } = this
    return { ordered, messages, duplicates, held, fenced, dropped, released, lapsed, stalled, topicsLooked: looked }
  }
}

/** Records a round's tally in the metrics, without an Effect per update (it runs every round); tagged metrics are made once. */
export const makeTallyMetrics = (brokers: number): (tally: RoundTally, heldNow: number) => void => {
  const batchesOf = Array.from(
    { length: brokers },
    (_, b) => Metric.tagged(sequencerBatchesOrdered, "broker", String(b))
  )
  const messagesOf = Array.from(
    { length: brokers },
    (_, b) => Metric.tagged(sequencerMessagesOrdered, "broker", String(b))
  )
  return (tally: RoundTally, heldNow: number): void => {
    for (let b = 0; b < brokers; b++) {
      if (tally.batches[b] === 0) continue
      batchesOf[b].unsafeUpdate(tally.batches[b], [])
      messagesOf[b].unsafeUpdate(tally.batchMessages[b], [])
    }
    if (tally.duplicates > 0) sequencerDuplicates.unsafeUpdate(tally.duplicates, [])
    if (tally.fenced > 0) sequencerFencedSessions.unsafeUpdate(tally.fenced, [])
    if (tally.lapsed > 0) sequencerLapsedSessions.unsafeUpdate(tally.lapsed, [])
    if (tally.dropped > 0) sequencerDropped.unsafeUpdate(tally.dropped, [])
    if (tally.stalled) sequencerGoiFullWaits.unsafeUpdate(1, [])
    sequencerHeld.unsafeUpdate(heldNow, [])
    sequencerRounds.unsafeUpdate(1, [])
  }
}
