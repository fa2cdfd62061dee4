/**
 * What the one append algorithm (Appender.ts) runs over: a broker's targets, one per topic, and
 * where their bytes live — the region's log area (AppendRegion.ts) or the in-process store
 * (AppenderMemory.ts).
 */
import type { Effect } from "effect"
import type { BatchHeader, BatchRejected } from "../../services/log/Appender.js"
import type { TopicDeleted, TopicNotFound } from "../../services/log/Topics.js"
import type { AppendCursors } from "./AppendRoom.js"
import type { LogConfig } from "./Layout.js"
import type { PbrKindCode } from "./Records.js"
import type { SessionTable } from "./SessionTable.js"

/** One topic as this broker appends to it: its cursors, and what depends on where its bytes live. */
export interface AppendTarget {
  readonly topic: string
  readonly cursors: AppendCursors
  /** Payload bytes of its Blog, its PBR's slots and the largest batch it takes (each topic has its own, from its shape). */
  readonly blogBytes: number
  readonly pbrSlots: number
  readonly maxBatchBytes: number
  /** The largest message it takes (value, key and headers: its spec's maxMessageBytes). */
  readonly maxMessageBytes: number
  /**
   * Frees what the sequencer consumed and no durable subscriber needs (`reclaim`), then the
   * Blog bytes a batch of `bytes` needs (`releaseBlog`), and publishes what moved.
   */
  readonly reclaim: (bytes: number) => void
  /** Writes the payload (`fill`) at Blog `position` and the header into PBR position `pbrSeq`, the commit word last. */
  readonly write: (
    header: BatchHeader,
    pbrSeq: number,
    position: number,
    fill: (dst: Uint8Array) => void,
    kind: PbrKindCode
  ) => void
  /** The Blog space at `position` (from `reserve`) as a view of `bytes`, for receiving a payload in place. */
  readonly view: (position: number, bytes: number) => Uint8Array
  /** After the cursors moved past a batch: publishes them and wakes the sequencer. */
  readonly published: () => void
  /** An append starts (+1) or stops (-1) waiting for room; a start also publishes `ringFullWaits`. */
  readonly waiting: (delta: 1 | -1) => void
  /**
   * When named consumers' retention keeps this broker from reclaiming room (`heldBatch`): the
   * lowest of their cursors; undefined when what keeps it, if anything, is no named consumer.
   */
  readonly consumerHold: () => number | undefined
  /**
   * Cuts off the named consumers that hold this broker's room with a cursor at or below `cursor`
   * (the lowest one, unmoved for the whole bound: consumers still moving above it are spared);
   * returns how many this call cut off.
   */
  readonly cutOffConsumers: (cursor: number) => number
}

/** Where a broker's appends land: the region's log area or the in-process store. */
export interface AppendBacking {
  readonly brokerId: number
  readonly config: LogConfig
  /** How long an append waits for room (default 10 s). */
  readonly timeoutMs: number | undefined
  /** How long appends wait for room named consumers hold before they are cut off (default 30 s). */
  readonly consumerHoldMs: number | undefined
  /**
   * The topic's target if it is set up (the hot path: no Effect); undefined if it is not
   * yet, TopicNotFound if the backing knows at once that there is no such topic, or
   * TopicDeleted the first time it is asked after the target's topic was deleted (the target
   * is dropped then: a later call sets up whatever topic has the name by then, if any).
   */
  readonly known: (topic: string) => AppendTarget | TopicNotFound | TopicDeleted | undefined
  /** The topic's target, set up on first use. */
  readonly target: (topic: string) => Effect.Effect<AppendTarget, TopicNotFound | TopicDeleted | BatchRejected>
  /** The topic's session table (its target set up first, so this process holds the topic while it writes there). */
  readonly sessions: (topic: string) => Effect.Effect<SessionTable, TopicNotFound | TopicDeleted | BatchRejected>
  /**
   * Called once by the appender with what it does when a target is dropped (its topic deleted):
   * it takes back the space it reserved there, before the backing lets the topic's memory go.
   */
  readonly onDropped: (handler: (target: AppendTarget) => void) => void
  /** True as soon as `condition()` holds, false after `timeoutMs`. */
  readonly await: (condition: () => boolean, timeoutMs: number) => Effect.Effect<boolean>
}
