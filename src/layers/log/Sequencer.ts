/**
 * The live Sequencer layer: it orders the region's log (lease in the superblock, state in
 * the log area) with the round in SequencerRound.ts; the in-process fake is
 * SequencerMemory.ts. Here is only where bytes live: `RegionTopic` (a topic's PBRs, GOI,
 * session table and lines), discovery and recovery, the lease, and the doorbell wait.
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
import type { CxlMemoryShape } from "../../services/region/CxlMemory.js"
import { CxlMemory } from "../../services/region/CxlMemory.js"
import { Doorbell, type DoorbellShape } from "../../services/region/Doorbell.js"
import {
  checkSequencerOptions,
  defaultSequencerOptions,
  Sequencer,
  SequencerEarlierRoundStopped,
  SequencerLeaseHeld,
  SequencerLeaseLost,
  type SessionGapIdleTooShort,
  type SequencerOptions,
  type SequencerShape
} from "../../services/log/Sequencer.js"
import { LogCorrupt, type TopicInfo } from "../../services/log/Topics.js"
import type { FlushAudit } from "../region/FlushAudit.js"
import { Offsets } from "../region/Superblock.js"
import { GOI_ENTRY_BYTES, goiEntryOffset, type LogArea, PBR_SLOT_BYTES, pbrSlotOffset } from "./Layout.js"
import { countedWatch, isPidRunning, isPidStopped, livenessCache, lowestDurableCursor, newOccurrence, ringEveryone, ringWaiters } from "./Participants.js"
import { DescriptorState, GoiEntry, LeaseLine, LINE_BYTES, OrderLine, PbrKind, PbrSlot } from "./Records.js"
import {
  DescriptorView,
  GoiEntryView,
  LeaseLineView,
  OrderLineView,
  ParticipantLineView,
  PbrSlotView,
  SequencerLineView
} from "./RecordViews.js"
import {
  type LogStorage,
  makeSequencerCore,
  type OrderSettings,
  orderSettings,
  publishTopic,
  replayOrdered,
  restoreSessions,
  type RoundTally,
  TopicOrder,
  type TopicStorage
} from "./SequencerRound.js"
import { SessionTable } from "./SessionTable.js"
import { readTopic } from "./Topics.js"

export interface SequencerLayerOptions extends SequencerOptions {
  /** Test-only: verify that every GOI entry and PBR finish line is flushed before its commit word. */
  readonly flushAudit?: FlushAudit
  /** Test-only (no flag sets it): how long a new holder waits on an earlier head's round marker naming a live process (`awaitEarlierRound`). Default 60 s. */
  readonly earlierRoundWaitMs?: number
}

/** A round is plain code taking milliseconds; a marker set far longer than this names no head inside one unless its process is stopped. */
const EARLIER_ROUND_WAIT_MS = 60_000

/** The region's views, made once per sequencer. */
interface RegionViews {
  readonly region: CxlMemoryShape
  readonly area: LogArea
  readonly pbr: PbrSlotView
  readonly goi: GoiEntryView
  readonly orderLines: OrderLineView
  readonly sequencerLines: SequencerLineView
  readonly owners: ParticipantLineView
  readonly audit: FlushAudit | undefined
  readonly epoch: number
  readonly alive: (pid: number, occurrence: number) => boolean
}

/**
 * Brokers (live owners) with appends waiting for PBR or Blog room; the owner line does not say which
 * topic. Asked every round under backpressure, so the owners' liveness comes from the cache.
 */
const brokersWaitForRoom = ({ region, area, owners, alive }: RegionViews): boolean => {
  for (let b = 0; b < area.config.maxBrokers; b++) {
    const owner = area.brokerOwner(b)
    region.invalidate(owner, LINE_BYTES)
    if (owners.roomWaits(owner) === 0) continue
    const { occurrence, pid } = owners.claim(owner)
    if (occurrence !== 0 && (pid === 0 || alive(pid, occurrence))) return true
  }
  return false
}

/** One topic's bytes in the region: the scan cursor over its PBRs, its GOI, session table and lines. */
class RegionTopic implements TopicStorage {
  readonly sessions: SessionTable
  readonly orderLine: number
  /** The cursor: a slot's offset and the position it was sought for. */
  private at = 0
  private position = 0

  constructor(private readonly v: RegionViews, readonly topic: number) {
    const { region, area } = v
    this.sessions = new SessionTable(region, area.sessions(topic), area.registryLine(topic), area.config.sessionSlots)
    this.orderLine = area.orderLine(topic)
  }

