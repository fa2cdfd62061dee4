/**
 * Appender fake: `appenderOver` (Appender.ts) with the in-process store as its backing. A
 * broker's PBR is the store's array of batches, its Blog positions and room the same
 * arithmetic as the region's; only where the bytes live differs.
 */
import { Effect, Layer, type Scope } from "effect"
import {
  Appender,
  type AppenderShape,
  type BatchHeader,
  BatchRejected,
  BrokerSlotTaken
} from "../../services/log/Appender.js"
import { TopicDeleted, TopicNotFound } from "../../services/log/Topics.js"
import { type AppenderOptions, appenderOver, checkBrokerId } from "./AppendAlgorithm.js"
import type { AppendTarget } from "./AppendBacking.js"
import { heldBatch, reclaim, type ReclaimSource, releaseBlog } from "./AppendRoom.js"
import { consumersHolding, cutOffHolding } from "./Consumers.js"
import type { LogConfigInvalid } from "./Layout.js"
import {
  findTopic,
  lowestCursor,
  type MemoryBroker,
  type MemoryLogStore,
  type MemoryTopic,
  memoryTopic,
  storeFull
} from "./MemoryStore.js"
import { newOccurrence } from "./Participants.js"
import { alignLine, type PbrKindCode } from "./Records.js"
import { laneRejected, LaneUnavailable } from "./TopicLanes.js"

/** The broker's PBR in the store as `reclaim` reads it. */
const reclaimSource = (topic: MemoryTopic, broker: MemoryBroker): ReclaimSource => {
  const base = broker.reclaimed
  const batch = (pbrSeq: number) => broker.pbr[pbrSeq - base]
  return {
    lowestCursor: () => lowestCursor(topic),
    finished: (pbrSeq) => batch(pbrSeq).finished,
    globalSeq: (pbrSeq) => batch(pbrSeq).globalSeq,
    blogPosition: (pbrSeq) => batch(pbrSeq).blogPosition
  }
}

/**
 * reclaim over the store: frees the broker's finished batches that no durable cursor still
 * needs; with `room`, releaseBlog then makes Blog room for a batch of `room.bytes`, and the
 * freed batches the tail passed are gone for readers.
 */
export const reclaimMemory = (
  topic: MemoryTopic,
  broker: MemoryBroker,
  room?: { readonly bytes: number; readonly blogBytes: number }
): void => {
  const freed = reclaim(broker, Math.min(broker.consumedThrough, broker.head), reclaimSource(topic, broker))
  broker.freed.push(...broker.pbr.splice(0, freed))
  // A source afresh: the PBR queue starts at the new `reclaimed` now.
  if (room !== undefined) releaseBlog(broker, room.bytes, room.blogBytes, reclaimSource(topic, broker))
  // Gone for readers: what the tail passed, and what left the GOI window (or was never in it), so the queue holds no more than the GOI.
  let passed = 0
  for (const batch of broker.freed) {
    if (batch.blogPosition >= broker.blogTail && batch.globalSeq >= topic.goiBase) break
    batch.reclaimed = true
    passed++
  }
  broker.freed.splice(0, passed)
}

/** Retention of `topic` moved (a durable cursor, a named consumer): frees what its brokers may reclaim, and rings the store's doorbell. */
export const retentionMovedMemory = (store: MemoryLogStore, topic: MemoryTopic): void => {
  for (const broker of topic.brokers) reclaimMemory(topic, broker)
  store.signal.notify()
}

/** One topic's PBR + Blog of a broker in the store. */
class StoreTarget implements AppendTarget {
  readonly topic: string
  readonly cursors: MemoryBroker
  readonly blogBytes: number
  readonly pbrSlots: number
  readonly maxBatchBytes: number
  readonly maxMessageBytes: number
  private received = new Uint8Array(0)

  constructor(
    private readonly store: MemoryLogStore,
    readonly memoryTopic: MemoryTopic,
    private readonly brokerId: number
  ) {
    this.topic = memoryTopic.info.name
    this.cursors = memoryTopic.brokers[brokerId]
    this.blogBytes = memoryTopic.blogBytes
    this.pbrSlots = memoryTopic.shape.pbrSlots
    this.maxBatchBytes = memoryTopic.shape.maxBatchBytes
    this.maxMessageBytes = memoryTopic.shape.maxMessageBytes
  }

  /** The batch, its payload copied into a buffer of its own, appended to the broker's PBR. */
  write(
    header: BatchHeader,
    pbrSeq: number,
    position: number,
    fill: (dst: Uint8Array) => void,
    kind: PbrKindCode
  ): void {
    const payload = new Uint8Array(header.payloadBytes)
    fill(payload)
    this.cursors.pbr.push({
      kind,
      broker: this.brokerId,
      pbrSeq,
      clientId: header.clientId,
      sessionEpoch: header.sessionEpoch,
      batchSeq: header.batchSeq,
      messageCount: header.messageCount,
      crc32c: header.crc32c,
      payload,
      blogPosition: position,
      blogBytes: alignLine(header.payloadBytes),
      finished: false,
      globalSeq: 0,
      totalOrder: 0,
      reclaimed: false
    })
  }

