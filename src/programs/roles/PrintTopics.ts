/**
 * `cxlog subscribe` without an audit: prints what it reads of one topic, or of several topics
 * and patterns (each line then says its topic), through the Subscriber — over TCP from any
 * broker, or from the region in place — holding no retention unless it reads as a named
 * consumer. With `limit` it prints exactly that many messages; a consumer then commits the
 * offset after the last one printed of each topic (and, while it runs, what it printed every
 * 100 ms). A closed stdout (`| head -1`) ends it normally, committing nothing past what stdout took.
 */
import { Data, Effect, Layer } from "effect"
import * as SubscriberLayers from "../../layers/net/Subscriber.js"
import { layerRemote, type RemoteSubscriberOptions } from "../../layers/net/SubscriberRemote.js"
import { attachRegion, processSlot, reader, type RegionAccess } from "../../layers/Roles.js"
import { isPattern } from "../../services/log/TopicPattern.js"
import {
  type MessageHeader,
  Subscriber,
  type SubscriberBatch,
  type SubscriberMessage,
  type SubscriptionError
} from "../../services/net/Subscriber.js"
import { report as reportToParent, reportFailure } from "./Report.js"
import { ReadIdle } from "./Subscribe.js"

export interface PrintOptions {
  /** A topic, or several topics and patterns (one name alone reads as a one-topic subscription). */
  readonly topics: ReadonlyArray<string>
  /** Where to start (default the earliest held); or `fromTime`, not both. */
  readonly from?: number | "earliest" | "latest"
  /** In place of `from`: the first message stamped at or after this time (ms since the epoch). */
  readonly fromTime?: number
  /** Read over TCP from these brokers (with these credentials); without, read the region in place. */
  readonly remote?: Pick<RemoteSubscriberOptions, "brokers" | "credentials" | "tls">
  readonly region: RegionAccess
  /** Read as this named consumer: it resumes where it committed, and commits what was printed. */
  readonly consumer?: string
  /** Print exactly this many messages, then commit and exit. */
  readonly limit?: number
  /** With `limit`: give up (`ReadIdle`) after this long without a new message. */
  readonly idleTimeoutMs: number
  readonly format: "text" | "json"
}

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true })

/** Bytes as UTF-8 text, or undefined when they are not. */
export const textOf = (bytes: Uint8Array): string | undefined => {
  try {
    return utf8.decode(bytes)
  } catch {
    return undefined
  }
}
export const base64 = (bytes: Uint8Array) =>
  Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString("base64")

/** Puts bytes in a line of JSON: as text under `name`, or in base64 under `nameBase64` when they are not UTF-8. */
export const putBytes = (line: Record<string, unknown>, name: string, bytes: Uint8Array): void => {
  const text = textOf(bytes)
  if (text === undefined) line[`${name}Base64`] = base64(bytes)
  else line[name] = text
}

/** A message's headers for a line of JSON, in their order: each value as `putBytes` puts it. */
export const headersField = (headers: ReadonlyArray<MessageHeader>) =>
  headers.map((h) => {
    const header: Record<string, unknown> = { name: h.name }
    putBytes(header, "value", h.value)
    return header
  })

/**
 * One output line: `offset<TAB>value` (base64 when the value is not UTF-8), or JSON with the
 * offset, timestamp, key and headers when the message has them, and the value. Each of key,
 * header value and value is text under its name, or base64 under `…Base64` when it is not UTF-8.
 * Reading several topics (`withTopic`), a line starts with its topic: `topic<TAB>offset<TAB>value`, or JSON's `topic`.
 */
export const formatLine = (format: PrintOptions["format"], m: SubscriberMessage, withTopic = false): string => {
  const text = textOf(m.payload)
  if (format === "text") return `${withTopic ? `${m.topic}\t` : ""}${m.offset}\t${text ?? base64(m.payload)}\n`
  const line: Record<string, unknown> = withTopic
    ? { topic: m.topic, offset: m.offset, timestamp: m.timestamp }
    : { offset: m.offset, timestamp: m.timestamp }
  if (m.key !== undefined) putBytes(line, "key", m.key)
  if (m.headers !== undefined) line["headers"] = headersField(m.headers)
  if (text === undefined) line["payloadBase64"] = base64(m.payload)
  else line["payload"] = text
  return `${JSON.stringify(line)}\n`
}

/**
 * Stdout failed (its reader went away: `cxlog subscribe … | head -1`): what was printed before
 * `position` reached it; the batch being written did not, so nothing past `position` may be
 * committed for it.
 */
export class OutputClosed extends Data.TaggedError("OutputClosed")<{
  readonly topic: string
  readonly printed: number
  /** Per topic, the offset after the last message stdout took. */
  readonly positions: ReadonlyMap<string, number>
  readonly reason: string
}> {
  override get message() {
    return `topic ${this.topic}: stdout closed (${this.reason}) after ${this.printed} messages`
  }
}

/** Writes `text` to stdout, resuming once it is written; fails with the write's error (EPIPE: the reader is gone). */
const writeOut = (text: string) =>
  Effect.async<void, Error>((resume) => {
    process.stdout.write(text, (error) => resume(error == null ? Effect.void : Effect.fail(error)))
  })

