/**
 * Appender's live layer: the append algorithm (AppendAlgorithm.ts) over this broker slot's PBR
 * + Blog of each topic in the region (AppendRegion.ts), the slot claimed for the layer's scope,
 * the turn's topics ordered here or the sequencer rung once per event-loop turn; and the local
 * publisher's appender, in the first broker slot no live process owns.
 */
import { Effect, Layer, type Scope } from "effect"
import { Appender, type AppenderShape, BrokerSlotTaken, NoBrokerSlotFree } from "../../services/log/Appender.js"
import type { TopicInfo } from "../../services/log/Topics.js"
import { CxlMemory } from "../../services/region/CxlMemory.js"
import { Doorbell } from "../../services/region/Doorbell.js"
import { type AppenderOptions, appenderOver, checkBrokerId } from "./AppendAlgorithm.js"
import { AppenderRound, appenderRounds } from "./AppenderRounds.js"
import { type RegionBroker, regionTargets } from "./AppendRegion.js"
import type { LogArea, LogConfigInvalid } from "./Layout.js"
import { claimLine, livenessCache, newOccurrence, releaseLine, sequencerBell, waitingForRoom } from "./Participants.js"
import { BrokerLineView, PbrSlotView, SequencerLineView } from "./RecordViews.js"
import { laneRequester } from "./TopicLanes.js"
import { topicMarks } from "./TopicMarks.js"
import { regionSessionTables, topicResolver } from "./Topics.js"

export const make = (
  area: LogArea,
  options: AppenderOptions
): Effect.Effect<AppenderShape, BrokerSlotTaken | LogConfigInvalid, CxlMemory | Doorbell | Scope.Scope> =>
  Effect.gen(function*() {
    const region = yield* CxlMemory
    const doorbell = yield* Doorbell
    const { brokerId } = options
    yield* checkBrokerId(area.config, brokerId)
    const occurrence = newOccurrence()
    const owner = area.brokerOwner(brokerId)
    const roomWaits = waitingForRoom(region, owner)
    yield* Effect.acquireRelease(
      Effect.suspend(() => {
        const holder = claimLine(region, owner, occurrence, doorbell.offset)
        if (holder !== 0) return Effect.fail(new BrokerSlotTaken({ brokerId, pid: holder }))
        roomWaits.reset()
        return Effect.void
      }),
      () => Effect.sync(() => releaseLine(region, owner, occurrence))
    )
    // Once per event-loop turn, after every batch the turn's reads completed is committed: this
    // process orders the turn's topics itself when it may (AppenderRounds.ts); else it rings a
    // parked sequencer, which then wakes to one round over all of them instead of one round per
    // batch. Either way a lone batch waits only for the end of its turn (the check phase that follows).
    const bell = sequencerBell(region, doorbell)
    const rounds = appenderRounds(region, area, doorbell, options.sequencer)
    // Each append marks its topic as it publishes it: the head's rounds look at marked topics (TopicMarks.ts).
    const marks = topicMarks(region, area)
    // A set: a turn of a broker writing a thousand topics appends to each once or more.
    const turnTopics = new Set<TopicInfo>()
    let turnPending: ReturnType<typeof setImmediate> | undefined
    const endOfTurn = () => {
      turnPending = undefined
      const ringHead = rounds.order(turnTopics) === AppenderRound.head
      turnTopics.clear()
      if (ringHead) bell.ringIfWaiting()
    }
    yield* Effect.addFinalizer(() => Effect.sync(() => turnPending !== undefined && clearImmediate(turnPending)))
    const broker: RegionBroker = {
      region,
      area,
      brokerId,
      audit: options.flushAudit,
      slots: new PbrSlotView(region),
      brokerLines: new BrokerLineView(region),
      sequencerLines: new SequencerLineView(region),
      ordering: (info) => {
        marks?.mark(info.id)
        turnTopics.add(info)
        turnPending ??= setImmediate(endOfTurn)
      },
      forget: (info) => {
        turnTopics.delete(info)
        rounds.forget(info)
      },
      roomWaits,
      alive: livenessCache(),
      doorbell,
      lane: laneRequester(region, area, doorbell, brokerId, options.timeoutMs).lane
    }
    const resolve = topicResolver(region, area)
    const sessionTable = regionSessionTables(region, area)
    const targets = regionTargets(broker, resolve)
    yield* Effect.addFinalizer(() => Effect.sync(targets.releaseAll))
    return appenderOver({
      brokerId,
      config: area.config,
      timeoutMs: options.timeoutMs,
      consumerHoldMs: options.consumerHoldMs,
      known: targets.known,
      target: targets.target,
      sessions: (topic) => Effect.zipRight(targets.target(topic), Effect.map(resolve(topic), sessionTable)),
      onDropped: targets.onDropped,
      await: doorbell.await
    })
  })

export const layer = (
  area: LogArea,
  options: AppenderOptions
): Layer.Layer<Appender, BrokerSlotTaken | LogConfigInvalid, CxlMemory | Doorbell> =>
  Layer.scoped(Appender, make(area, options))

/**
 * An appender in the first broker slot no live process owns, from the highest down (brokers are
 * numbered from 0, so a local publisher keeps out of their way): a local publisher's.
 */
export const makeAnySlot = (
  area: LogArea,
  options: Omit<AppenderOptions, "brokerId"> = {}
): Effect.Effect<AppenderShape, NoBrokerSlotFree | LogConfigInvalid, CxlMemory | Doorbell | Scope.Scope> =>
  Effect.gen(function*() {
    for (let brokerId = area.config.maxBrokers - 1; brokerId >= 0; brokerId--) {
      const made = yield* Effect.either(make(area, { ...options, brokerId }))
      if (made._tag === "Right") return made.right
      if (made.left._tag !== "BrokerSlotTaken") return yield* made.left
    }
    return yield* new NoBrokerSlotFree({ maxBrokers: area.config.maxBrokers })
  })

export const layerAnySlot = (
  area: LogArea,
  options: Omit<AppenderOptions, "brokerId"> = {}
): Layer.Layer<Appender, NoBrokerSlotFree | LogConfigInvalid, CxlMemory | Doorbell> =>
  Layer.scoped(Appender, makeAnySlot(area, options))
