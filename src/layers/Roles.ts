/**
 * Role compositions: which layers a head, a broker and a region client are made of. The
 * head creates the region (its size and parameters from the RegionConfig); everyone else
 * attaches and recomputes the layout from the superblock.
 */
import { Effect, Layer } from "effect"
import { Sequencer } from "../services/log/Sequencer.js"
import type { BrokerOptions } from "../services/net/Broker.js"
import type { Coherence } from "../services/region/CxlMemory.js"
import { DirectoryWriter, type NotDirectoryWriter } from "../services/region/Directory.js"
import type { Role } from "../services/region/ProcessSlot.js"
import { type RegionConfig, RegionLayout } from "../services/RegionLayout.js"
import * as CoordinatorLayers from "./control/Coordinator.js"
import * as RingsLayers from "./control/Rings.js"
import * as RpcLayers from "./control/Rpc.js"
import * as ConsumerGroupsLayers from "./groups/ConsumerGroups.js"
import * as GroupServerLayers from "./groups/GroupServer.js"
import * as ChannelsLayers from "./ipc/Channels.js"
import * as ServicesLayers from "./ipc/Services.js"
import * as AckTrackerLayers from "./log/AckTracker.js"
import * as AppenderLayers from "./log/Appender.js"
import * as ConsumersLayers from "./log/Consumers.js"
import * as DiskCopiesLayers from "./log/durable/DiskCopies.js"
import * as SegmentsLayers from "./log/durable/Segments.js"
import * as TieredReaderLayers from "./log/durable/TieredReader.js"
import * as LaneServerLayers from "./log/LaneServer.js"
import * as LogReaderLayers from "./log/LogReader.js"
import * as SequencerLayers from "./log/Sequencer.js"
import * as TopicRetentionLayers from "./log/TopicRetention.js"
import * as TopicsLayers from "./log/Topics.js"
import * as BrokerLayers from "./net/Broker.js"
import * as PublisherLayers from "./net/Publisher.js"
import * as CxlMemoryLayers from "./region/CxlMemory.js"
import * as DirectoryLayers from "./region/Directory.js"
import * as ProcessSlotLayers from "./region/ProcessSlot.js"
import { regionBytes, regionFixedBytes, regionParams } from "./RegionLayout.js"
import * as RegionLayoutLayers from "./RegionLayout.js"

export interface RegionAccess {
  readonly name: string
  readonly coherence?: Coherence
}

/**
 * Creates the region for `config`; unlinked when the scope closes unless `keep`. The layout is
 * checked before the region is sized and mapped: a field out of range (a holder count in the
 * millions) is told as the variable that set it, not as a region too large to map.
 */
export const createRegion = (access: RegionAccess, config: RegionConfig, keep = false) =>
  Layer.unwrapEffect(Effect.as(
    RegionLayoutLayers.validate(config),
    RegionLayoutLayers.layer.pipe(
      Layer.provideMerge(
        CxlMemoryLayers.layer({
          name: access.name,
          size: regionBytes(config),
          reserveBytes: regionFixedBytes(config),
          mode: "create",
          params: regionParams(config),
          coherence: access.coherence ?? "coherent",
          keep
        })
      )
    )
  ))

export const attachRegion = (access: RegionAccess) =>
  RegionLayoutLayers.layer.pipe(
    Layer.provideMerge(
      CxlMemoryLayers.layer({ name: access.name, mode: "attach", coherence: access.coherence ?? "coherent" })
    )
  )

/** A layer built from the region's layout. */
const fromLayout = <A, E, R>(f: (layout: RegionLayoutLayers.Layout) => Layer.Layer<A, E, R>) =>
  Layer.unwrapEffect(Effect.map(RegionLayout, f))

/** This process's slot in the process table, with its Doorbell. */
export const processSlot = (role: Role, preferredSlot?: number) =>
  fromLayout((layout) =>
    ProcessSlotLayers.layer({
      table: layout.processTable,
      role,
      ...(preferredSlot === undefined ? {} : { preferredSlot })
    })
  )

/**
 * The head's log duties: the sequencer, and under its lease, at its epoch, the directory's writer
 * and so the topics' (a standby that takes the lease over takes the directory over too). A head
 * fenced out of the directory meanwhile is `onFenced`'s to end: nothing of it may write on.
 */
export const headLog = (
  sequencer: SequencerLayers.SequencerLayerOptions = {},
  onFenced: (fenced: NotDirectoryWriter) => Effect.Effect<never> = Effect.die,
  /** Where the head keeps the copies on disk of replication factor 2 topics (its durable tier's). */
  dataDir?: string
) =>
  fromLayout((layout) => {
    const sequencing = SequencerLayers.layer(layout.log, sequencer)
    const writer = Layer.scoped(
      DirectoryWriter,
      Effect.flatMap(Sequencer, (s) => DirectoryLayers.makeWriter({ area: layout.directory, epoch: s.epoch })).pipe(
        Effect.catchTag("NotDirectoryWriter", onFenced)
      )
    )
    const topics = TopicsLayers.layer(layout.log)
    // The Topics built over them delete a replication factor 2 topic's copy on disk with it.
    const diskCopies = dataDir === undefined
      ? DiskCopiesLayers.layerWithoutDataDir
      : DiskCopiesLayers.layer.pipe(Layer.provide(SegmentsLayers.layer({ directory: dataDir })))
    return Layer.mergeAll(
      topics,
      LaneServerLayers.layerServer(layout.log),
      TopicRetentionLayers.layer.pipe(Layer.provide(topics))
    ).pipe(
      Layer.provideMerge(diskCopies),
      Layer.provideMerge(writer),
      Layer.provideMerge(sequencing)
    )
  })