  committed(broker: number, pbrSeq: number): boolean {
    const slot = pbrSlotOffset(this.v.area, this.topic, broker, pbrSeq)
    this.v.region.invalidate(slot, LINE_BYTES)
    return this.v.pbr.committed(slot, pbrSeq)
  }

  seek(broker: number, pbrSeq: number): boolean {
    const slot = pbrSlotOffset(this.v.area, this.topic, broker, pbrSeq)
    this.v.region.invalidate(slot, PBR_SLOT_BYTES)
    this.at = slot
    this.position = pbrSeq
    return this.v.pbr.committed(slot, pbrSeq)
  }

  finished(): boolean {
    return this.v.pbr.finished(this.at, this.position)
  }

  isClose(): boolean {
    const { pbr } = this.v
    return pbr.kind(this.at) === PbrKind.close && pbr.pbrSeq(this.at) === this.position
  }

  sane(): boolean {
    const { pbr, area } = this.v
    const { maxBatchBytes, blogBytes } = area.config
    const at = this.at
    const bytes = pbr.payloadBytes(at)
    const count = pbr.messageCount(at)
    const position = pbr.blogPosition(at)
    const batchSeq = pbr.batchSeq(at)
    return count >= 1 && bytes % 8 === 0 && bytes >= 8 * count && bytes <= maxBatchBytes &&
      Number.isSafeInteger(position) && position >= 0 && position % LINE_BYTES === 0 && (position % blogBytes) + bytes <= blogBytes &&
      Number.isSafeInteger(batchSeq) && batchSeq >= 0 && pbr.pbrSeq(at) === this.position
  }

  clientId(): number {
    return this.v.pbr.clientId(this.at)
  }

  sessionEpoch(): number {
    return this.v.pbr.sessionEpoch(this.at)
  }

  batchSeq(): number {
    return this.v.pbr.batchSeq(this.at)
  }

  writeGoi(g: number, broker: number, pbrSeq: number, totalOrder: number): number {
    const { region, area, pbr, goi, audit } = this.v
    const slot = pbrSlotOffset(area, this.topic, broker, pbrSeq)
    const e = goiEntryOffset(area, this.topic, g)
    const count = goi.writeFromSlot(e, g, pbr, slot, broker, pbrSeq, totalOrder)
    region.publish(e, GOI_ENTRY_BYTES)
    audit?.beforeCommit(`GOI ${g}`, [e, GoiEntry.seqLo])
    goi.commitSeq(e, g)
    region.publish(e + GoiEntry.seqLo, 4)
    return count
  }

  finish(broker: number, pbrSeq: number, globalSeq: number, totalOrder: number): void {
    finishSlot(this.v, pbrSlotOffset(this.v.area, this.topic, broker, pbrSeq), pbrSeq, globalSeq, totalOrder)
  }

  lowestCursor(): number {
    return lowestDurableCursor(this.v.region, this.v.area, this.topic, this.v.alive)
  }

  roomWaits(): boolean {
    return brokersWaitForRoom(this.v)
  }

  publishStalled(stalled: boolean): void {
    this.v.orderLines.storeStalled(this.orderLine, stalled ? 1 : 0)
    this.v.region.publish(this.orderLine + OrderLine.stalled, 4)
  }

  publishFrontier(topic: TopicOrder): void {
    publishFrontier(this.v, this, topic)
  }
}

/** Line 1 of a PBR slot: global seq and total order (or a `Dropped` code), then the finish word. */
function finishSlot(v: RegionViews, slot: number, pbrSeq: number, globalSeq: number, totalOrder: number): void {
  const { region, pbr, audit } = v
  const line = slot + PbrSlot.sequencerLine
  pbr.setGlobalSeq(slot, globalSeq)
  pbr.setTotalOrder(slot, totalOrder)
  pbr.setOrderedEpoch(slot, v.epoch)
  region.publish(line, LINE_BYTES)
  audit?.beforeCommit(`PBR finish ${pbrSeq}`, [line, PbrSlot.finish - PbrSlot.sequencerLine])
  pbr.finish(slot, pbrSeq)
  region.publish(slot + PbrSlot.finish, 4)
}

