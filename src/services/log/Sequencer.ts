/**
 * Sequencer: the one active process (it holds the lease in the superblock) that scans every
 * broker's PBR of every topic and assigns the global order per the topic's mode, writing
 * GOI entries, the committed frontier, per-broker counters and per-session frontiers into
 * the region. Restarted after a crash, it continues from the region state alone.
 */
import { Config, ConfigError, Context, Data, type Duration, type Effect, Either } from "effect"
import { durationProblem, withMillis } from "../../Durations.js"
import { settingsConfig } from "../../Settings.js"
import { SEQUENCER_SETTINGS } from "./LogSettings.js"

/** What one scan round did, over every topic. */
export interface SequencerRound {
  /** Batches put into the total order. */
  readonly ordered: number
  readonly messages: number
  readonly duplicates: number
  /** Batches newly held behind a gap (mode 5). */
  readonly held: number
  /** Sessions fenced because a gap outlived the hold timeout. */
  readonly fenced: number
  /** Batches dropped without ordering: of fenced sessions, refused (session table full) or corrupt. */
  readonly dropped: number
  /** Sessions released: closed by their publisher, or idle for the session idle time. */
  readonly released: number
  /** Sessions lapsed (orders 0/2/4): batches ordered above a gap, at the gap bound or the hold timeout. */
  readonly lapsed: number
  /** A topic's GOI was full (registered subscribers behind): ordering waits for them. */
  readonly stalled: boolean
  /**
   * Topics the round looked at: over a coherent region those written since the last round and
   * those it left work in (every topic at the once-a-second sweep); elsewhere every topic.
   */
  readonly topicsLooked: number
}

export interface SequencerShape {
  /** The cluster epoch this sequencer took the lease with. */
  readonly epoch: number
  /** Whether it still holds the lease (false once a newer head took it: it is fenced). */
  readonly holdsLease: () => boolean
  /** When its lease expires unless renewed first (ms since the epoch; Infinity for a sequencer with no lease). */
  readonly leaseExpiresAtMs: () => number
  /**
   * Runs `listener` in every renewal that finds the lease expired (this process stopped or stalled
   * past it, and no other head took it over), right after the renewal moved the expiry on, with how
   * long it had been expired. Returns the function that takes the listener off.
   */
  readonly onLapseEnd: (listener: (lapsedMs: number) => void) => () => void
  /** One scan round over every topic (tests and benchmarks drive it directly). */
  readonly step: Effect.Effect<SequencerRound, SequencerLeaseLost>
  /** Rounds until interrupted, parking on the doorbell when idle and renewing the lease. */
  readonly run: Effect.Effect<never, SequencerLeaseLost>
}

export class Sequencer extends Context.Tag("cxlog/Sequencer")<Sequencer, SequencerShape>() {}

export interface SequencerOptions {
  /** How long a mode-5 gap may stay open before its session is fenced. */
  readonly holdTimeoutMs?: number
  /** `holdTimeoutMs` as a duration (`"5 seconds"`, `Duration.seconds(5)`); given both, this one counts. */
  readonly holdTimeout?: Duration.DurationInput
  /**
   * A session with no batch for this long (and nothing held) is released: its line is freed
   * for new sessions and keeps its final frontier for late lookups until reused. A publisher
   * still connected learns it as a fence (it re-registers and resends what was not ordered).
   */
  readonly sessionIdleMs?: number
  /** `sessionIdleMs` as a duration (`"5 seconds"`, `Duration.seconds(5)`); given both, this one counts. */
  readonly sessionIdle?: Duration.DurationInput
  /**
   * Orders 0/2/4: a session with batches ordered above a gap is kept past `sessionIdleMs` (no
   * frontier of its line tells its publisher the truth) until it has had no batch for this long
   * (default 6 × sessionIdleMs; one below sessionIdleMs is SessionGapIdleTooShort); then it lapses: its publisher is told the
   * session is unknown and fails if it has batches not acknowledged (docs/log.md).
   */
  readonly sessionGapIdleMs?: number
  /** `sessionGapIdleMs` as a duration (`"5 seconds"`, `Duration.seconds(5)`); given both, this one counts. */
  readonly sessionGapIdle?: Duration.DurationInput
  /** Lease duration; renewed every third of it. */
  readonly leaseMs?: number
  /** `leaseMs` as a duration (`"5 seconds"`, `Duration.seconds(5)`); given both, this one counts. */
  readonly lease?: Duration.DurationInput
  /** How long to wait for a live holder's lease to expire (a standby); 0 fails at once. */
  readonly waitForLeaseMs?: number
  /** `waitForLeaseMs` as a duration (`"5 seconds"`, `Duration.seconds(5)`); given both, this one counts. */
  readonly waitForLease?: Duration.DurationInput
  /** Batches scanned per broker per round, so a round stays short. */
  readonly maxBatchesPerBroker?: number
  /** Called once, with the time, after the first round that wrote a GOI entry (how long a takeover took). */
  readonly onFirstOrdered?: (atMs: number) => void
}

