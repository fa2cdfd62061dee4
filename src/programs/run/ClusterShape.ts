/** ClusterShape: the local cluster `cxlog run` and `cxlog bench` start, and the load its publisher offers. */
import type { OrderMode } from "../../services/log/OrderModes.js"

/** The cluster a run starts and the load its publisher offers; `cxlog bench` shares it. */
export interface ClusterShape {
  readonly totalBytes: number
  readonly messageBytes: number
  readonly brokers: number
  readonly order: OrderMode
  readonly ackLevel: 0 | 1 | 2
  readonly batchBytes: number
  /** The publisher's in-flight window, in batches (the most, while it adapts). */
  readonly window: number
  /** The window stays at `window` instead of adapting under it (`--fixed-window`). */
  readonly fixedWindow?: boolean
  /**
   * Published first, through the same publisher, connections and subscriber, and not measured:
   * the figures are then those of a warm cluster (V8 has compiled the hot paths of every role).
   */
  readonly warmupBytes?: number
  /** The publisher is local (`--local`): it appends into the region itself through no broker, in a broker slot of its own. */
  readonly local?: boolean
  /** The run topic's discard policy (`--discard`): what a full memory does (docs/log.md, "Retention, trim and purge"). */
  readonly discard?: "old" | "new"
}

/** A cluster shape's figures but for how much it publishes: what a run's report and a bench's runs name. */
export const shapeFigures = (shape: ClusterShape) => ({
  messageBytes: shape.messageBytes,
  brokers: shape.brokers,
  order: shape.order,
  ackLevel: shape.ackLevel,
  batchBytes: shape.batchBytes,
  window: shape.window,
  fixedWindow: shape.fixedWindow === true,
  local: shape.local === true,
  ...(shape.discard === undefined ? {} : { discard: shape.discard })
})
