/**
 * The live layers of an app process: this process as a member of region CXLOG_REGION (default
 * cxlog), with Channels and Services by name over its directory and rings (a name not found is
 * created by the region's head through its coordinator), and that Coordinator.
 */
import { ChannelsLayers, DirectoryLayers, RegionLayout, Roles, ServicesLayers } from "cxlog"
import { Config, Effect, Layer } from "effect"

export const memberLayers = Effect.map(
  Config.string("CXLOG_REGION").pipe(Config.withDefault("cxlog")),
  (region) => {
    const directory = Layer.unwrapEffect(
      Effect.map(RegionLayout.RegionLayout, (layout) => DirectoryLayers.layer(layout.directory))
    )
    const base = Layer.mergeAll(directory, Roles.coordinatorClient()).pipe(
      Layer.provideMerge(Roles.controlTransport),
      Layer.provideMerge(Roles.processSlot("client")),
      Layer.provideMerge(Roles.attachRegion({ name: region }))
    )
    // The coordinator too: a worker's and the dashboard's drainOnStop arrive at their supervisor's fence through it.
    return Layer.mergeAll(ChannelsLayers.layer, ServicesLayers.layer).pipe(Layer.provideMerge(base))
  }
)
