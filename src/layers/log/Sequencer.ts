/**
 * The live Sequencer layer: it orders the region's log (lease in the superblock, state in
 * the log area) with the round in SequencerRound.ts, run by SequencerLoop.ts; the in-process
 * fake is SequencerMemory.ts. Where bytes live is RegionTopicStorage.ts (a topic's PBRs, GOI,
 * session table and lines) and SequencerLease.ts (the lease and the round's fence); here are
 * topic discovery, ringing and the doorbell wait, wired into the layer.
 *
 * Per batch the live sequencer writes, in this order: the GOI entry (sequence word last),
 * the PBR slot's finish line (global seq; commit last). Per round: session lines (seqlock),
 * per-broker sequencer lines (consumed-through = the oldest held slot or the scan cursor),
 * then the topic's committed frontier and progress word, then it rings brokers and
 * listeners. Recovery after a crash trusts only what was committed: it replays the GOI
 * past the published frontier, then rescans every PBR from its consumed-through, skipping
 * slots already finished, so no batch is ordered twice or lost.
 */
import { Effect, Layer, type Scope } from "effect"
import {
  checkSequencerOptions,
  defaultSequencerOptions,
  type InvalidSequencerOptions,
  Sequencer,
  type SequencerEarlierRoundStopped,
  type SequencerLeaseHeld,
  type SequencerOptions,
  type SequencerShape,
  type SessionGapIdleTooShort
} from "../../services/log/Sequencer.js"
import { LogCorrupt, TopicDeleted } from "../../services/log/Topics.js"
import { CxlMemory } from "../../services/region/CxlMemory.js"
import { HolderLinesFull } from "../../services/region/Directory.js"
import { Doorbell, type DoorbellShape } from "../../services/region/Doorbell.js"
import { DirectoryFollower } from "../region/DirectoryFollower.js"
import type { FlushAudit } from "../region/FlushAudit.js"
import type { LogArea } from "./Layout.js"
import { countedWatch, newOccurrence, ringEveryone, ringWaiters } from "./Participants.js"
import { regionHistory, RegionTopicStorage, type RegionViews, regionViews } from "./RegionTopicStorage.js"
import type { RoundTally } from "./RoundTally.js"
import {
  acquireLease,
  beginRound,
  EARLIER_ROUND_WAIT_MS,
  endRound,
  holdsLease,
  leaseLapses,
  leaseLost,
  markReady,
  markWaiting,
  releaseLease,
  renewLease,
  type SequencerLease,
  sequencerLease
} from "./SequencerLease.js"
import { makeSequencerCore } from "./SequencerLoop.js"
import { type LogStorage, publishTopic } from "./SequencerRound.js"
import { readTopic } from "./TopicDescriptors.js"
import { lanesGranted, takeGranted } from "./TopicLanes.js"
import { topicMarks } from "./TopicMarks.js"
import { type OrderSettings, orderSettings, type TopicOrder } from "./TopicOrder.js"
import { type TopicHold, topicPins } from "./TopicPins.js"
import { discovered, recoverTopic } from "./TopicRecovery.js"

export interface SequencerLayerOptions extends SequencerOptions {
  /** Test-only: verify that every GOI entry and PBR finish line is flushed before its commit word. */
  readonly flushAudit?: FlushAudit
  /** Test-only (no flag sets it): how long a new holder waits on an earlier head's round marker naming a live process (`awaitEarlierRound`). Default 60 s. */
  readonly earlierRoundWaitMs?: number
}

