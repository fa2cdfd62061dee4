/**
 * `cxlog head`: creates the region, owns process slot 0, writes the topic table and runs the
 * sequencer. With `--attach` it takes over an existing region whose head is gone instead: the
 * sequencer carries on from the region's state (epoch + 1), the coordinator from its rings, and
 * the region is left in place on exit (it holds data this process did not create). When that
 * region no longer exists and a data directory is given, it recovers from the directory instead
 * (what `--recover DIR` does, docs/durability.md) and keeps the new region on exit.
 *
 * With `--standby` it maps the region and watches the sequencer lease (a timer, a few loads);
 * when the lease lapses or its holder is gone it does what `--attach` does, racing any other
 * standby for the lease (compare-and-swap: one wins, the others go on watching). One that finds
 * the last head stopped inside a round (SequencerEarlierRoundStopped) stands by on too, taking
 * over once that process is resumed or gone; `--attach` fails with it instead. A head that
 * finds itself fenced (a newer head holds the lease) exits at once, running no finalizer: all
 * it would release is reclaimed as a dead process's, and it writes nothing into the region.
 */
import { Duration, Effect, Layer, Schedule, type Scope } from "effect"
import * as ConsumersLayers from "../../layers/log/Consumers.js"
import {
  awaitSubscribed,
  type DurableStats,
  durableStats,
  durableTier,
  markCopiesUnwritten,
  recoverAll,
  requireDataDir
} from "../../layers/log/durable/DurableTier.js"
import { restoreAllConsumers, topicsToRecover } from "../../layers/log/durable/DurableTopicState.js"
import * as SegmentsLayers from "../../layers/log/durable/Segments.js"
import { readHeadLease } from "../../layers/log/HeadLease.js"
import * as LogReaderLayers from "../../layers/log/LogReader.js"
import { LeaseLineView, OrderLineView } from "../../layers/log/RecordViews.js"
import type { SequencerLayerOptions } from "../../layers/log/Sequencer.js"
import { everyTick } from "../../layers/region/Cadence.js"
import * as DirectoryLayers from "../../layers/region/Directory.js"
import { describePages, regionPages } from "../../layers/region/RegionPages.js"
import { LAYOUT_VERSION, Offsets } from "../../layers/region/Superblock.js"
import {
  attachRegion,
  controlTransport,
  coordinatorClient,
  coordinatorServer,
  createRegion,
  headLog,
  processSlot,
  type RegionAccess
} from "../../layers/Roles.js"
import {
  checkSequencerOptions,
  Sequencer,
  SequencerLeaseHeld,
  SequencerLeaseLost
} from "../../services/log/Sequencer.js"
import { TopicExists, Topics, type TopicSpec } from "../../services/log/Topics.js"
import {
  CxlMemory,
  type CxlMemoryShape,
  LINE_BYTES,
  type RegionExists,
  RegionLayoutMismatch,
  type RegionMissing
} from "../../services/region/CxlMemory.js"
import type { RegionConfig } from "../../services/RegionLayout.js"
import { RegionLayout } from "../../services/RegionLayout.js"
import { bindRegionCredentials } from "../admin/RegionCredentials.js"
import { inspectRegion, removeRegion, unlink } from "../admin/Regions.js"
import { sampleGroupMetrics } from "./GroupMetrics.js"
import { requireRecoverable, requireWritableDataDir, topicsRecordedIn } from "./HeadDataDir.js"
import { DEFAULT_STANDBY_CHECK_MS } from "./HeadDefaults.js"
import { HeadActive, HeadAttachRegionMissing, HeadRegionExists, RegionUnfinished } from "./HeadRefusals.js"
import { report } from "./Report.js"

export interface HeadOptions {
  readonly region: RegionAccess
  readonly config: RegionConfig
  readonly topics: ReadonlyArray<TopicSpec>
  readonly keep: boolean
  /** Take over the existing region (its head gone) instead of creating one. */
  readonly attach: boolean
  /** Watch the region's head and take over when its lease lapses (implies attaching). */
  readonly standby?: boolean
  /** How often a standby looks at the lease. */
  readonly checkEveryMs?: number
  readonly sequencer: SequencerLayerOptions
  /** How often to report each topic's ordered count to an orchestrator (only when there is one: an IPC parent). */
  readonly reportEveryMs: number
  /** The durable tier's data directory: topics with replication factor 2 are persisted there (docs/durability.md). */
  readonly dataDir?: string
  /** Rebuild the RF 2 topics' logs from `dataDir` before serving (the region is new). */
  readonly recover?: boolean
  /** Remove the region as it stops although it attached to it (an orchestrator's standby that took over). */
  readonly removeOnExit?: boolean
  /** Run once this process holds the lease, for as long as it is the head: a standby's metrics endpoint (Observe.ts). */
  readonly whenHead?: Effect.Effect<void, never, Scope.Scope>
}

