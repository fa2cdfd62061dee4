/**
 * The durable tier's record of what a topic is, beside its data: its spec and its named
 * consumers' committed offsets, kept by the head in the stream `state-NAME` of the data
 * directory. Each record is a whole snapshot (JSON: `{ spec, consumers: [{ name, committed,
 * cutOff }] }`); the last durable one is the state. The head appends one when a topic's
 * persisting starts and then whenever a consumer's commit moved (it looks every `everyMs`,
 * 100 ms by default, and waits for each snapshot's fdatasync before the next, so commits made
 * meanwhile are coalesced into one record). Recovery reads the last record: the spec lets
 * `--recover DIR` find every topic without `--topic` flags, and each consumer is created again
 * at its committed offset. Commits newer than the last snapshot are lost with the crash, so a
 * recovered consumer may deliver again what it read after that snapshot (at-least-once), never
 * skip anything.
 */
import { Data, Effect, Schema } from "effect"
import { Consumers } from "../../../services/log/Consumers.js"
import { LogReader } from "../../../services/log/LogReader.js"
import { type SegmentLogOptions, Segments } from "../../../services/log/Segments.js"
import { type TopicInfo, TopicSpec } from "../../../services/log/Topics.js"
import { streamOf } from "./DurableOrder.js"

export const stateStreamOf = (topic: string): string => `state-${topic}`

const STATE_PREFIX = "state-"
const encoder = new TextEncoder()
const decoder = new TextDecoder("utf-8", { ignoreBOM: true })
const DATA_PREFIX = "topic-"

const PersistedConsumer = Schema.Struct({
  name: Schema.String,
  committed: Schema.NonNegativeInt,
  cutOff: Schema.Boolean
})

/** One snapshot: the topic's spec and its named consumers. */
export const TopicState = Schema.Struct({
  spec: TopicSpec,
  consumers: Schema.Array(PersistedConsumer)
})
export type TopicState = typeof TopicState.Type

/**
 * Snapshots are small (a consumer is under 100 bytes) and only the last counts: 1 MiB segments,
 * and retention keeps two segments' worth, so the segment before an empty new one (whose record
 * may not be synced yet) is never the one deleted.
 */
const STATE_SEGMENTS: SegmentLogOptions = { segmentBytes: 1 << 20, retention: { maxBytes: 2 << 20 } }

/** A state stream's last record is not a snapshot (the checksum held, so it was written so). */
export class TopicStateCorrupt extends Data.TaggedError("TopicStateCorrupt")<
  { readonly stream: string; readonly record: number; readonly reason: string }
> {
  override get message() {
    return `the topic state in stream ${this.stream} (record ${this.record}) cannot be read: ${this.reason}`
  }
}

/** A topic's data is in the directory but not its spec (written before specs were kept, or lost at a crash right after its creation). */
export class TopicSpecUnknown
  extends Data.TaggedError("TopicSpecUnknown")<{ readonly topic: string; readonly directory: string }>
{
  override get message() {
    return `the data directory ${this.directory} holds topic ${this.topic}'s messages but not its spec: give it with --topic ${this.topic}:ORDER:ACK:2`
  }
}

/** A `--topic` flag differs from the spec the data directory recorded for that topic. */
export class TopicSpecConflict
  extends Data.TaggedError("TopicSpecConflict")<{ readonly given: TopicSpec; readonly recorded: TopicSpec }>
{
  override get message() {
    const show = (s: TopicSpec) => `${s.name}:${s.order}:${s.ackLevel}:${s.replicationFactor}`
    return `--topic ${show(this.given)} differs from the spec the data directory recorded (${
      show(this.recorded)
    }): give it as recorded, or leave the flag out`
  }
}

export interface PersistStateOptions {
  /** How often to look for moved commits (default 100 ms). */
  readonly everyMs?: number
  /** Bound on one snapshot's fdatasync (default 30 s). */
  readonly syncTimeoutMs?: number
  /** Called once a snapshot is durable (tests). */
  readonly onPersisted?: (state: TopicState) => void
}

/**
 * Keeps `topic`'s state (spec, consumers' committed offsets) in its state stream until
 * interrupted, or a write fails. Idle, it costs one look at the topic's consumer lines per `everyMs`.
 */
export const persistTopicState = (topic: TopicInfo, options: PersistStateOptions = {}) =>
  Effect.gen(function*() {
    const segments = yield* Segments
    const consumers = yield* Consumers
    const { everyMs = 100, syncTimeoutMs = 30_000 } = options
    const log = yield* segments.open(stateStreamOf(topic.name), STATE_SEGMENTS)
    const { generation: _generation, id: _id, ...spec } = topic
    let written: string | undefined
    for (;;) {
      const listed = yield* consumers.list(topic.name)
      const state: TopicState = {
        spec,
        consumers: listed.map((c) => ({ name: c.name, committed: c.committed, cutOff: c.cutOff }))
      }
      const json = JSON.stringify(state)
      if (json !== written) {
        const index = yield* log.append(encoder.encode(json), syncTimeoutMs)
        // Waiting for the sync is the coalescing: commits made meanwhile go into the next snapshot.
        yield* log.awaitDurable(index + 1, syncTimeoutMs)
        written = json
        options.onPersisted?.(state)
      }
      yield* Effect.sleep(everyMs)
    }
  }).pipe(Effect.scoped)

