/**
 * The order modes a topic may have, and what each implies: the one record code consults where a
 * topic's behaviour depends on its mode (the sequencer's engine, recovery, the ACK trackers, the
 * topic spec's checks, the audit, the CLI's help). Code asks a mode's policy, never its number.
 * A new mode is its literal in `OrderMode` and its row in `ORDER_POLICIES`; the compiler then
 * names every place that must decide something about it.
 */
import { Schema } from "effect"

/** 0: per-broker arrival only; 2: one total order; 4: + FIFO per (client, broker); 5: + FIFO per client session. */
export const OrderMode = Schema.Literal(0, 2, 4, 5)
export type OrderMode = typeof OrderMode.Type

export interface OrderPolicy {
  readonly mode: OrderMode
  /** What every subscriber sees, in a few words (the CLI's help). */
  readonly promise: string
  /**
   * Each session's batches are ordered in batch-seq order: a batch waits (is held) for the gap
   * before it, so a session's publish order holds across brokers and its frontier alone says
   * what is ordered (the durable tier's frontier relies on it). Without it a batch is ordered as
   * it arrives, up to AHEAD_WINDOW above its session's frontier, recorded in the session line's
   * ahead bitmap.
   */
  readonly sessionInSequence: boolean
}

export const ORDER_POLICIES: { readonly [M in OrderMode]: OrderPolicy } = {
  0: { mode: 0, promise: "per-broker arrival", sessionInSequence: false },
  2: { mode: 2, promise: "one total order", sessionInSequence: false },
  4: { mode: 4, promise: "+ FIFO per (client, broker)", sessionInSequence: false },
  5: { mode: 5, promise: "+ FIFO per client session", sessionInSequence: true }
}

/** The modes, in ascending order. */
export const ORDER_MODES: ReadonlyArray<OrderMode> = OrderMode.literals

export const orderPolicy = (mode: OrderMode): OrderPolicy => ORDER_POLICIES[mode]
