/**
 * The publisher (see services/Publisher.ts for the contract): this file makes its state and
 * wires the parts over it. Per message the work is a timestamp and a copy into the batch
 * buffer, per batch a seal (crc32c) and one send through a link. A message's path: `tryPublish`
 * → the open batch (PublisherCalls `offer`) → `seal` → `dispatch` (`choose` a link) →
 * `transmit` (PublisherWindow) → the link; back: the link's ACK (PublisherSession `linkEvents`)
 * → `acknowledge` → `complete` (PublisherAcks) → `afterProgress` (window room, waiters woken).
 *
 * The core talks to the log only through links (PublisherLink.ts, the seam); here they are
 * brokers over TCP (PublisherLinkTcp.ts). Sessions, epochs, resends and the window are the core's
 * (PublisherSession, PublisherWindow), the window's size PublisherPacing's, the waits PublisherWaits'.
 *
 * Batching is self-clocking: a message that finds nothing in flight is sealed and sent at
 * once (at the end of the synchronous burst it came in, with whatever else that burst
 * published: a microtask, no timer); while batches are in flight, messages gather until the batch is full or an ACK frees
 * window room (`afterProgress` seals the open batch). `lingerMs` only bounds how long an open
 * batch may wait for that ACK while the window has room; its one timer runs only while such a
 * batch is open behind others, and carries over from batch to batch in a burst.
 */
import { Config, ConfigError, Effect, Either, FiberSet, Layer, Option, type Scope } from "effect"
import { AckTracker } from "../../services/log/AckTracker.js"
import { Appender } from "../../services/log/Appender.js"
import { PUBLISHER_SETTINGS } from "../../services/net/NetSettings.js"
import {
  InvalidPublisherOptions,
  Publisher,
  type PublisherOptions,
  type PublisherShape
} from "../../services/net/Publisher.js"
import { requiredSettingConfig, settingsConfig } from "../../Settings.js"
import { withLocalCredentials } from "./Auth.js"
import { BufferPool } from "./BatchBuilder.js"
import { brokerListProblem, parseAddresses } from "./BrokerAddress.js"
import { publisherCalls } from "./PublisherCalls.js"
import { optionsProblem, type PublisherSettings, settingsOf, validate } from "./PublisherDefaults.js"
import { newLane } from "./PublisherLanes.js"
import type { PublisherLink } from "./PublisherLink.js"
import { RegionLink } from "./PublisherLinkRegion.js"
import { BATCH_HEADROOM_BYTES, tcpLinks } from "./PublisherLinkTcp.js"
import { initialWindow, newPacing } from "./PublisherPacing.js"
import { closePublisher, connectLink, linkEvents } from "./PublisherSession.js"
import { LATENCY_SAMPLES, type PublisherState } from "./PublisherState.js"
import { expireBounds } from "./PublisherWaits.js"
import { afterWrites, onLinger, sealBurst } from "./PublisherWindow.js"

export { refusal } from "./PublisherDefaults.js"

/** ACK 2: ordered batches waiting for the disk may number this many times the send window… */
const ORDERED_WINDOW_FACTOR = 3
/**
 * …and at most this many: 12 MiB at 64 KiB batches, what keeps batches flowing through ordering
 * while the disk syncs (docs/durability.md); with the default 256-batch send window a factor
 * alone would keep 48 MiB waiting for a slow disk.
 */
const MAX_ORDERED_WINDOW = 192

/** A publisher's state before it has links; each batch buffer keeps `headroom` bytes in front for the links. */
const newState = (settings: PublisherSettings, log: PublisherState["log"], headroom: number): PublisherState => {
  const { clientId, ackLevel, window } = settings
  const orderedWindow = ackLevel === 2 ? Math.min(ORDERED_WINDOW_FACTOR * window, MAX_ORDERED_WINDOW) : 0
  const pool = new BufferPool(settings.batchBytes, window + orderedWindow + 2, headroom)
  // A link per broker (a local publisher has one).
  const pacing = newPacing(settings.adaptiveWindow, window, settings.brokers.length)
  const s: PublisherState = {
    settings,
    clientId,
    ackLevel,
    window: initialWindow(pacing),
    pacing,
    orderedWindow,
    log,
    pool,
    links: [],
    linkCounts: [],
    laneOf: new Map(),
    lanes: [],
    defaultLane: undefined,
    gatherFirst: undefined,
    gatherLast: undefined,
    gatheringCount: 0,
    fullLanes: 0,
    inFlight: 0,
    orderedInFlight: 0,
    roundRobin: 0,
    sticky: clientId % Math.max(1, settings.brokers.length),
    failure: undefined,
    lingerTimer: undefined,
    burstSealQueued: false,
    afterWritesScheduled: false,
    waiters: new Set(),
    bounded: new Set(),
    boundTimer: undefined,
    boundAt: Infinity,
    lastAckAt: 0,
    counts: { messages: 0, batches: 0, ackedBatches: 0, ackedMessages: 0, resends: 0, fences: 0 },
    latencies: new Float64Array(LATENCY_SAMPLES),
    latencyCount: 0,
    sealBurstTask: () => sealBurst(s),
    lingerTask: () => onLinger(s),
    expireBoundsTask: () => expireBounds(s),
    afterWritesTask: () => afterWrites(s)
  }
  return s
}