/** Per-broker sequencer lines, then the order line (committed frontier, epoch, sessions), then the progress word. */
function publishFrontier(v: RegionViews, storage: RegionTopic, topic: TopicOrder): void {
  const { region, area, orderLines, sequencerLines: lines } = v
  const { engine } = topic
  for (let b = 0; b < area.config.maxBrokers; b++) {
    const line = area.sequencerLine(storage.topic, b)
    lines.setConsumedThrough(line, topic.consumedThrough(b))
    lines.setOrderedBatches(line, topic.orderedBatches[b])
    lines.setOrderedMessages(line, topic.orderedMessages[b])
    lines.setDuplicates(line, topic.duplicates[b])
    lines.setDropped(line, topic.dropped[b])
    lines.setHeld(line, engine.heldCount(b))
    region.publish(line, LINE_BYTES)
  }
  const at = storage.orderLine
  orderLines.setCommitted(at, topic.goiNext)
  orderLines.setTotalOrder(at, topic.totalNext)
  orderLines.setEpoch(at, v.epoch)
  orderLines.setFencedSessions(at, engine.fencedSessions)
  orderLines.setSessions(at, storage.sessions.liveCount())
  region.publish(at, LINE_BYTES)
  orderLines.bumpProgress(at)
  region.publish(at + OrderLine.progress, 4)
}

const corrupt = (info: TopicInfo, reason: string) => new LogCorrupt({ reason: `topic ${info.name}: ${reason}` })

/**
 * Rebuilds a topic's state from the region alone (first sight of the topic, or restart):
 * frontier and per-broker cursors from its lines, sessions from its table, then every
 * retained GOI entry and the tail past the published frontier that a killed sequencer
 * committed (frontiers and duplicate detection must account for them all).
 */
function recoverTopic(v: RegionViews, info: TopicInfo, settings: OrderSettings): TopicOrder | LogCorrupt {
  const { area, goi, orderLines, sequencerLines, pbr } = v
  const t = info.id
  const storage = new RegionTopic(v, t)
  const topic = new TopicOrder(info, storage, settings)
  const committed = orderLines.committed(storage.orderLine)
  const totalOrder = orderLines.totalOrder(storage.orderLine)
  if (!Number.isSafeInteger(committed) || committed < 0 || !Number.isSafeInteger(totalOrder) || totalOrder < committed) {
    return corrupt(info, `order line frontier ${committed} / ${totalOrder} is invalid`)
  }
  for (let b = 0; b < settings.maxBrokers; b++) {
    const line = area.sequencerLine(t, b)
    const consumed = sequencerLines.consumedThrough(line)
    if (!Number.isSafeInteger(consumed) || consumed < 0) return corrupt(info, `broker ${b} consumed-through ${consumed} is invalid`)
    topic.scan[b] = consumed
    topic.orderedBatches[b] = sequencerLines.orderedBatches(line)
    topic.orderedMessages[b] = sequencerLines.orderedMessages(line)
    topic.duplicates[b] = sequencerLines.duplicates(line)
    topic.dropped[b] = sequencerLines.dropped(line)
  }
  topic.goiNext = committed
  topic.totalNext = totalOrder
  topic.lowest = storage.lowestCursor()
  const badLine = restoreSessions(topic)
  if (badLine !== undefined) return corrupt(info, badLine)
  for (let g = Math.max(0, committed - settings.goiSlots); ; g++) {
    const e = goiEntryOffset(area, t, g)
    if (!goi.holds(e, g)) {
      if (g < committed) continue
      break
    }
    const broker = goi.brokerId(e)
    const pbrSeq = goi.pbrSeq(e)
    if (broker >= settings.maxBrokers || !Number.isSafeInteger(pbrSeq) || pbrSeq < 0) return corrupt(info, `GOI entry ${g} is invalid`)
    // Released sessions are over: their lines hold final frontiers.
    const replayed = replayOrdered(topic, goi.clientId(e), goi.sessionEpoch(e), goi.batchSeq(e))
    if (replayed !== undefined) return corrupt(info, `GOI entry ${g}: ${replayed}`)
    if (g < committed) continue
    if (goi.totalOrder(e) !== topic.totalNext) return corrupt(info, `GOI entry ${g} breaks the total order`)
    const slot = pbrSlotOffset(area, t, broker, pbrSeq)
    if (!pbr.finished(slot, pbrSeq)) finishSlot(v, slot, pbrSeq, g, topic.totalNext)
    topic.goiNext = g + 1
    topic.totalNext += goi.messageCount(e)
  }
  publishTopic(topic)
  return topic
}

