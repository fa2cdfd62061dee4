/**
 * How a member reads its group's topic: one cursor of the log (anonymous: a group holds no
 * retention). Messages a member hands out are copies of their own, so they stay valid however long
 * their deliveries are held:
 * - Without keys, a member reads where the next batches lie (`nextFrom`) and copies only the run
 *   it claims of one (`copyRun`), which counts only if the log still holds the batch after the
 *   copy was made: members claim from one frontier, and a batch copied whole is mostly claimed by
 *   others before the member that copied it comes back to it.
 * - byKey, a member reads a batch at a time into a copy of its payload (`next`), made inside the
 *   reader's callback and used only once the read confirmed the batch intact; what it keeps of the
 *   copy for a later pass is handed out only while the topic still holds it (`holds`: a trim since).
 * A reader that fell behind what the topic holds gets `GroupBehindRetention` naming the offsets,
 * never skipped messages.
 *
 * A message delivered again is read on its own (`readAt`, `batchAt`): a cursor opened at its offset for one batch.
 */
import { Effect, Exit, Scope } from "effect"
import { GroupBehindRetention, GroupCorrupt, GroupTopicGone } from "../../services/groups/ConsumerGroups.js"
import type { HeadUnavailable } from "../../services/log/HeadWatch.js"
import { type LogBatchView, type LogCursor, LogOutOfRange, type LogReaderShape } from "../../services/log/LogReader.js"
import { LogCorrupt, type TopicDeleted, type TopicNotFound } from "../../services/log/Topics.js"
import type { MessageHeader } from "../../services/net/Subscriber.js"
import {
  baseTimestamp,
  checkBatchPayload,
  MESSAGE_HEADER_BYTES,
  MessageRecord,
  messageRecordBytes,
  wholeViewOf
} from "../net/BatchPayload.js"

/** A message as a member hands it out: views of a payload copy of its own. */
export interface GroupMessage {
  readonly offset: number
  readonly timestamp: number
  readonly key: Uint8Array | undefined
  readonly headers: ReadonlyArray<MessageHeader> | undefined
  readonly value: Uint8Array
}

export type ReadError = GroupBehindRetention | GroupCorrupt | GroupTopicGone | LogCorrupt | TopicDeleted | TopicNotFound

/** Waits `ms` of real time (the log's own waits are real time too; a test's virtual clock moves only deadlines). */
export const pause = (ms: number): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    const timer = setTimeout(() => resume(Effect.void), ms)
    return Effect.sync(() => clearTimeout(timer))
  })

/** A batch's messages, copied out of the log. */
export class BatchCopy {
  private readonly record = new MessageRecord()
  private readonly view: DataView
  private readonly base: number
  /** Where each message's record starts in `payload`. */
  private readonly at: Uint32Array
  constructor(
    /** The batch's place in the total order (what the cursor says is held). */
    readonly globalSeq: number,
    /** The offset of its first message. */
    readonly start: number,
    readonly count: number,
    /** Checked (`checkBatchPayload`): every record's framing lies within it. */
    private readonly payload: Uint8Array,
    /** The batch's base timestamp, when `payload` starts past the batch's first record (which carries it). */
    base?: number
  ) {
    this.view = new DataView(payload.buffer, payload.byteOffset, payload.length)
    this.base = base ?? baseTimestamp(this.view)
    this.at = new Uint32Array(count)
    let at = 0
    for (let i = 0; i < count; i++) {
      this.at[i] = at
      at += messageRecordBytes(this.view.getUint32(at, true))
    }
  }
  get end(): number {
    return this.start + this.count
  }
  /** The key of message `i` of the batch (a view, for hashing; not kept). */
  keyOf(i: number): Uint8Array | undefined {
    this.record.load(this.payload, this.view, this.at[i]!, this.base)
    return this.record.key
  }
  message(i: number): GroupMessage {
    // The record is reused: what a message keeps of it (views of the payload, decoded headers) is its own.
    const record = this.record
    record.load(this.payload, this.view, this.at[i]!, this.base)
    return {
      offset: this.start + i,
      timestamp: record.timestamp,
      key: record.key,
      headers: record.headers,
      value: record.payload
    }
  }
}