/**
 * Reports each topic's ordered message count (the end of its total order), looked at every
 * `everyMs` and sent when it moved: read from its order line, the one field the report needs
 * (`LogReader.bounds` would also walk the retained window for the earliest offset, at every
 * report). An idle log sends nothing, so its orchestrator is not woken for it.
 */
const reportOrdered = (topics: ReadonlyArray<TopicSpec>, everyMs: number) =>
  Effect.gen(function*() {
    const region = yield* CxlMemory
    const area = (yield* RegionLayout).log
    const lookup = (yield* Topics).lookup
    const lines: Array<readonly [string, number]> = []
    for (const topic of topics) {
      lines.push([topic.name, area.orderLine((yield* lookup(topic.name).pipe(Effect.orDie)).id)])
    }
    const orderLines = new OrderLineView(region)
    let sent: ReadonlyArray<number> | undefined
    const look = Effect.sync(() => {
      const ordered: Record<string, number> = {}
      const ends: Array<number> = []
      for (const [name, line] of lines) {
        region.invalidate(line, LINE_BYTES)
        ends.push(ordered[name] = orderLines.totalOrder(line))
      }
      if (sent !== undefined && ends.every((end, i) => end === sent![i])) return
      sent = ends
      report({ event: "ordered", ordered })
    })
    // On the cadence's grid (Cadence.ts), with the head's other periodic work.
    return yield* Effect.zipRight(look, everyTick(() => everyMs, look))
  })

/** A head that lost its lease to a newer one (it was stopped or hung past the lease): it exits without writing. */
const exitFenced = (lost: SequencerLeaseLost): never => {
  report({ event: "fenced", epoch: lost.epoch, holderPid: lost.holderPid })
  process.stderr.write(`cxlog head: ${lost.message}; exiting without writing\n`)
  // No finalizer may run: each would write (close the broadcast ring, release slots) into a region a newer head owns.
  process.exit(3)
}

/** Creates each topic, or with `attach` keeps one that exists with the same spec. */
const ensureTopics = (specs: ReadonlyArray<TopicSpec>, attach: boolean) =>
  Effect.gen(function*() {
    const topics = yield* Topics
    const existing = attach ? yield* topics.list : []
    for (const spec of specs) {
      const found = existing.find((t) => t.name === spec.name)
      if (found === undefined) yield* topics.create(spec)
      else if (
        found.order !== spec.order || found.ackLevel !== spec.ackLevel ||
        found.replicationFactor !== spec.replicationFactor
      ) {
        return yield* new TopicExists({ name: spec.name })
      }
    }
  })