/**
 * What a broker needs of the log (`BrokerLog`): its broker slot's Appender, the AckTracker and
 * the topic table; and a LogReader and the named consumers, with which it serves subscribers.
 * Given the head's data directory, its LogReader also serves what the region recycled from disk.
 */
export const brokerLog = (brokerId: number, appender: { readonly consumerHoldMs?: number } = {}, dataDir?: string) =>
  fromLayout((layout) =>
    Layer.mergeAll(
      TopicsLayers.layer(layout.log),
      AppenderLayers.layer(layout.log, { brokerId, ...appender }),
      AckTrackerLayers.layer(layout.log),
      regionReader(layout, dataDir),
      ConsumersLayers.layer(layout.log)
    )
  )

/** The region's LogReader, tiered over the head's data directory when there is one. */
const regionReader = (layout: RegionLayoutLayers.Layout, dataDir: string | undefined) =>
  dataDir === undefined
    ? LogReaderLayers.layer(layout.log)
    : TieredReaderLayers.layer({ directory: dataDir }).pipe(
      Layer.provide(Layer.merge(LogReaderLayers.layer(layout.log), TopicsLayers.layer(layout.log)))
    )

export const brokerServer = (options: BrokerOptions) => BrokerLayers.layer(options)

/**
 * A local publisher on the region's host (PublisherLinkRegion.ts): an Appender in a broker slot of
 * its own and the AckTracker, in this process's process slot (its doorbell), over the region.
 */
export const localPublisher = (access: RegionAccess, options: Omit<PublisherLayers.LocalPublisherOptions, "region">) =>
  PublisherLayers.layerLocal({ ...options, region: access.name }).pipe(
    Layer.provide(
      fromLayout((layout) => Layer.merge(AppenderLayers.layerAnySlot(layout.log), AckTrackerLayers.layer(layout.log)))
    ),
    Layer.provide(processSlot("client").pipe(Layer.provideMerge(attachRegion(access))))
  )

/**
 * A local reader of the log (with the named consumers, so `SubscriberLayers.layer` can run over it);
 * with CXLOG_DATA_DIR naming the head's data directory, it reads what the region recycled from disk.
 */
export const reader = fromLayout((layout) =>
  Layer.mergeAll(
    TieredReaderLayers.layerConfig.pipe(
      Layer.provide(Layer.merge(LogReaderLayers.layer(layout.log), TopicsLayers.layer(layout.log)))
    ),
    TopicsLayers.layer(layout.log),
    ConsumersLayers.layer(layout.log)
  )
)

/**
 * A member of the region's consumer groups (and their administrator) on the region's host: its
 * groups over the region, the log read in place, the head's coordinator to create and delete
 * groups through. With `deadLetters`, a local publisher writes the dead letters (it takes a writer
 * slot of its own).
 */
export const groupMember = (
  access: RegionAccess,
  options: Partial<ConsumerGroupsLayers.GroupDefaults> & { readonly deadLetters?: boolean } = {}
) => {
  const { deadLetters, ...defaults } = options
  const groups = deadLetters === true
    ? ConsumerGroupsLayers.layer(defaults).pipe(Layer.provide(localPublisher(access, {})))
    : ConsumerGroupsLayers.layer(defaults)
  return groups.pipe(
    Layer.provideMerge(
      fromLayout((layout) =>
        Layer.mergeAll(
          LogReaderLayers.layer(layout.log),
          DirectoryLayers.layer(layout.directory),
          ConsumersLayers.layer(layout.log)
        )
      )
    ),
    Layer.provideMerge(coordinatorClient()),
    Layer.provideMerge(controlTransport),
    Layer.provideMerge(processSlot("client")),
    Layer.provideMerge(attachRegion(access))
  )
}

/**
 * What a broker serves consumer groups' connections with (GroupServer.ts): the region's groups,
 * whose members it holds for its clients as a member process of the region itself; dead letters
 * go through the broker's own broker slot (needs the broker's log, its coordinator client and the region).
 */
export const brokerGroups = (access: RegionAccess) =>
  GroupServerLayers.layer.pipe(
    Layer.provide(ConsumerGroupsLayers.layer()),
    Layer.provide(PublisherLayers.layerLocal({ region: access.name })),
    Layer.provide(fromLayout((layout) => DirectoryLayers.layer(layout.directory)))
  )

/** Rings and RPC over the region (needs the region and this process's doorbell). */
export const controlTransport = RpcLayers.layer.pipe(Layer.provideMerge(RingsLayers.layer))

/** The coordinator itself (head only): needs the transport and the topic table. */
export const coordinatorServer = (options?: CoordinatorLayers.ServerOptions) =>
  options === undefined ? CoordinatorLayers.layerServerConfig : CoordinatorLayers.layerServer(options)

/** Every process's coordinator client: joins on build, leaves on close. */
export const coordinatorClient = (options?: CoordinatorLayers.ClientOptions) => CoordinatorLayers.layer(options)

/**
 * A process of an application on the region's host: channels and services by name over the
 * region, their objects created by the head through its coordinator (docs/ipc.md).
 */
export const ipcMember = (access: RegionAccess) =>
  Layer.merge(ChannelsLayers.layer, ServicesLayers.layer).pipe(
    Layer.provide(fromLayout((layout) => DirectoryLayers.layer(layout.directory))),
    Layer.provide(coordinatorClient()),
    Layer.provideMerge(controlTransport),
    Layer.provideMerge(processSlot("client")),
    Layer.provideMerge(attachRegion(access))
  )
