/**
 * The in-process Sequencer fake: the same round as the live layer (SequencerRound.ts) over
 * a `MemoryLogStore`, whose PBRs and GOI are JS arrays of batches. The lease is the store's
 * `sequencer` word; waiters are woken through the store's signal.
 */
import { Effect, Layer, type Scope } from "effect"
import {
  checkSequencerOptions,
  type InvalidSequencerOptions,
  Sequencer,
  SequencerLeaseHeld,
  SequencerLeaseLost,
  type SequencerOptions,
  type SequencerShape,
  type SessionGapIdleTooShort
} from "../../services/log/Sequencer.js"
import { lowestCursor, type MemoryBatch, type MemoryLogStore, type MemoryTopic } from "./MemoryStore.js"
import type { OrderHistory } from "./OrderHistory.js"
import { newOccurrence } from "./Participants.js"
import { PbrKind } from "./Records.js"
import { makeSequencerCore } from "./SequencerLoop.js"
import type { LogStorage } from "./SequencerRound.js"
import type { SessionTable } from "./SessionTable.js"
import { orderSettings, type TopicOrder, type TopicStorage } from "./TopicOrder.js"
import { discovered, recoverTopic } from "./TopicRecovery.js"

/** One topic's batches in the store: a broker's PBR is `pbr[pbrSeq - reclaimed]`, the GOI a window of batches. */
class MemoryTopicStorage implements TopicStorage {
  readonly sessions: SessionTable
  readonly goiSlots: number
  /** The cursor: a broker's PBR and an index into it. */
  private pbr: Array<MemoryBatch> = []
  private index = 0
  private laneList: ReadonlyArray<number> = []

  constructor(readonly topic: MemoryTopic) {
    this.sessions = topic.sessions
    this.goiSlots = topic.shape.goiSlots
  }

  /** The writer slots that have taken a lane here, in slot order (listed again when one more has). */
  lanes(): ReadonlyArray<number> {
    if (this.laneList.length !== this.topic.lanes.size) this.laneList = [...this.topic.lanes].sort((a, b) => a - b)
    return this.laneList
  }

  /** A committed position (at or past the broker's consumed-through, so not reclaimed). */
  private batchAt(broker: number, pbrSeq: number): MemoryBatch {
    const b = this.topic.brokers[broker]
    return b.pbr[pbrSeq - b.reclaimed]
  }

  committed(broker: number, pbrSeq: number): boolean {
    return pbrSeq < this.topic.brokers[broker].head
  }

  seek(broker: number, pbrSeq: number): boolean {
    const b = this.topic.brokers[broker]
    this.pbr = b.pbr
    this.index = pbrSeq - b.reclaimed
    return pbrSeq < b.head
  }

  finished(): boolean {
    return this.pbr[this.index].finished
  }

  isClose(): boolean {
    return this.pbr[this.index].kind === PbrKind.close
  }

  /** Batches in the store are whole objects: never corrupt. */
  sane(): boolean {
    return true
  }

  clientId(): number {
    return this.pbr[this.index].clientId
  }

  sessionEpoch(): number {
    return this.pbr[this.index].sessionEpoch
  }

  batchSeq(): number {
    return this.pbr[this.index].batchSeq
  }

  writeGoi(_g: number, broker: number, pbrSeq: number): number {
    const { topic } = this
    const batch = this.batchAt(broker, pbrSeq)
    topic.goi.push(batch)
    if (topic.goi.length > this.goiSlots) {
      topic.goi.shift()
      topic.goiBase++
    }
    return batch.messageCount
  }

  finish(broker: number, pbrSeq: number, globalSeq: number, totalOrder: number): void {
    const batch = this.batchAt(broker, pbrSeq)
    batch.globalSeq = globalSeq
    batch.totalOrder = totalOrder
    batch.finished = true
  }

  lowestCursor(): number {
    return lowestCursor(this.topic)
  }

  roomWaits(): boolean {
    return this.lanes().some((b) => this.topic.brokers[b]!.roomWaits > 0)
  }

  /** Readers of the store are woken by its signal whatever stalls. */
  publishStalled(): void {}