/** One head's life on the region: create (or attach), coordinator and sequencer, until stopped or fenced. */
const serveIn = (options: HeadOptions) =>
  Effect.gen(function*() {
    const sequencer = yield* Sequencer
    // Stopped (SIGSTOP) past its lease and continued: look before anything else runs.
    const onContinue = () => {
      if (!sequencer.holdsLease()) exitFenced(new SequencerLeaseLost({ epoch: sequencer.epoch, holderPid: 0 }))
    }
    yield* Effect.acquireRelease(Effect.sync(() => process.on("SIGCONT", onContinue)), () =>
      Effect.sync(() => process.off("SIGCONT", onContinue)))
    if (options.removeOnExit === true) {
      yield* Effect.addFinalizer(() =>
        Effect.zipRight(
          Effect.logInfo(`head: removing region ${options.region.name} (this run's head, taken over)`),
          unlink(options.region.name)
        )
      )
    }
    if (options.whenHead !== undefined) {
      yield* options.whenHead
    }
    yield* requireDataDir(options.topics, options.dataDir)
    yield* ensureTopics(options.topics, options.attach)
    // The region's topics, not only those given: a head that attached or took over serves every topic its region holds.
    const topics = yield* (yield* Topics).list
    const region = yield* CxlMemory
    // Its default credential files are this region's from now on (a region made again under the name gets others).
    yield* Effect.try(() =>
      bindRegionCredentials(options.region.name, region.f64[Offsets.createdAtMs / 8]!)
    ).pipe(
      Effect.catchAll((error) =>
        Effect.logWarning(`head: cannot bind the region's credential files to it: ${String(error)}`)
      )
    )
    const layout = yield* RegionLayout
    const heap = yield* Effect.scoped(Effect.flatMap(DirectoryLayers.make(layout.directory), (d) => d.usage))
    yield* Effect.logInfo(
      `head: region ${options.region.name} (${
        (layout.totalBytes / 2 ** 20).toFixed(1)
      } MiB), sequencer epoch ${sequencer.epoch}, topics: ${
        topics.map((t) => `${t.name} (order ${t.order}, ack ${t.ackLevel})`).join(", ") || "none"
      }; directory: ${heap.objects} objects, heap ${(heap.freeBytes / 2 ** 20).toFixed(1)} of ${
        (heap.heapBytes / 2 ** 20).toFixed(1)
      } MiB free; ${describePages(regionPages(options.region.name))}`
    )
    let recoverStarted: number | undefined
    let recoveredMs: number | undefined
    if (options.dataDir !== undefined) {
      const segments = SegmentsLayers.layer({ directory: options.dataDir })
      const regionLog = Layer.unwrapEffect(
        Effect.map(RegionLayout, (l) => Layer.merge(LogReaderLayers.layer(l.log), ConsumersLayers.layer(l.log)))
      )
      if (options.recover === true) {
        recoverStarted = performance.now()
        yield* recoverAll(layout.log).pipe(Effect.provide(segments))
        // Named consumers at their committed offsets, before the head is ready (and before the tier's first snapshot).
        const recovered = (yield* (yield* Topics).list).filter((t) => t.replicationFactor >= 2)
        yield* restoreAllConsumers(recovered).pipe(Effect.provide(Layer.merge(segments, regionLog)))
      }
      const stats: DurableStats = { streams: new Map(), subscribed: new Set() }
      yield* durableTier(layout.log, stats).pipe(Effect.provide(Layer.merge(segments, regionLog)), Effect.forkScoped)
      // Ready only once every RF 2 topic's writer holds retention: nothing published can be recycled before it is on disk.
      yield* awaitSubscribed(
        stats,
        (yield* (yield* Topics).list).filter((t) => t.replicationFactor >= 2).map((t) => t.name),
        10_000
      )
      yield* Effect.logInfo(`head: durable tier in ${options.dataDir} (topics with replication factor 2)`)
      // From the first record read to the tier writing again (bench durable: the head's start around it swings on a loaded machine).
      if (recoverStarted !== undefined) recoveredMs = performance.now() - recoverStarted
      if (process.send !== undefined) {
        yield* Effect.sync(() => report({ event: "durable", ...durableStats(stats) })).pipe(
          Effect.repeat(Schedule.spaced(Duration.millis(options.reportEveryMs))),
          Effect.forkScoped
        )
      }
    } else {
      yield* markCopiesUnwritten(layout.log, topics)
    }
    yield* sampleGroupMetrics
    report({
      event: "ready",
      region: options.region.name,
      epoch: sequencer.epoch,
      pid: process.pid,
      ...(recoveredMs === undefined ? {} : { recoveredMs })
    })
    // Progress reports are for an orchestrator (`cxlog run` / `bench`); a head started by hand has no one to tell, and no timer.
    if (process.send !== undefined) {
      yield* reportOrdered(topics, options.reportEveryMs).pipe(Effect.forkScoped)
    }
    return yield* sequencer.run.pipe(
      Effect.catchTag("SequencerLeaseLost", (lost) => Effect.sync(() => exitFenced(lost)))
    )
  }).pipe(
    Effect.scoped,
    Effect.provide(
      coordinatorClient().pipe(
        Layer.provideMerge(coordinatorServer()),
        Layer.provideMerge(headLog(
          {
            ...options.sequencer,
            onFirstOrdered: (atMs) => report({ event: "firstOrdered", atMs, pid: process.pid })
          },
          // The directory's writer is the lease holder: a newer head took both over.
          (fenced) => Effect.sync(() => exitFenced(new SequencerLeaseLost({ epoch: fenced.epoch, holderPid: 0 }))),
          options.dataDir
        )),
        Layer.provideMerge(controlTransport),
        Layer.provideMerge(processSlot("head", 0)),
        Layer.provideMerge(
          options.attach ? attachRegion(options.region) : createRegion(options.region, options.config, options.keep)
        )
      )
    ),
    Effect.catchTag("RegionExists", (exists) =>
      Effect.flatMap(
        inspectRegion(options.region.name),
        (info): Effect.Effect<never, RegionExists | HeadRegionExists | RegionUnfinished | RegionLayoutMismatch> =>
          info === undefined
            ? Effect.fail(exists)
            : info.unfinished === true && !info.inUse
            ? Effect.fail(new RegionUnfinished({ region: info.name }))
            // Another build's region left behind: neither --attach nor its topics (unread) are anything to offer, only its removal.
            : !info.inUse && info.layoutVersion !== LAYOUT_VERSION
            ? Effect.fail(
              new RegionLayoutMismatch({ name: info.name, expected: LAYOUT_VERSION, found: info.layoutVersion })
            )
            : Effect.fail(
              new HeadRegionExists({
                region: info.name,
                headPid: info.kind === "head" ? info.owner.pid : info.processes.find((p) => p.slot === 0)?.pid ?? 0,
                headAlive: info.inUse,
                orderedMessages: info.orderedMessages,
                topics: info.topics
              })
            )
      )),
    Effect.catchTag("RegionMissing", (missing): Effect.Effect<never, HeadAttachRegionMissing | RegionMissing> =>
      // With a data directory an --attach recovers a missing region instead (headIn).
      options.attach && options.standby !== true && options.dataDir === undefined
        ? Effect.fail(new HeadAttachRegionMissing({ region: options.region.name }))
        : Effect.fail(missing)),
    Effect.catchTag("SequencerLeaseHeld", (held): Effect.Effect<never, HeadActive | SequencerLeaseHeld> =>
      options.standby === true
        ? Effect.fail(held)
        : Effect.fail(new HeadActive({ region: options.region.name, pid: held.pid, expiresAtMs: held.expiresAtMs })))
  )