/** The region's log: topic discovery, the lease, ringing and the doorbell wait. */
const regionLog = (
  v: RegionViews,
  doorbell: DoorbellShape,
  settings: OrderSettings,
  lease: SequencerLease
): LogStorage => {
  const { region, area } = v
  const directory = new DirectoryFollower(region, area.directory, "topic")
  const pins = topicPins(region, area)
  const marks = topicMarks(region, area)
  /** The topics ordered, by id, each held while it is (TopicPins.ts). */
  const known = new Map<number, TopicHold>()
  /** Ordered topics found deleted, dropped by the next round step. */
  const gone: Array<TopicHold> = []
  /** Topics (by id) created and not discovered yet. */
  const fresh = new Set<number>()

  const drop = (hold: TopicHold) => {
    if (known.get(hold.info.id) !== hold) return
    known.delete(hold.info.id)
    gone.push(hold)
  }

  /** Topics (by id) created and not discovered yet (and ordered ones deleted dropped): one atomic load while the directory has not changed, the changes alone when it has. */
  const newTopics = (): ReadonlyArray<number> => {
    const { created, deleted } = directory.changes()
    for (const gone of deleted) {
      const held = known.get(gone.slot)
      // Generations only grow: a slot's object deleted at this generation is gone with every one before it.
      if (held !== undefined && held.info.generation <= gone.generation) drop(held)
      fresh.delete(gone.slot)
    }
    for (const made of created) {
      const held = known.get(made.slot)
      if (held !== undefined && held.info.generation < made.generation) drop(held)
      if (!known.has(made.slot)) fresh.add(made.slot)
    }
    return fresh.size === 0 ? [] : [...fresh]
  }

  const discoverTopic = (t: number): Effect.Effect<ReadonlyArray<TopicOrder>> => {
    const info = readTopic(region, area, t)
    // Tried again only when its slot changes again.
    fresh.delete(t)
    if (info === undefined) {
      return Effect.as(
        Effect.logError(`sequencer: the topic in directory slot ${t} holds an invalid descriptor; it is not ordered`),
        []
      )
    }
    const hold = pins.hold(info, () => drop(hold as TopicHold))
    // Deleted since it was listed: the next look finds it gone.
    if (hold instanceof TopicDeleted) return Effect.succeed([])
    if (hold instanceof HolderLinesFull) {
      fresh.add(t)
      return Effect.as(Effect.logError(`sequencer: topic ${info.name} is not ordered: ${hold.message}`), [])
    }
    known.set(t, hold)
    const storage = new RegionTopicStorage(v, info)
    const recovered = recoverTopic(info, storage, regionHistory(v, storage), settings)
    // The tail a killed sequencer left moved the frontiers, and the order line names this epoch from now on.
    if (!(recovered instanceof LogCorrupt)) publishTopic(recovered)
    return discovered(info, recovered)
  }

  // The round being rung, read by one closure made once (a round allocates nothing to ring).
  let ringRound: RoundTally | undefined
  const orderedInRound = (broker: number) => (ringRound?.batches[broker] ?? 0) > 0

  /**
   * Waits on the doorbell with the lease line's `waiting` word set meanwhile (appenders ring
   * only then). Set before `hasWork` is first checked (by the caller, after this): an appender
   * commits, then reads the word, so either it sees 1 and rings, or the check sees its commit.
   * One watch at a time, so the word is a flag, not a count.
   */
  const watchWork = countedWatch(doorbell, (delta) => markWaiting(lease, delta === 1 ? 1 : 0))

  return {
    beginRound: () => beginRound(lease),
    endRound: () => endRound(lease),
    forgetTopics: () => {
      for (const hold of [...known.values(), ...gone.splice(0)]) hold.release()
      known.clear()
      fresh.clear()
      directory.reset()
    },
    leaseLost: () => leaseLost(lease, v.epoch),
    hasNewTopics: () => newTopics().length > 0 || gone.length > 0,
    lanesGranted: () => lanesGranted(region, area),
    takeGranted: () => takeGranted(region),
    ...(marks === undefined ? {} : { marks }),
    deleted: () => {
      const dropped = gone.splice(0).map((hold) => {
        hold.release()
        return hold.info
      })
      return dropped
    },
    discover: Effect.suspend(() => Effect.map(Effect.forEach(newTopics(), discoverTopic), (found) => found.flat())),
    ring: (round) => {
      ringRound = round
      if (round.movedSessions()) ringEveryone(region, area, doorbell)
      else ringWaiters(region, area, doorbell, orderedInRound)
    },
    watchWork
  }
}

export const make = (
  area: LogArea,
  given: SequencerLayerOptions = {}
): Effect.Effect<
  SequencerShape,
  SequencerLeaseHeld | SequencerEarlierRoundStopped | InvalidSequencerOptions | SessionGapIdleTooShort,
  CxlMemory | Doorbell | Scope.Scope
> =>
  Effect.gen(function*() {
    const options = yield* checkSequencerOptions(given)
    const region = yield* CxlMemory
    const doorbell = yield* Doorbell
    const leaseMs = options.leaseMs ?? defaultSequencerOptions.leaseMs
    const lease = sequencerLease(region, {
      occurrence: newOccurrence(),
      leaseMs,
      doorbell: doorbell.offset,
      earlierRoundWaitMs: options.earlierRoundWaitMs ?? EARLIER_ROUND_WAIT_MS
    })
    const epoch = yield* Effect.acquireRelease(
      acquireLease(lease, options.waitForLeaseMs ?? defaultSequencerOptions.waitForLeaseMs),
      () => Effect.sync(() => releaseLease(lease))
    )
    const settings = orderSettings(area.config, options)
    const views = regionViews(region, area, options.flushAudit, epoch)
    const log = regionLog(views, doorbell, settings, lease)
    // The topics it held are let go when it stops (after its last round: the core's fibers end first).
    yield* Effect.addFinalizer(() => Effect.sync(log.forgetTopics))
    const core = makeSequencerCore(log, settings)
    const run = core.run({
      ready: () => markReady(lease),
      maxIdleMs: leaseMs / 3,
      renew: renewLease(lease, epoch),
      renewEveryMs: leaseMs / 3,
      ...(options.onFirstOrdered === undefined ? {} : { onFirstOrdered: options.onFirstOrdered })
    })
    return {
      epoch,
      holdsLease: () => holdsLease(lease),
      ...leaseLapses(lease),
      step: core.step,
      run
    }
  })

export const layer = (
  area: LogArea,
  options: SequencerLayerOptions = {}
): Layer.Layer<
  Sequencer,
  SequencerLeaseHeld | SequencerEarlierRoundStopped | InvalidSequencerOptions | SessionGapIdleTooShort,
  CxlMemory | Doorbell
> => Layer.scoped(Sequencer, make(area, options))