  /** The store keeps each payload in a buffer of its own: space received into is a scratch buffer the append copies from. */
  view(_position: number, bytes: number): Uint8Array {
    if (this.received.length < bytes) this.received = new Uint8Array(bytes)
    return this.received.subarray(0, bytes)
  }

  published(): void {
    this.store.signal.notify()
  }

  reclaim(bytes: number): void {
    reclaimMemory(this.memoryTopic, this.cursors, { bytes, blogBytes: this.blogBytes })
  }

  waiting(delta: 1 | -1): void {
    this.cursors.roomWaits += delta
  }

  private held(): number | undefined {
    return heldBatch(
      this.cursors,
      Math.min(this.cursors.consumedThrough, this.cursors.head),
      reclaimSource(this.memoryTopic, this.cursors)
    )
  }

  consumerHold(): number | undefined {
    const g = this.held()
    const { region, area } = this.store.lines
    const lowest = g === undefined ? Infinity : consumersHolding(region, area, this.memoryTopic.info.id, g)
    return lowest === Infinity ? undefined : lowest
  }

  cutOffConsumers(cursor: number): number {
    const g = this.held()
    const { region, area } = this.store.lines
    const cut = g === undefined ? 0 : cutOffHolding(region, area, this.memoryTopic.info.id, Math.min(g, cursor))
    if (cut > 0) retentionMovedMemory(this.store, this.memoryTopic)
    return cut
  }
}

/**
 * Why writer `broker` cannot have a lane in `topic`, as the head would answer for a region
 * (TopicLanes.ts): the heap has no room for it. It takes the lane when it can (undefined).
 */
const laneProblem = (store: MemoryLogStore, topic: MemoryTopic, broker: number): LaneUnavailable | undefined => {
  if (topic.lanes.has(broker)) return undefined
  const full = storeFull(store, topic.shape.laneBytes)
  if (full !== undefined) {
    return new LaneUnavailable({ topic: topic.info.name, broker, reason: full.message, regionFull: true })
  }
  topic.lanes.add(broker)
  return undefined
}

export const makeMemory = (
  store: MemoryLogStore,
  options: AppenderOptions
): Effect.Effect<AppenderShape, BrokerSlotTaken | LogConfigInvalid, Scope.Scope> =>
  Effect.gen(function*() {
    const { brokerId } = options
    yield* checkBrokerId(store.config, brokerId)
    const occurrence = newOccurrence()
    const { owners } = store
    yield* Effect.acquireRelease(
      Effect.suspend(() => {
        if ((owners.get(brokerId) ?? 0) !== 0) return Effect.fail(new BrokerSlotTaken({ brokerId, pid: process.pid }))
        owners.set(brokerId, occurrence)
        return Effect.void
      }),
      () => Effect.sync(() => owners.get(brokerId) === occurrence && owners.delete(brokerId))
    )
    // As the region's targets: one per topic name, dropped (TopicDeleted, once) when its topic is deleted.
    const targets = new Map<string, StoreTarget>()
    const gone = new Set<string>()
    let dropped: (target: AppendTarget) => void = () => {}
    const known = (name: string): AppendTarget | TopicNotFound | TopicDeleted | undefined => {
      const held = targets.get(name)
      if (held !== undefined) {
        if (!held.memoryTopic.deleted) return held
        targets.delete(name)
        gone.add(name)
        dropped(held)
        return new TopicDeleted({ name })
      }
      const topic = findTopic(store, name)
      if (topic === undefined) return gone.has(name) ? new TopicDeleted({ name }) : new TopicNotFound({ name })
      gone.delete(name)
      // Without a lane here yet and none to be had, `target` says why.
      if (laneProblem(store, topic, brokerId) !== undefined) return undefined
      const made = new StoreTarget(store, topic, brokerId)
      targets.set(name, made)
      return made
    }
    const target = (name: string) =>
      Effect.suspend((): Effect.Effect<AppendTarget, TopicNotFound | TopicDeleted | BatchRejected> => {
        const found = known(name)
        if (found === undefined) {
          const problem = laneProblem(store, findTopic(store, name)!, brokerId)
          // Room came meanwhile: the lane is this writer's now.
          return problem === undefined ? target(name) : Effect.fail(laneRejected(problem))
        }
        return found instanceof TopicNotFound || found instanceof TopicDeleted
          ? Effect.fail(found)
          : Effect.succeed(found)
      })
    return appenderOver({
      brokerId,
      config: store.config,
      timeoutMs: options.timeoutMs,
      consumerHoldMs: options.consumerHoldMs,
      known,
      target,
      sessions: (name) =>
        Effect.zipRight(target(name), Effect.map(memoryTopic(store, name), (topic) => topic.sessions)),
      onDropped: (handler) => {
        dropped = handler
      },
      await: store.signal.await
    })
  })

export const layerMemory = (
  store: MemoryLogStore,
  options: AppenderOptions
): Layer.Layer<Appender, BrokerSlotTaken | LogConfigInvalid> => Layer.scoped(Appender, makeMemory(store, options))
