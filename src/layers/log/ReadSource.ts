/**
 * What the one reading algorithm (LogReader.ts) runs over: each topic's total order wherever its
 * bytes live — the region (RegionReadTopic.ts) or the in-process store (LogReaderMemory.ts).
 */
import type { Effect, Scope } from "effect"
import type { HeadUnavailable } from "../../services/log/HeadWatch.js"
import type { SubscriberTableFull } from "../../services/log/LogReader.js"
import type { TopicDeleted, TopicInfo, TopicNotFound } from "../../services/log/Topics.js"
import type { BatchView } from "./ReadViews.js"

/** One topic's total order as a reader sees it, wherever its bytes live. */
export interface ReadTopic {
  readonly info: TopicInfo
  /** Batches 0..committed-1 are in the total order. */
  readonly committed: () => number
  /** The message offset after the last committed batch. */
  readonly total: () => number
  /**
   * The first batch from which every batch to `committed` is held (`committed` if none): the start
   * of the order a reader can read whole. Each writer lane recycles its own Blog, so an idle lane's
   * old batch can still be held behind batches another lane has recycled; it is not the start.
   */
  readonly firstHeld: (committed: number) => number
  /** The first message offset a trim left it (0 when none did): nothing before it is read. */
  readonly firstOffset: () => number
  /** Whether batch `g` and its payload are still held. */
  readonly retained: (g: number) => boolean
  /** The message offset of batch `g`'s first message, or undefined if it left the window. */
  readonly totalOrderOf: (g: number) => number | undefined
  /** Reads batch `g` into `view`; "gone" if it left the retained window, "corrupt" if its fields fail their checks. */
  readonly load: (g: number, view: BatchView) => "ok" | "gone" | "corrupt"
  /** Whether batch `g`, loaded into `view`, is still intact (after the callbacks). */
  readonly stillThere: (g: number, view: BatchView) => boolean
  /** Whether the topic was deleted (a cursor's reads fail with TopicDeleted from then on). */
  readonly deleted: () => boolean
  /** Keeps the topic's memory from reuse until the scope closes (a cursor's lifetime), or TopicDeleted if it is gone. */
  readonly pin: Effect.Effect<void, TopicDeleted, Scope.Scope>
  /** Registers a durable cursor at batch `next` until the scope closes; returns how to move it on. */
  readonly hold: (next: number) => Effect.Effect<(next: number) => void, SubscriberTableFull, Scope.Scope>
}

export interface ReadSource {
  readonly topic: (name: string) => Effect.Effect<ReadTopic, TopicNotFound>
  /** True as soon as `condition()` holds, false after `timeoutMs`; `waitingFor` names what for, should the wait fail. */
  readonly await: (
    condition: () => boolean,
    timeoutMs: number,
    waitingFor: () => string
  ) => Effect.Effect<boolean, HeadUnavailable>
}