  publishFrontier(order: TopicOrder): void {
    const { topic } = this
    topic.fencedSessions = order.engine.fencedSessions
    for (const i of this.lanes()) {
      const b = topic.brokers[i]!
      b.consumedThrough = order.consumedThrough(i)
      b.held = order.engine.heldCount(i)
      b.orderedBatches = order.orderedBatches[i]
      b.orderedMessages = order.orderedMessages[i]
      b.duplicates = order.duplicates[i]
      b.dropped = order.dropped[i]
    }
    topic.totalOrder = order.totalNext
    topic.progress++
    order.seenRounds = ++topic.rounds
  }

  rounds(): number {
    return this.topic.rounds
  }

  history(): OrderHistory {
    return storeHistory(this.topic)
  }
}

/** What the store holds of a topic's order: its brokers' counters and the retained GOI (a batch is its own entry). */
const storeHistory = (topic: MemoryTopic): OrderHistory => ({
  committed: topic.goiBase + topic.goi.length,
  totalOrder: topic.totalOrder,
  fencedSessions: topic.fencedSessions,
  broker: (b) => topic.brokers[b],
  entry: (g) => (g >= topic.goiBase ? topic.goi[g - topic.goiBase] : undefined)
})

export const makeMemory = (
  store: MemoryLogStore,
  given: SequencerOptions = {}
): Effect.Effect<SequencerShape, SequencerLeaseHeld | InvalidSequencerOptions | SessionGapIdleTooShort, Scope.Scope> =>
  Effect.gen(function*() {
    const options = yield* checkSequencerOptions(given)
    const occurrence = newOccurrence()
    yield* Effect.acquireRelease(
      Effect.suspend(() => {
        if (store.sequencer !== 0) {
          return Effect.fail(new SequencerLeaseHeld({ pid: process.pid, expiresAtMs: Infinity }))
        }
        store.sequencer = occurrence
        store.epoch++
        return Effect.void
      }),
      () => Effect.sync(() => store.sequencer === occurrence && (store.sequencer = 0))
    )
    const epoch = store.epoch
    const settings = orderSettings(store.config, options)
    /** The generation of each store topic (by id) that has a TopicOrder. */
    const known = new Map<number, number>()
    const fresh = () => store.topics.filter((t) => !t.deleted && known.get(t.info.id) !== t.info.generation)
    const deleted = () =>
      [...known].filter(([id, generation]) => {
        const topic = store.topics[id]
        return topic === undefined || topic.deleted || topic.info.generation !== generation
      })
    const log: LogStorage = {
      // One process: no round of another holder can be in progress, the check is the whole fence.
      beginRound: () => (store.sequencer === occurrence ? "entered" : "lost"),
      endRound: () => {},
      forgetTopics: () => {
        known.clear()
      },
      leaseLost: () => new SequencerLeaseLost({ epoch, holderPid: process.pid }),
      hasNewTopics: () => fresh().length > 0 || deleted().length > 0,
      deleted: () =>
        deleted().map(([id, generation]) => {
          known.delete(id)
          return { ...store.topics[id]!.info, generation }
        }),
      discover: Effect.suspend(() => {
        const found = fresh()
        for (const topic of found) known.set(topic.info.id, topic.info.generation)
        return Effect.map(
          Effect.forEach(found, (topic) =>
            discovered(
              topic.info,
              recoverTopic(topic.info, new MemoryTopicStorage(topic), storeHistory(topic), settings)
            )),
          (orders) => orders.flat()
        )
      }),
      ring: () => store.signal.notify(),
      watchWork: store.signal.watch
    }
    const core = makeSequencerCore(log, settings)
    const run = core.run({ maxIdleMs: Infinity, renew: Effect.void, renewEveryMs: Infinity })
    return {
      epoch,
      holdsLease: () => store.sequencer === occurrence,
      // No lease to lapse: the memory log's sequencer holds its place until another takes it.
      leaseExpiresAtMs: () => Infinity,
      onLapseEnd: () => () => {},
      step: core.step,
      run
    }
  })

export const layerMemory = (
  store: MemoryLogStore,
  options: SequencerOptions = {}
): Layer.Layer<Sequencer, SequencerLeaseHeld | InvalidSequencerOptions | SessionGapIdleTooShort> =>
  Layer.scoped(Sequencer, makeMemory(store, options))