/**
 * The publisher over the links `linksOf` gives its state (their buffers keep `headroom` bytes in
 * front): the TCP and local publishers below, and tests over links of their own.
 */
export const makeWith = (
  settings: PublisherSettings,
  headroom: number,
  linksOf: (s: PublisherState) => ReadonlyArray<PublisherLink>,
  local = false
): Effect.Effect<PublisherShape, InvalidPublisherOptions, Scope.Scope> =>
  Effect.gen(function*() {
    const invalid = validate(settings, local)
    if (invalid !== undefined) return yield* new InvalidPublisherOptions({ reason: invalid })
    const s = newState(settings, yield* FiberSet.makeRuntime<never>(), headroom)
    s.links = linksOf(s)
    s.linkCounts = s.links.map(() => ({ sent: 0, acked: 0 }))
    // The default topic's session is registered as soon as a link opens (an unknown topic is told at once).
    if (settings.topic !== undefined) s.defaultLane = newLane(s, settings.topic)
    yield* Effect.addFinalizer(() => Effect.sync(() => closePublisher(s)))
    for (const link of s.links) connectLink(s, link)
    return publisherCalls(s)
  })

/**
 * A publisher of brokers over TCP, one link each. Without `credentials` it authenticates as the
 * local user of `options.region` (its secret file), as the CLI and the Promise clients do.
 */
export const make = (options: PublisherOptions): Effect.Effect<PublisherShape, InvalidPublisherOptions, Scope.Scope> =>
  Effect.flatMap(
    Effect.try({
      try: () => {
        const unknown = optionsProblem(options)
        if (unknown !== undefined) throw new Error(unknown)
        return settingsOf(withLocalCredentials(options))
      },
      catch: (error) => new InvalidPublisherOptions({ reason: error instanceof Error ? error.message : String(error) })
    }),
    (settings) => makeWith(settings, BATCH_HEADROOM_BYTES, (s) => tcpLinks(settings, linkEvents(s), s.pool))
  )

export const layer = (options: PublisherOptions): Layer.Layer<Publisher, InvalidPublisherOptions> =>
  Layer.scoped(Publisher, make(options))

/** A local publisher's options: a publisher's, but for the brokers (it has none) and with the region's name, for errors. */
export type LocalPublisherOptions = Omit<PublisherOptions, "brokers"> & { readonly region: string }

/** How often a local publisher's ACK wait looks again without being woken (rounds wake it). */
const LOCAL_RECHECK_MS = 100

/**
 * A local publisher (PublisherLinkRegion.ts): it appends into the region itself through the
 * process's Appender (in a broker slot of its own) and reads its ACKs with its AckTracker.
 */
export const makeLocal = (
  options: LocalPublisherOptions
): Effect.Effect<PublisherShape, InvalidPublisherOptions, Appender | AckTracker | Scope.Scope> =>
  Effect.gen(function*() {
    const unknown = optionsProblem(options, true)
    if (unknown !== undefined) return yield* new InvalidPublisherOptions({ reason: unknown })
    const appender = yield* Appender
    const acks = yield* AckTracker
    const settings = settingsOf({ ...options, brokers: [] })
    return yield* makeWith(settings, 0, (s) => [
      new RegionLink({
        appender,
        acks,
        events: linkEvents(s),
        clientId: settings.clientId,
        ackLevel: settings.ackLevel,
        region: options.region,
        run: (effect, done) => {
          s.log(Effect.asVoid(Effect.exit(Effect.tap(Effect.exit(effect), (exit) => Effect.sync(() => done(exit))))))
        },
        recheckMs: LOCAL_RECHECK_MS
      })
    ], true)
  })

export const layerLocal = (
  options: LocalPublisherOptions
): Layer.Layer<Publisher, InvalidPublisherOptions, Appender | AckTracker> => Layer.scoped(Publisher, makeLocal(options))

const { brokers, topic, ...optional } = PUBLISHER_SETTINGS.settings

/** Options from the environment: the variables of PUBLISHER_SETTINGS (services/net/NetSettings.ts). */
export const config: Config.Config<PublisherOptions> = Config.all({
  // The library names its brokers: no default (the CLI's are for a local try); the default topic is optional.
  brokers: requiredSettingConfig(brokers),
  topic: Config.option(requiredSettingConfig(topic)),
  options: settingsConfig(optional)
}).pipe(
  Config.mapOrFail(({ brokers: addressList, options: { ackLevel, clientId, fixedWindow, ...rest }, topic }) => {
    // As every command's --brokers: a list with no address in it (" ", ",") is refused here,
    // naming the variable, not later as options with no broker.
    const problem = brokerListProblem(addressList)
    return problem !== undefined
      ? Either.left(ConfigError.InvalidData([brokers.env], problem))
      : Either.right({
        ...rest,
        brokers: parseAddresses(addressList),
        ...(Option.isSome(topic) ? { topic: topic.value } : {}),
        ackLevel: Number(ackLevel) as 0 | 1 | 2,
        ...(clientId === undefined ? {} : { clientId }),
        ...(fixedWindow ? { adaptiveWindow: false } : {})
      })
  })
)

export const layerConfig: Layer.Layer<Publisher, InvalidPublisherOptions | ConfigError.ConfigError> = Layer.scoped(
  Publisher,
  Effect.flatMap(config, make)
)