/** The last durable snapshot of `topic`'s state stream; undefined when it holds none. */
export const readTopicState = (topic: string) =>
  Effect.gen(function*() {
    const segments = yield* Segments
    const log = yield* segments.open(stateStreamOf(topic), STATE_SEGMENTS)
    if (log.durable() === 0 || log.durable() <= log.first()) return undefined
    const last = log.durable() - 1
    let text = ""
    yield* log.read(last, (_, record) => {
      text = decoder.decode(record)
      return false
    })
    const fail = (reason: string) => new TopicStateCorrupt({ stream: log.stream, record: last, reason })
    const parsed = yield* Effect.try({
      try: () => JSON.parse(text) as unknown,
      catch: (e) => fail(`not JSON (${String(e)})`)
    })
    return yield* Schema.decodeUnknown(TopicState)(parsed).pipe(Effect.mapError((e) => fail(e.message)))
  }).pipe(Effect.scoped)

/** The topics that streams named `streams` are of (a topic's data, its state, or both). */
const recordedNames = (streams: ReadonlyArray<string>): Set<string> => {
  const names = new Set<string>()
  for (const stream of streams) {
    if (stream.startsWith(STATE_PREFIX)) names.add(stream.slice(STATE_PREFIX.length))
    else if (stream.startsWith(DATA_PREFIX)) names.add(stream.slice(DATA_PREFIX.length))
  }
  return names
}

/** The names of the topics the data directory records (none when it does not exist yet). */
export const recordedTopics = Effect.flatMap(
  Segments,
  (segments) => Effect.map(segments.streams(), (streams) => [...recordedNames(streams)].sort())
)

/**
 * The topics `--recover` rebuilds: those given (`--topic`) and every other topic whose state or
 * data the directory holds, with its recorded spec. A flag that contradicts the recorded spec,
 * or data without a spec (and no flag), is a typed error: nothing is guessed.
 */
export const topicsToRecover = (given: ReadonlyArray<TopicSpec>) =>
  Effect.gen(function*() {
    const segments = yield* Segments
    const streams = yield* segments.streams()
    const names = recordedNames(streams)
    const topics = [...given]
    for (const name of [...names].sort()) {
      const recorded = streams.includes(stateStreamOf(name)) ? (yield* readTopicState(name))?.spec : undefined
      const flag = given.find((t) => t.name === name)
      if (flag !== undefined) {
        if (
          recorded !== undefined &&
          (recorded.order !== flag.order || recorded.ackLevel !== flag.ackLevel ||
            recorded.replicationFactor !== flag.replicationFactor)
        ) return yield* new TopicSpecConflict({ given: flag, recorded })
        continue
      }
      if (recorded === undefined) {
        // A state stream without a snapshot and without data: a topic that never got to persist anything.
        if (!streams.includes(streamOf(name))) continue
        return yield* new TopicSpecUnknown({ topic: name, directory: segments.directory })
      }
      topics.push(recorded)
    }
    return topics
  })

/**
 * Creates `topic`'s consumers again in the recovered log, each at its committed offset (kept
 * within the log: a snapshot may be newer than the data synced before the crash, and such a
 * consumer starts at the recovered end instead, where anything published again will be).
 * A consumer that was cut off is created cut off (holding nothing), as it was.
 */
export const restoreConsumers = (topic: TopicInfo, state: TopicState) =>
  Effect.gen(function*() {
    const consumers = yield* Consumers
    const reader = yield* LogReader
    const { end } = yield* reader.bounds(topic.name)
    const restored: Array<string> = []
    for (const saved of state.consumers) {
      const offset = Math.min(saved.committed, end)
      if (offset < saved.committed) {
        yield* Effect.logWarning(
          `recovery: topic ${topic.name}: consumer ${
            JSON.stringify(saved.name)
          } had committed ${saved.committed}, past the recovered log's end ${end}; it resumes at ${end}`
        )
      }
      // The batch holding the offset is where its hold starts; an offset the hot tier no longer holds holds from the oldest batch kept.
      const globalSeq = yield* reader.subscribe(topic.name, { from: offset }).pipe(
        Effect.catchTag("LogOutOfRange", () => reader.subscribe(topic.name, { from: "earliest" })),
        Effect.map((cursor) => cursor.nextBatch()),
        Effect.scoped
      )
      yield* Effect.scoped(Effect.map(consumers.join(topic.name, saved.name, { offset, globalSeq }), (lease) => {
        if (saved.cutOff) lease.relinquish()
      }))
      restored.push(`${saved.name} at ${offset}${saved.cutOff ? " (cut off)" : ""}`)
    }
    if (restored.length > 0) {
      yield* Effect.logInfo(`recovery: topic ${topic.name}: named consumers restored: ${restored.join(", ")}`)
    }
    return restored.length
  })

/** After recovery: every recovered topic's consumers, from its state stream. */
export const restoreAllConsumers = (topics: ReadonlyArray<TopicInfo>) =>
  Effect.forEach(
    topics,
    (topic) =>
      Effect.flatMap(readTopicState(topic.name), (state) =>
        state === undefined ? Effect.succeed(0) : restoreConsumers(topic, state)),
    { discard: true }
  )