/** The head in a region it makes; one a head was killed while making is removed and made anew, once. */
const serve = (options: HeadOptions) =>
  serveIn(options).pipe(Effect.catchTag("RegionUnfinished", (unfinished) =>
    Effect.zipRight(
      Effect.logWarning(
        `head: region ${unfinished.region} was never made (its creator stopped before writing it; it holds nothing): making it anew`
      ),
      Effect.flatMap(Effect.either(removeRegion(unfinished.region)), () => serveIn(options))
    )))

/**
 * Whether the region's head is gone: its lease is not held (no holder, expired, or its process
 * exited: HeadLease.ts). A region no head has held yet (epoch 0) is its creator's to start: not gone.
 */
const headGone = (region: CxlMemoryShape, lines: LeaseLineView): boolean => {
  region.invalidate(Offsets.sequencerLease, LINE_BYTES)
  const lease = readHeadLease(lines, Date.now())
  return lease.epoch !== 0 && !lease.held
}

/**
 * Maps the region and waits (a timer, no spinning) until its head is gone. A region that does
 * not exist yet, or is still being created, is waited for too: a standby may start with its head.
 */
const awaitHeadGone = (options: HeadOptions) => {
  const everyMs = options.checkEveryMs ?? DEFAULT_STANDBY_CHECK_MS
  return Effect.gen(function*() {
    const region = yield* CxlMemory
    const lines = new LeaseLineView(region)
    while (!headGone(region, lines)) yield* Effect.sleep(everyMs)
  }).pipe(
    Effect.provide(attachRegion(options.region)),
    Effect.retry({
      while: (e) => e._tag === "RegionMissing" || e._tag === "RegionNotReady",
      schedule: Schedule.spaced(Duration.millis(everyMs))
    })
  )
}