/**
 * Prints what the subscription reads (see the module's note): a one-topic subscription when
 * `topics` is one name, else one of several topics and patterns.
 */
export const printTopic = (options: PrintOptions) =>
  Effect.gen(function*() {
    const subscriber = yield* Subscriber
    const first = options.topics[0] ?? ""
    const several = options.topics.length > 1 || isPattern(first)
    const label = options.topics.join(", ")
    const subscribeOptions = {
      ...(options.from === undefined ? {} : { from: options.from }),
      ...(options.fromTime === undefined ? {} : { fromTime: options.fromTime }),
      ...(options.consumer === undefined ? {} : { consumer: options.consumer })
    }
    const reading = several
      ? { several, subscription: yield* subscriber.subscribeTopics(options.topics, subscribeOptions) }
      : { several, subscription: yield* subscriber.subscribe(first, subscribeOptions) }
    reportToParent(
      reading.several
        ? { event: "subscribed", topics: reading.subscription.topics() }
        : { event: "subscribed", position: reading.subscription.start }
    )
    if (reading.several && reading.subscription.topics().length === 0) {
      // Only patterns, none matching yet that it may read: said at once, so that a mistyped one (or a missing right) is not a silent wait.
      const unreadable = reading.subscription.unreadableMatches
      process.stderr.write(
        unreadable > 0
          ? `cxlog subscribe: ${label} matches ${unreadable} topic${
            unreadable === 1 ? "" : "s"
          } this user may not read (its read right in the credential file: docs/security.md); reading those made to match it that it may\n`
          : `cxlog subscribe: no topic matches ${label} yet: reading the topics made to match it (cxlog topics lists them)\n`
      )
    }
    const pull: Effect.Effect<SubscriberBatch, SubscriptionError> = reading.subscription.pull
    const limit = options.limit ?? Infinity
    let printed = 0
    /** Per topic, the offset after the last message printed, and after the last one stdout took. */
    const last = new Map<string, number>(reading.several ? [] : [[first, reading.subscription.start]])
    let written = { printed: 0, positions: new Map(last) }
    while (printed < limit) {
      const batch = options.limit === undefined
        ? yield* pull
        : yield* pull.pipe(Effect.timeoutFail({
          duration: options.idleTimeoutMs,
          onTimeout: () =>
            new ReadIdle({
              topic: label,
              received: printed,
              limit,
              idleMs: options.idleTimeoutMs,
              ...(reading.several ? {} : { position: last.get(first)! })
            })
        }))
      const before = last.get(batch.topic)
      if (reading.several && before !== undefined && batch.offset < before) {
        // A topic's offsets only grow: lower ones are a topic made again under its name, which a pattern took in.
        process.stderr.write(
          `cxlog subscribe: topic ${batch.topic} was deleted and made again: its new messages follow, from offset ${batch.offset}\n`
        )
      }
      let out = ""
      for (const m of batch) {
        if (printed === limit) break
        out += formatLine(options.format, m, several)
        printed++
        last.set(m.topic, m.offset + 1)
      }
      // The next pull may commit this batch: only once stdout has handed it to the kernel (a
      // pipe's writes can queue in this process, and a SIGKILL would lose them).
      // Failing here stops before the next pull, which would commit the batch stdout refused.
      yield* writeOut(out).pipe(
        Effect.mapError((error) => new OutputClosed({ topic: label, ...written, reason: error.message }))
      )
      written = { printed, positions: new Map(last) }
    }
    if (options.consumer !== undefined) {
      if (reading.several) {
        const subscription = reading.subscription
        yield* Effect.forEach(last, ([topic, offset]) => subscription.commit({ topic, offset }), { discard: true })
      } else {
        yield* reading.subscription.commit(last.get(first)!)
      }
    }
    reportToParent({ event: "done", messages: printed, ...positionsOf(last, reading.several) })
    return printed
  }).pipe(
    Effect.scoped,
    // Nobody reads any more: a normal end (exit 0), with nothing committed past what was printed.
    Effect.catchTag("OutputClosed", (closed) =>
      Effect.sync(() => {
        const several = options.topics.length > 1 || isPattern(options.topics[0] ?? "")
        reportToParent({
          event: "done",
          messages: closed.printed,
          ...positionsOf(closed.positions, several),
          outputClosed: true
        })
        return closed.printed
      })),
    Effect.tapError((error) => Effect.sync(() => reportFailure(error))),
    Effect.provide(
      options.remote !== undefined
        ? layerRemote(options.remote)
        : SubscriberLayers.layer.pipe(
          Layer.provide(
            reader.pipe(Layer.provideMerge(processSlot("client")), Layer.provideMerge(attachRegion(options.region)))
          )
        )
    )
  )

/** Where the reading ended, as a `done` event says it: one topic's position, or each topic's. */
const positionsOf = (positions: ReadonlyMap<string, number>, several: boolean) =>
  several ? { positions: Object.fromEntries(positions) } : { position: [...positions.values()][0] ?? 0 }