/**
 * A batch read and not yet claimed whole: where its payload lies in the log (the region's memory
 * for a live member), not a copy. What is claimed of it is copied then (`GroupReader.copyRun`),
 * and used only if the log still holds the batch after the copy.
 */
export class BatchRef {
  constructor(
    readonly globalSeq: number,
    /** The offset of its first message. */
    readonly start: number,
    readonly count: number,
    readonly bytes: Uint8Array,
    readonly offset: number,
    readonly length: number
  ) {}
  get end(): number {
    return this.start + this.count
  }
}

/** Why a run claimed from a batch could not be copied: the log no longer holds it, or its records do not hold. */
export type RunProblem = { readonly gone: true } | { readonly corrupt: string }
const GONE: RunProblem = { gone: true }

/** Copies the batch the reader hands over (inside its callback: the view is valid only there). */
const copyOf = (batch: LogBatchView): BatchCopy | string => {
  // Copied by `set` into a new array: several times faster than `slice` of the region's memory.
  const payload = new Uint8Array(batch.length)
  payload.set(batch.bytes.subarray(batch.offset, batch.offset + batch.length))
  const problem = checkBatchPayload(payload, batch.messageCount)
  return problem ?? new BatchCopy(batch.globalSeq, batch.totalOrder, batch.messageCount, payload)
}

export class GroupReader {
  private cursor: LogCursor | undefined
  private scope: Scope.CloseableScope | undefined
  constructor(
    private readonly reader: LogReaderShape,
    private readonly group: string,
    private readonly topic: string,
    /** The generation of the topic the group was created on: a topic created again under its name is another. */
    private readonly generation: number
  ) {}

  /**
   * An offset its topic does not hold: one before what the topic holds is the group fallen behind;
   * one past the topic's end was never handed out, so the group's object says what it never wrote.
   */
  private behind = (e: LogOutOfRange, requested = e.requested): GroupBehindRetention | GroupCorrupt =>
    requested > e.end
      ? new GroupCorrupt({
        group: this.group,
        reason:
          `it needs offset ${requested} of topic ${this.topic}, which ends at ${e.end}: an offset its object keeps (its frontier or a pending message) is damaged`
      })
      : new GroupBehindRetention({ group: this.group, topic: this.topic, requested, earliest: e.earliest, end: e.end })

  private gone = () => new GroupTopicGone({ group: this.group, topic: this.topic })

  /** Whether the topic of the name now is the one the group was made on (not deleted, nor made again since). */
  private ours(): Effect.Effect<boolean> {
    return Effect.scoped(
      Effect.map(
        this.reader.subscribe(this.topic, { from: "latest" }),
        (cursor) => cursor.topic.generation === this.generation
      )
    ).pipe(Effect.orElseSucceed(() => false))
  }

  /** Fails GroupTopicGone when the topic of the name is no longer the group's (deleted, or made again since). */
  get checkTopic(): Effect.Effect<void, GroupTopicGone> {
    return Effect.flatMap(this.ours(), (ours) => (ours ? Effect.void : Effect.fail(this.gone())))
  }

  /**
   * Offsets the topic does not hold: the group fell behind its retention, or — when a topic made
   * again under the name holds other offsets — the group's topic is gone.
   */
  private outOfRange = (e: LogOutOfRange, requested = e.requested) =>
    Effect.flatMap(this.ours(), (ours) => Effect.fail(ours ? this.behind(e, requested) : this.gone()))