export const defaultSequencerOptions = {
  holdTimeoutMs: SEQUENCER_SETTINGS.settings.holdTimeoutMs.default,
  sessionIdleMs: SEQUENCER_SETTINGS.settings.sessionIdleMs.default,
  leaseMs: SEQUENCER_SETTINGS.settings.leaseMs.default,
  waitForLeaseMs: 0,
  maxBatchesPerBroker: 256
} as const

/**
 * A gap bound below the idle bound: a session with batches ordered above a gap would be dropped
 * sooner than one without, while its publisher still waits for the gap to close. Refused rather
 * than raised, so the bound in force is the one given.
 */
export class SessionGapIdleTooShort extends Data.TaggedError("SessionGapIdleTooShort")<
  { readonly sessionGapIdleMs: number; readonly sessionIdleMs: number }
> {
  override get message() {
    return `the session gap bound (--session-gap-idle-ms / CXLOG_SESSION_GAP_IDLE_MS) ${this.sessionGapIdleMs} ms is below the session idle bound ` +
      `(--session-idle-ms / CXLOG_SESSION_IDLE_MS) ${this.sessionIdleMs} ms: a session with a gap is kept at least as long as any other; ` +
      `give ${this.sessionIdleMs} or more, or leave it unset (6 × the idle bound)`
  }
}

/** Why each bound must be at least 1 ms, as its setting's `min: 1` (LogSettings.ts) has it. */
const AT_LEAST_ONE_MS = {
  holdTimeoutMs:
    "below 1 nothing is held: a session would be fenced at its first gap, even while the log waits for room",
  sessionIdleMs:
    "below 1 every session would be released at each sweep, between any two of its batches (0 is not \"never\")",
  sessionGapIdleMs: "a session with a gap would never lapse (NaN) or lapse at each sweep",
  leaseMs: "below 1 the lease would lapse as it is taken, and every other process find the head gone"
} as const

/**
 * A hold timeout, session idle or gap bound or lease given in code (or as a duration) that is not a
 * number of milliseconds of at least 1: what `CXLOG_HOLD_TIMEOUT_MS`, `CXLOG_SESSION_IDLE_MS`,
 * `CXLOG_SESSION_GAP_IDLE_MS` and `CXLOG_SEQUENCER_LEASE_MS` refuse, refused where a layer is made
 * too, for a caller that builds it directly.
 */
export class InvalidSequencerOptions extends Data.TaggedError("InvalidSequencerOptions")<{
  readonly option: keyof typeof AT_LEAST_ONE_MS | "waitForLeaseMs"
  readonly value: unknown
  /** Set when the option was given as a duration that is none (`"5 sekonds"`): why, naming it. */
  readonly notDuration?: string
}> {
  override get message() {
    if (this.notDuration !== undefined || this.option === "waitForLeaseMs") {
      return `invalid sequencer options: ${this.notDuration ?? `${this.option} ${String(this.value)}`}`
    }
    const why = AT_LEAST_ONE_MS[this.option]
    return `invalid sequencer options: ${this.option} ${
      String(this.value)
    } is not a number of milliseconds of at least 1 (${why})`
  }
}

