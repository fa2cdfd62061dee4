/**
 * How a member reads its group's topic: one cursor of the log (anonymous: a group holds no
 * retention), read a batch at a time into a copy of the batch's payload, so the messages it hands
 * out stay valid however long their deliveries are held, and a batch only partly claimed is
 * claimed from again without reading it twice. The copy is made inside the reader's callback and
 * used only once the read confirmed the batch intact; a reader that fell behind what the topic
 * holds gets `GroupBehindRetention` naming the offsets, never skipped messages.
 *
 * A message delivered again is read on its own (`readAt`, `batchAt`): a cursor opened at its offset for one batch.
 */
import { Effect, Exit, Scope } from "effect"
import { GroupBehindRetention, GroupTopicGone } from "../../services/groups/ConsumerGroups.js"
import type { HeadUnavailable } from "../../services/log/HeadWatch.js"
import type { LogBatchView, LogCursor, LogOutOfRange, LogReaderShape } from "../../services/log/LogReader.js"
import { LogCorrupt, type TopicDeleted, type TopicNotFound } from "../../services/log/Topics.js"
import type { MessageHeader } from "../../services/net/Subscriber.js"
import { baseTimestamp, checkBatchPayload, MessageRecord, messageRecordBytes } from "../net/BatchPayload.js"

/** A message as a member hands it out: views of a payload copy of its own. */
export interface GroupMessage {
  readonly offset: number
  readonly timestamp: number
  readonly key: Uint8Array | undefined
  readonly headers: ReadonlyArray<MessageHeader> | undefined
  readonly value: Uint8Array
}

export type ReadError = GroupBehindRetention | GroupTopicGone | LogCorrupt | TopicDeleted | TopicNotFound

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
    /** The offset of its first message. */
    readonly start: number,
    readonly count: number,
    /** Checked (`checkBatchPayload`): every record's framing lies within it. */
    private readonly payload: Uint8Array
  ) {
    this.view = new DataView(payload.buffer, payload.byteOffset, payload.length)
    this.base = baseTimestamp(this.view)
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

/** Copies the batch the reader hands over (inside its callback: the view is valid only there). */
const copyOf = (batch: LogBatchView): BatchCopy | string => {
  // Copied by `set` into a new array: several times faster than `slice` of the region's memory.
  const payload = new Uint8Array(batch.length)
  payload.set(batch.bytes.subarray(batch.offset, batch.offset + batch.length))
  const problem = checkBatchPayload(payload, batch.messageCount)
  return problem ?? new BatchCopy(batch.totalOrder, batch.messageCount, payload)
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

  private behind = (e: LogOutOfRange, requested = e.requested) =>
    new GroupBehindRetention({ group: this.group, topic: this.topic, requested, earliest: e.earliest, end: e.end })

  /** Reads from `offset` on (the cursor before, if any, is closed). */
  open(offset: number): Effect.Effect<void, ReadError> {
    return Effect.gen(this, function*() {
      yield* this.close
      const scope = yield* Scope.make()
      this.scope = scope
      const cursor = yield* this.reader.subscribe(this.topic, { from: offset }).pipe(
        Scope.extend(scope),
        Effect.catchTags({
          LogOutOfRange: (e) => Effect.fail(this.behind(e, offset)),
          SubscriberTableFull: (e) => Effect.die(e)
        })
      )
      if (cursor.topic.generation !== this.generation) {
        return yield* new GroupTopicGone({ group: this.group, topic: this.topic })
      }
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
      Effect.catchTag("LogOutOfRange", (e) => Effect.fail(this.behind(e))),
      Effect.flatMap(() =>
        typeof copy === "string"
          ? Effect.fail(new LogCorrupt({ reason: `topic ${this.topic}: a batch at ${cursor.position()}: ${copy}` }))
          : Effect.succeed(copy)
      )
    )
  }

  /**
   * Up to `maxBatches` of the next batches: `read` says how many the cursor moved past (0: none
   * committed yet), `copies` holds those ending past `from`, in order — the batches wholly before
   * it (handed out already) are passed over without being copied.
   */
  nextFrom(from: number, maxBatches: number): Effect.Effect<{ read: number; copies: Array<BatchCopy> }, ReadError> {
    const cursor = this.cursor
    if (cursor === undefined) return Effect.succeed({ read: 0, copies: [] })
    const copies: Array<BatchCopy> = []
    let problem: string | undefined
    return cursor.pollBatches((batch) => {
      if (problem !== undefined || batch.totalOrder + batch.messageCount <= from) return
      const copy = copyOf(batch)
      if (typeof copy === "string") problem = copy
      else copies.push(copy)
    }, maxBatches).pipe(
      Effect.catchTag("LogOutOfRange", (e) => Effect.fail(this.behind(e))),
      Effect.flatMap((read) =>
        problem !== undefined
          ? Effect.fail(
            new LogCorrupt({ reason: `topic ${this.topic}: a batch before ${cursor.position()}: ${problem}` })
          )
          : Effect.succeed({ read, copies })
      )
    )
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
          LogOutOfRange: (e) => Effect.fail(this.behind(e, offset)),
          SubscriberTableFull: (e) => Effect.die(e)
        })
      )
      let copy: BatchCopy | string | undefined
      yield* cursor.pollBatches((batch) => (copy = copyOf(batch)), 1).pipe(
        Effect.catchTag("LogOutOfRange", (e) => Effect.fail(this.behind(e, offset)))
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