  /** Reads from `offset` on (the cursor before, if any, is closed). */
  open(offset: number): Effect.Effect<void, ReadError> {
    return Effect.gen(this, function*() {
      yield* this.close
      const scope = yield* Scope.make()
      this.scope = scope
      const cursor = yield* this.reader.subscribe(this.topic, { from: offset }).pipe(
        Scope.extend(scope),
        Effect.catchTags({
          LogOutOfRange: (e) => this.outOfRange(e, offset),
          SubscriberTableFull: (e) => Effect.die(e),
          // No topic of that name now: the group's was deleted (one created again is another topic, below).
          TopicNotFound: (e) => Effect.fail(e.unreadable === undefined ? this.gone() : e)
        })
      )
      if (cursor.topic.generation !== this.generation) return yield* this.gone()
      this.cursor = cursor
    })
  }

  isOpen(): boolean {
    return this.cursor !== undefined
  }

  /** The offset the next batch read starts at. */
  position(): number {
    return this.cursor?.position() ?? 0
  }

  /** The next batch, copied; undefined when none is committed yet. */
  next(): Effect.Effect<BatchCopy | undefined, ReadError> {
    const cursor = this.cursor
    if (cursor === undefined) return Effect.succeed(undefined)
    let copy: BatchCopy | string | undefined
    return cursor.pollBatches((batch) => (copy = copyOf(batch)), 1).pipe(
      Effect.catchTags({
        LogOutOfRange: (e) => Effect.fail(this.behind(e)),
        TopicDeleted: () => Effect.fail(this.gone())
      }),
      Effect.flatMap(() =>
        typeof copy === "string"
          ? Effect.fail(new LogCorrupt({ reason: `topic ${this.topic}: a batch at ${cursor.position()}: ${copy}` }))
          : Effect.succeed(copy)
      )
    )
  }

  /**
   * Up to `maxBatches` of the next batches: `read` says how many the cursor moved past (0: none
   * committed yet), `batches` holds those ending past `from`, in order, where they lie (nothing
   * is copied: a member copies only what it claims, `copyRun`).
   */
  nextFrom(from: number, maxBatches: number): Effect.Effect<{ read: number; batches: Array<BatchRef> }, ReadError> {
    const cursor = this.cursor
    if (cursor === undefined) return Effect.succeed({ read: 0, batches: [] })
    const batches: Array<BatchRef> = []
    return cursor.pollBatches((batch) => {
      if (batch.totalOrder + batch.messageCount <= from) return
      batches.push(
        new BatchRef(batch.globalSeq, batch.totalOrder, batch.messageCount, batch.bytes, batch.offset, batch.length)
      )
    }, maxBatches).pipe(
      Effect.map((read) => ({ read, batches })),
      Effect.catchTag("TopicDeleted", () => Effect.fail(this.gone())),
      // The group is behind only when its frontier is. The cursor may lag the frontier (others
      // claimed what it never read), and a trim past the cursor but not the frontier dropped
      // nothing the group still has to hand out: it reads on from the frontier.
      Effect.catchTag("LogOutOfRange", (e) =>
        from < e.earliest
          ? Effect.fail(this.behind(e, from))
          : cursor.position() < from
          ? Effect.zipRight(this.open(from), this.nextFrom(from, maxBatches))
          : Effect.fail(this.behind(e)))
    )
  }

  /**
   * Copies messages `from`…`from + count` of `batch` (read by `nextFrom`), found by the lengths of
   * its records where they lie; the copy counts only if the log still holds the batch after it
   * was made (else the bytes may be another batch's) and no trim cut past `from` meanwhile (the
   * batch stays for the messages from the cut on), and is then checked as its batch would be.
   */
  copyRun(batch: BatchRef, from: number, count: number): BatchCopy | RunProblem {
    const view = wholeViewOf(batch.bytes)
    const start = batch.bytes.byteOffset + batch.offset
    const end = start + batch.length
    const skip = from - batch.start
    let at = start
    let first = start
    let walked = 0
    for (; walked < skip + count && at + MESSAGE_HEADER_BYTES <= end; walked++) {
      at += messageRecordBytes(view.getUint32(at, true))
      if (walked + 1 === skip) first = at
    }
    const whole = walked === skip + count && at <= end && start + MESSAGE_HEADER_BYTES + 8 <= end
    const base = whole ? baseTimestamp(view, start) : 0
    const payload = whole ? new Uint8Array(at - first) : undefined
    payload?.set(batch.bytes.subarray(first - batch.bytes.byteOffset, at - batch.bytes.byteOffset))
    if (this.cursor === undefined || !this.cursor.holds(batch.globalSeq, from)) return GONE
    if (payload === undefined) return { corrupt: `the records of the batch at ${batch.start} run past its payload` }
    if (!Number.isSafeInteger(base) || base < 0) return { corrupt: `the batch at ${batch.start} has no base timestamp` }
    const problem = checkBatchPayload(payload, count, skip)
    return problem === undefined ? new BatchCopy(batch.globalSeq, from, count, payload, base) : { corrupt: problem }
  }

