/** The in-memory Rpc: the live Rpc layer over the in-memory Rings fake — servers and clients in one process, no region. */
import { Layer } from "effect"
import type { Rpc } from "../../services/control/Rpc.js"
import * as RingsMemoryLayers from "./RingsMemory.js"
import { layer } from "./Rpc.js"

export const layerMemory: Layer.Layer<Rpc> = layer.pipe(Layer.provide(RingsMemoryLayers.layerMemory))
