/**
 * The head (coordinator + sequencer) as the other roles see it: alive while it holds an
 * unexpired sequencer lease in the superblock and its process runs. A role that waits on the
 * head — a reader for the next batch, a broker for ordering, any process for its coordinator to
 * answer its join or a call after it — waits at most `CXLOG_HEAD_LOST_MS` past the moment the head became
 * unavailable, then fails with `HeadUnavailable`. The bound leaves a standby head (which takes
 * over a lapsed lease) time to do so.
 */
import { Config, Schema } from "effect"
import { settingConfig } from "../../Settings.js"
import { HEAD_WATCH_SETTINGS, SEQUENCER_SETTINGS } from "./LogSettings.js"

/**
 * Why the head is unavailable: its process exited, its lease lapsed (a stuck head), it released it,
 * or there never was one; or, said by the head itself, its lease lapsed before it read the change
 * asked of it, which it refused when it ran again (`lapse-refused`: the change was not made).
 */
export const HeadState = Schema.Literal("exited", "lease-lapsed", "released", "never-started", "lapse-refused")
export type HeadState = typeof HeadState.Type

export class HeadUnavailable extends Schema.TaggedError<HeadUnavailable>()("HeadUnavailable", {
  region: Schema.String,
  /** The head's pid (the last one this process saw when the lease no longer names one); 0 if none was ever seen. */
  pid: Schema.Number,
  epoch: Schema.Number,
  state: HeadState,
  /** How long the head has been unavailable. */
  lapsedMs: Schema.Number,
  boundMs: Schema.Number,
  /** What the failing wait was waiting for. */
  waitingFor: Schema.String
}) {
  override get message() {
    const who = this.pid > 0 ? `pid ${this.pid}, epoch ${this.epoch}` : "no pid known"
    if (this.state === "lapse-refused") {
      return `the head of region ${this.region} (${who}) refused what was sent to it (waiting for ${this.waitingFor}): ` +
        `its sequencer lease had lapsed for ${Math.round(this.lapsedMs)} ms (its process stopped or stalled) before ` +
        `it read the request, so its caller may have given up on it; nothing was changed, and the head serves again: ask again`
    }
    const why = this.state === "exited"
      ? "its process is gone"
      : this.state === "lease-lapsed"
      ? "its sequencer lease lapsed (the process is stuck)"
      : this.state === "released"
      ? "it stopped and released its lease"
      : "no head has held the sequencer lease yet"
    // Bound 0: what asked does not wait for a head (a topic change through a broker).
    const bound = this.boundMs === 0 ? "not waited for" : `bound ${this.boundMs} ms, CXLOG_HEAD_LOST_MS`
    // A region some head served is carried on by a head started on it; one no head has held yet is its creator's to start.
    const remedy = this.state === "never-started"
      ? ""
      : `; to carry on with the region, start a head on it: cxlog head --attach --region ${this.region}`
    return `the head of region ${this.region} (${who}) is unavailable: ${why}, for ${Math.round(this.lapsedMs)} ms ` +
      `(${bound}), while waiting for ${this.waitingFor}${remedy}`
  }
}

/** Extra time a standby gets after the lease (a few seconds). */
const HEAD_LOST_MARGIN_MS = 3_000

/** `CXLOG_HEAD_LOST_MS`, by default the sequencer lease (`CXLOG_SEQUENCER_LEASE_MS`) plus 3 s. */
export const headLostMsConfig: Config.Config<number> = Config.all({
  explicit: settingConfig(HEAD_WATCH_SETTINGS.settings.headLostMs),
  leaseMs: settingConfig(SEQUENCER_SETTINGS.settings.leaseMs)
}).pipe(Config.map(({ explicit, leaseMs }) => explicit ?? leaseMs + HEAD_LOST_MARGIN_MS))