  /** Whether the topic still holds message `offset` of `copy`, read earlier: no trim cut past it since (nor the batch went). */
  holds(copy: BatchCopy, offset: number): boolean {
    return this.cursor !== undefined && this.cursor.holds(copy.globalSeq, offset)
  }

  /** The group fell behind what the topic holds at `offset` (a batch it read went before it was copied). */
  behindAt(offset: number): Effect.Effect<never, ReadError> {
    return Effect.flatMap(
      Effect.catchTag(this.reader.bounds(this.topic), "TopicNotFound", () => Effect.fail(this.gone())),
      ({ earliest, end }) => this.outOfRange(new LogOutOfRange({ topic: this.topic, requested: offset, earliest, end }))
    )
  }

  /** A claimed run whose records do not hold. */
  corrupt(reason: string): LogCorrupt {
    return new LogCorrupt({ reason: `topic ${this.topic}: ${reason}` })
  }

  /** True once a batch past the cursor is committed, false after `timeoutMs`. */
  awaitMore(timeoutMs: number): Effect.Effect<boolean, HeadUnavailable> {
    return this.cursor === undefined ? Effect.as(pause(timeoutMs), false) : this.cursor.awaitMore(timeoutMs)
  }

  /** The message at `offset`, read on its own. */
  readAt(offset: number): Effect.Effect<GroupMessage, ReadError> {
    return Effect.map(this.batchAt(offset), (copy) => copy.message(offset - copy.start))
  }

  /** The batch holding `offset`, read on its own (a cursor opened there for one batch). */
  batchAt(offset: number): Effect.Effect<BatchCopy, ReadError> {
    return Effect.scoped(Effect.gen(this, function*() {
      const cursor = yield* this.reader.subscribe(this.topic, { from: offset }).pipe(
        Effect.catchTags({
          LogOutOfRange: (e) => this.outOfRange(e, offset),
          SubscriberTableFull: (e) => Effect.die(e),
          TopicNotFound: (e) => Effect.fail(e.unreadable === undefined ? this.gone() : e)
        })
      )
      // Read by name: a topic made again under it holds other messages at the offset.
      if (cursor.topic.generation !== this.generation) return yield* this.gone()
      let copy: BatchCopy | string | undefined
      yield* cursor.pollBatches((batch) => (copy = copyOf(batch)), 1).pipe(
        Effect.catchTags({
          LogOutOfRange: (e) => Effect.fail(this.behind(e, offset)),
          TopicDeleted: () => Effect.fail(this.gone())
        })
      )
      if (typeof copy === "string") {
        return yield* new LogCorrupt({ reason: `topic ${this.topic}: the batch holding ${offset}: ${copy}` })
      }
      if (copy === undefined || offset < copy.start || offset >= copy.end) {
        return yield* new LogCorrupt({
          reason: `topic ${this.topic}: offset ${offset} was handed out but is not there`
        })
      }
      return copy
    }))
  }

  get close(): Effect.Effect<void> {
    return Effect.suspend(() => {
      const scope = this.scope
      this.scope = undefined
      this.cursor = undefined
      return scope === undefined ? Effect.void : Scope.close(scope, Exit.void)
    })
  }
}