/** The options that take a duration under their plain name beside their `…Ms` number form. */
const DURATION_OPTIONS = ["holdTimeout", "sessionIdle", "sessionGapIdle", "lease", "waitForLease"] as const

/**
 * The options, or `InvalidSequencerOptions` when a bound or the lease is not at least 1 ms, or
 * `SessionGapIdleTooShort` when the gap bound given is below the idle bound (defaulted).
 */
export const checkSequencerOptions = <O extends SequencerOptions>(
  given: O
): Either.Either<O, InvalidSequencerOptions | SessionGapIdleTooShort> => {
  // Before `withMillis`, which throws on a value that is no duration.
  for (const name of DURATION_OPTIONS) {
    const notDuration = durationProblem(name, given[name])
    if (notDuration !== undefined) {
      return Either.left(new InvalidSequencerOptions({ option: `${name}Ms`, value: given[name], notDuration }))
    }
  }
  const options = withMillis<SequencerOptions>(given, DURATION_OPTIONS) as O
  for (const option of ["holdTimeoutMs", "sessionIdleMs", "sessionGapIdleMs", "leaseMs"] as const) {
    const value: unknown = options[option]
    // NaN fails `>= 1` too; a JavaScript caller may pass anything.
    if (value !== undefined && !(typeof value === "number" && value >= 1)) {
      return Either.left(new InvalidSequencerOptions({ option, value }))
    }
  }
  const sessionIdleMs = options.sessionIdleMs ?? defaultSequencerOptions.sessionIdleMs
  const { sessionGapIdleMs } = options
  return sessionGapIdleMs !== undefined && sessionGapIdleMs < sessionIdleMs
    ? Either.left(new SessionGapIdleTooShort({ sessionGapIdleMs, sessionIdleMs }))
    : Either.right(options)
}

/**
 * Sequencer options from `CXLOG_HOLD_TIMEOUT_MS`, `CXLOG_SESSION_IDLE_MS`, `CXLOG_SESSION_GAP_IDLE_MS`
 * (unset: 6 × the idle bound; below the idle bound: invalid), `CXLOG_SEQUENCER_LEASE_MS`.
 */
export const sequencerOptionsConfig: Config.Config<SequencerOptions> = settingsConfig(SEQUENCER_SETTINGS.settings).pipe(
  Config.mapOrFail(({ sessionGapIdleMs, ...options }) =>
    Either.mapLeft(
      checkSequencerOptions(sessionGapIdleMs === undefined ? options : { ...options, sessionGapIdleMs }),
      (invalid) => {
        // The environment gives numbers only: never a duration, nor a wait for the lease.
        const setting = invalid._tag === "InvalidSequencerOptions" && invalid.option !== "waitForLeaseMs"
          ? invalid.option
          : "sessionGapIdleMs"
        return ConfigError.InvalidData([SEQUENCER_SETTINGS.settings[setting].env], invalid.message)
      }
    )
  )
)

export class SequencerLeaseHeld
  extends Data.TaggedError("SequencerLeaseHeld")<{ readonly pid: number; readonly expiresAtMs: number }>
{
  override get message() {
    return `the sequencer lease is held by live process ${this.pid} until ${new Date(this.expiresAtMs).toISOString()}`
  }
}

/**
 * A new lease holder's fence found the round marker of an earlier head naming process `pid`,
 * stopped (SIGSTOP, a debugger) for all of `waitedMs`: it may be a head inside a round, which
 * would go on writing once resumed, so this head does not order. Resume or kill that process.
 */
export class SequencerEarlierRoundStopped
  extends Data.TaggedError("SequencerEarlierRoundStopped")<{ readonly pid: number; readonly waitedMs: number }>
{
  override get message() {
    return `process ${this.pid}, named by an earlier head's round marker, has been stopped inside the round for ${this.waitedMs} ms: resume or kill it, then start this head again`
  }
}

export class SequencerLeaseLost
  extends Data.TaggedError("SequencerLeaseLost")<{ readonly epoch: number; readonly holderPid: number }>
{
  override get message() {
    return `this sequencer (epoch ${this.epoch}) lost its lease to process ${this.holderPid}; it stops ordering`
  }
}