/** The region's log: topic discovery, the lease, ringing and the doorbell wait. */
const regionLog = (
  v: RegionViews,
  doorbell: DoorbellShape,
  settings: OrderSettings,
  lease: {
    readonly beginRound: () => boolean
    readonly endRound: () => void
    readonly lost: () => SequencerLeaseLost
    readonly markWaiting: (waiting: 0 | 1) => void
  }
): LogStorage => {
  const { region, area } = v
  const { maxTopics } = area.config
  const descriptors = new DescriptorView(region)
  const known = new Set<number>()

  /** Table slots whose descriptor became ready since we last looked (one atomic load per unknown slot). */
  const newTopics = (): Array<number> => {
    const fresh: Array<number> = []
    if (known.size === maxTopics) return fresh
    for (let t = 0; t < maxTopics; t++) {
      if (known.has(t)) continue
      const at = area.descriptor(t)
      region.invalidate(at, LINE_BYTES)
      if (descriptors.state(at) === DescriptorState.ready) fresh.push(t)
    }
    return fresh
  }

  const discoverTopic = (t: number): Effect.Effect<ReadonlyArray<TopicOrder>> => {
    known.add(t)
    const info = readTopic(region, area, t)
    if (info === undefined) return Effect.as(Effect.logError(`sequencer: topic table slot ${t} holds an invalid descriptor; it is not ordered`), [])
    const recovered = recoverTopic(v, info, settings)
    return recovered instanceof LogCorrupt
      ? Effect.as(Effect.logError(`sequencer: ${recovered.message}; topic ${info.name} is not ordered`), [])
      : Effect.succeed([recovered])
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
  const watchWork = countedWatch(doorbell, (delta) => lease.markWaiting(delta === 1 ? 1 : 0))

  return {
    beginRound: lease.beginRound,
    endRound: lease.endRound,
    leaseLost: lease.lost,
    hasNewTopics: () => newTopics().length > 0,
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
  options: SequencerLayerOptions = {}
): Effect.Effect<SequencerShape, SequencerLeaseHeld | SequencerEarlierRoundStopped | SessionGapIdleTooShort, CxlMemory | Doorbell | Scope.Scope> =>
  Effect.gen(function*() {
    yield* checkSequencerOptions(options)
    const region = yield* CxlMemory
    const doorbell = yield* Doorbell
    const leaseMs = options.leaseMs ?? defaultSequencerOptions.leaseMs
    const at = Offsets.sequencerLease
    const leaseLine = new LeaseLineView(region)
    const occurrence = newOccurrence()

    const tryAcquire = (): number | SequencerLeaseHeld => {
      const current = leaseLine.occurrence(at)
      const pid = leaseLine.pid(at)
      const expiresAtMs = leaseLine.expiresAtMs(at)
      const free = current === 0 || Date.now() > expiresAtMs || (pid > 0 && !isPidRunning(pid))
      if (!free || !leaseLine.swapOccurrence(at, current, occurrence)) return new SequencerLeaseHeld({ pid, expiresAtMs })
      const epoch = leaseLine.epoch(at) + 1
      leaseLine.setEpoch(at, epoch)
      leaseLine.setDoorbell(at, doorbell.offset)
      leaseLine.setExpiresAtMs(at, Date.now() + leaseMs)
      region.publish(at, LINE_BYTES)
      leaseLine.storePid(at, process.pid)
      return epoch
    }
    const release = () => {
      if (leaseLine.occurrence(at) !== occurrence) return
      leaseLine.storePid(at, 0)
      leaseLine.setDoorbell(at, 0)
      leaseLine.setExpiresAtMs(at, 0)
      leaseLine.swapOccurrence(at, occurrence, 0)
      region.publish(at, LINE_BYTES)
    }
    const writingWord = (at + LeaseLine.writing) / 4
    const earlierRoundWaitMs = options.earlierRoundWaitMs ?? EARLIER_ROUND_WAIT_MS
    /**
     * The fence, after winning the lease: an earlier holder may be inside a round (it checked
     * the lease before we took it, then stalled). Wait until its marker clears, or names a
     * process that is gone (SIGKILL: cleared here) or this one (we hold the lease and began no
     * round: a head killed mid-round whose pid we were given, in a restarted container or pid
     * namespace). The marker is a bare pid, so a live process it names may be an unrelated one
     * that reuses a killed head's pid: past `earlierRoundWaitMs`, one that is not stopped is
     * taken to be such (no round lasts that long) and the marker is cleared; one stopped inside
     * the round fails this head (SequencerEarlierRoundStopped), since it would write on once
     * resumed.
     */
    const awaitEarlierRound = Effect.gen(function*() {
      const started = Date.now()
      let warned = false
      // A round ends within a millisecond or two; a marker still there after that names a stalled or
      // stopped process, which may stay so for the whole wait: look less and less often (at most every 100 ms).
      let pollMs = 2
      for (;;) {
        const marker = Atomics.load(region.i32, writingWord)
        if (marker === 0) return
        if (marker === process.pid || !isPidRunning(marker)) {
          Atomics.compareExchange(region.i32, writingWord, marker, 0)
          continue
        }
        const waitedMs = Date.now() - started
        if (waitedMs >= earlierRoundWaitMs) {
          if (isPidStopped(marker)) return yield* new SequencerEarlierRoundStopped({ pid: marker, waitedMs })
          yield* Effect.logWarning(`sequencer: process ${marker}, named by an earlier head's round marker, ran ${waitedMs} ms without ending the round: not a head inside one (a reused pid); marker cleared`)
          Atomics.compareExchange(region.i32, writingWord, marker, 0)
          continue
        }
        if (!warned && waitedMs >= leaseMs) {
          warned = true
          yield* Effect.logWarning(`sequencer: process ${marker} of an earlier epoch is stopped inside a round; ordering waits until it finishes the round or is gone (at most ${earlierRoundWaitMs} ms while it runs)`)
        }
        yield* Effect.sleep(pollMs)
        pollMs = Math.min(pollMs * 2, 100)
      }
    })
    const acquire = Effect.gen(function*() {
      const deadline = Date.now() + (options.waitForLeaseMs ?? defaultSequencerOptions.waitForLeaseMs)
      for (;;) {
        const outcome = tryAcquire()
        if (typeof outcome === "number") {
          // Failing, this head lets the lease go as at release, for a head started again.
          yield* Effect.tapError(awaitEarlierRound, () => Effect.sync(release))
          return outcome
        }
        if (Date.now() >= deadline) return yield* outcome
        yield* Effect.sleep(Math.min(50, Math.max(1, deadline - Date.now())))
      }
    })
    const epoch = yield* Effect.acquireRelease(acquire, () => Effect.sync(release))
    const holds = () => leaseLine.occurrence(at) === occurrence
    const lost = () => new SequencerLeaseLost({ epoch, holderPid: leaseLine.pid(at) })
    /**
     * Dekker's handshake with a new holder: publish our pid as the round's marker, then check
     * the lease; a new holder swaps the lease, then reads the marker (both sequentially
     * consistent), so either we see its lease and write nothing, or it sees our marker and
     * waits for the round to end (`awaitEarlierRound`). A marker we find set while we hold the
     * lease belongs to a fenced head between its own two steps (the earlier holder's round was
     * waited out at acquisition): we overwrite it, and its check then fails.
     */
    const pid = process.pid
    const beginRound = (): boolean => {
      const seen = Atomics.compareExchange(region.i32, writingWord, 0, pid)
      if (seen !== 0 && seen !== pid) {
        if (!holds()) return false
        Atomics.store(region.i32, writingWord, pid)
      }
      if (holds()) return true
      Atomics.compareExchange(region.i32, writingWord, pid, 0)
      return false
    }
    const endRound = (): void => {
      Atomics.compareExchange(region.i32, writingWord, pid, 0)
    }
    const renew = Effect.suspend(() => {
      if (!holds()) return Effect.fail(lost())
      leaseLine.setExpiresAtMs(at, Date.now() + leaseMs)
      region.publish(at + LeaseLine.expiresAtMs, 8)
      return Effect.void
    })
    const markWaiting = (waiting: 0 | 1) => {
      leaseLine.storeWaiting(at, waiting)
      region.publish(at + LeaseLine.waiting, 4)
    }

    const { config } = area
    const settings = orderSettings(config, options)
    const views: RegionViews = {
      region,
      area,
      pbr: new PbrSlotView(region, config.pbrSlots),
      goi: new GoiEntryView(region),
      orderLines: new OrderLineView(region),
      sequencerLines: new SequencerLineView(region),
      owners: new ParticipantLineView(region),
      audit: options.flushAudit,
      epoch,
      alive: livenessCache()
    }
    const core = makeSequencerCore(regionLog(views, doorbell, settings, { beginRound, endRound, lost, markWaiting }), settings)
    const run = core.run({
      maxIdleMs: leaseMs / 3,
      renew,
      renewEveryMs: leaseMs / 3,
      ...(options.onFirstOrdered === undefined ? {} : { onFirstOrdered: options.onFirstOrdered })
    })
    return { epoch, holdsLease: holds, step: core.step, run }
  })

export const layer = (
  area: LogArea,
  options: SequencerLayerOptions = {}
): Layer.Layer<Sequencer, SequencerLeaseHeld | SequencerEarlierRoundStopped | SessionGapIdleTooShort, CxlMemory | Doorbell> =>
  Layer.scoped(Sequencer, make(area, options))