const standby = (options: HeadOptions) =>
  Effect.gen(function*() {
    // Started by an orchestrator (cxlog serve, cxlog run), it is that run's head once it takes over: it
    // removes the region as it stops, as the head it replaced would have (a SIGKILLed serve leaves nobody else to).
    const attached: HeadOptions = {
      ...options,
      attach: true,
      removeOnExit: process.send !== undefined && !options.keep,
      sequencer: { ...options.sequencer, waitForLeaseMs: 0 }
    }
    report({ event: "standby", region: options.region.name, pid: process.pid })
    yield* Effect.logInfo(
      `head: standing by for region ${options.region.name}, checking its lease every ${
        options.checkEveryMs ?? DEFAULT_STANDBY_CHECK_MS
      } ms`
    )
    for (;;) {
      yield* awaitHeadGone(options)
      const standingBy = yield* serve(attached).pipe(
        Effect.as(false),
        Effect.catchTags({
          SequencerLeaseHeld: (held) =>
            Effect.as(Effect.logInfo(`head: another head (pid ${held.pid}) took over first; standing by`), true),
          // The last head is stopped inside a round (it would write on once resumed): no takeover yet, and no exit either.
          // The lease was let go; the next try waits on that round again, and goes on once it ends or its process is gone.
          SequencerEarlierRoundStopped: (stopped) =>
            Effect.as(
              Effect.logWarning(
                `head: process ${stopped.pid}, named by an earlier head's round marker, has been stopped inside its round for ${stopped.waitedMs} ms; ` +
                  `standing by (this head takes over once it is resumed or gone)`
              ),
              true
            ),
          // The last head stopped and removed the region (it was not started with --keep): wait for the next one.
          RegionMissing: () =>
            Effect.as(
              Effect.logWarning(`head: region ${options.region.name} was removed; standing by for a new one`),
              true
            )
        })
      )
      if (!standingBy) return
    }
  })

/**
 * `--recover DIR` (or `--attach` finding no region): a new region with the topics given and every
 * other topic the data directory recorded, rebuilt from it.
 */
const recovering = (options: HeadOptions & { readonly dataDir: string }) =>
  Effect.gen(function*() {
    const topics = yield* topicsToRecover(options.topics).pipe(
      Effect.provide(SegmentsLayers.layer({ directory: options.dataDir }))
    )
    yield* Effect.logInfo(`head: recovering ${topics.length} topic(s) from ${options.dataDir}: ${
      topics.map((t) => t.name).join(", ") || "none"
    }`)
    return yield* serve({ ...options, topics, attach: false, recover: true })
  })

/**
 * A plain start with a data directory: one that records topics holds the log of a head before
 * this one (stopped, or everything was killed), so the region is made again from it, as
 * `--recover` does; a new one starts empty.
 */
const startOrRecover = (options: HeadOptions & { readonly dataDir: string }) =>
  Effect.flatMap(
    topicsRecordedIn(options.dataDir),
    (recorded) =>
      recorded.length === 0 ? serve(options) : Effect.zipRight(
        Effect.logInfo(
          `head: the data directory ${options.dataDir} records topic(s) ${
            recorded.join(", ")
          } of a head before: making the region again from it (as --recover does)`
        ),
        recovering(options)
      )
  )

export const head = (options: HeadOptions) =>
  // Checked at start, before a region is made: a standby's sequencer layer would find a bad bound only at its takeover.
  Effect.zipRight(checkSequencerOptions(options.sequencer), headWith(options))

const headWith = (options: HeadOptions) =>
  options.dataDir === undefined
    ? headIn(options)
    : Effect.zipRight(
      Effect.zipRight(requireRecoverable(options), requireWritableDataDir(options.dataDir)),
      headIn(options)
    )

const headIn = (options: HeadOptions) => {
  const { dataDir } = options
  if (options.standby === true) return standby(options)
  if (options.recover === true && dataDir !== undefined) return recovering({ ...options, dataDir })
  if (!options.attach && dataDir !== undefined) return startOrRecover({ ...options, dataDir })
  if (!options.attach || dataDir === undefined) return serve(options)
  // The region is gone but its data directory is not: rebuild from it. The new region is kept on
  // exit, as an attached one is, so the next `--attach` finds it.
  return serve(options).pipe(Effect.catchTag("RegionMissing", (missing) =>
    Effect.zipRight(
      Effect.logWarning(
        `head: region ${missing.name} does not exist; recovering it from the data directory ${dataDir}`
      ),
      recovering({ ...options, dataDir, keep: true })
    )))
}
