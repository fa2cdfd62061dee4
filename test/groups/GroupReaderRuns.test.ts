/**
 * A member copies only what it claims: the reader hands over where each batch lies, and a claimed
 * run is copied from there. A run from anywhere in a batch gives each message as the batch holds
 * it — its offset, value, key, headers and timestamp (the batch's base timestamp lies on its first
 * record, which a run from inside does not copy); a batch the log no longer holds after the copy
 * is gone (the bytes may be another batch's); a batch whose records do not hold is refused. The
 * reader's log is a stub cursor over one batch written by the publishers' own encoder, placed
 * inside a larger buffer as a batch lies in the region. An offset the topic does not hold is the
 * group fallen behind when it is before what the topic holds, and the group's object damaged when
 * it is past the topic's end (no group hands out an offset its topic never had).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { BatchCopy, GroupReader } from "../../src/layers/groups/GroupReader.js"
import { BatchBuilder, BufferPool } from "../../src/layers/net/BatchBuilder.js"
import {
  type LogBatchView,
  type LogCursor,
  LogOutOfRange,
  type LogReaderShape
} from "../../src/services/log/LogReader.js"
import type { TopicInfo } from "../../src/services/log/Topics.js"
import { encodedParts } from "../fixtures/encoded-parts.js"

const BASE_MS = 1_764_000_000_000
const FIRST = 1_000
const COUNT = 9
const text = (bytes: Uint8Array | undefined) => (bytes === undefined ? undefined : new TextDecoder().decode(bytes))

/** Message i: value `v-i`, a key on even ones, a header on every third, published 10·i ms after the first. */
const batchPayload = () => {
  const builder = new BatchBuilder(new BufferPool(1 << 16, 1))
  for (let i = 0; i < COUNT; i++) {
    const parts = encodedParts({
      ...(i % 2 === 0 ? { key: `k-${i}` } : {}),
      ...(i % 3 === 0 ? { headers: { h: `x-${i}` } } : {})
    })
    builder.add(new TextEncoder().encode(`v-${i}`), BASE_MS + 10 * i, parts)
  }
  return builder.seal()
}

/** A reader of a topic holding one batch of COUNT messages from offset FIRST, 64 bytes into its buffer. */
const readerOver = (
  options: { readonly spoil?: (payload: Uint8Array) => void; readonly held?: () => boolean } = {}
) => {
  const sealed = batchPayload()
  const region = new Uint8Array(64 + sealed.payload.length + 64)
  region.set(sealed.payload, 64)
  options.spoil?.(region.subarray(64, 64 + sealed.payload.length))
  const batch: LogBatchView = {
    globalSeq: 7,
    totalOrder: FIRST,
    messageCount: COUNT,
    clientId: 1,
    sessionEpoch: 1,
    batchSeq: 0,
    brokerId: 0,
    crc32c: sealed.crc32c,
    bytes: region,
    offset: 64,
    length: sealed.payload.length,
    startIndex: 0
  }
  let read = false
  const cursor: LogCursor = {
    topic: { name: "t", generation: 1 } as TopicInfo,
    position: () => (read ? FIRST + COUNT : FIRST),
    nextBatch: () => (read ? 8 : 7),
    poll: () => Effect.die("not used"),
    pollBatches: (onBatch) =>
      Effect.sync(() => {
        if (read) return 0
        onBatch(batch)
        read = true
        return 1
      }),
    awaitMore: () => Effect.succeed(false),
    retained: (globalSeq) => globalSeq === 7 && (options.held?.() ?? true),
    holds: (globalSeq) => globalSeq === 7 && (options.held?.() ?? true)
  }
  const log = { subscribe: () => Effect.succeed(cursor) } as unknown as LogReaderShape
  return new GroupReader(log, "g", "t", 1)
}

/** The run `from`…`from + count` as `copyRun` gives it. */
const runOf = (reader: GroupReader, from: number, count: number) =>
  Effect.gen(function*() {
    yield* reader.open(from)
    const { batches, read } = yield* reader.nextFrom(from, 1)
    expect(read).toBe(1)
    expect(batches.map((b) => [b.start, b.end])).toEqual([[FIRST, FIRST + COUNT]])
    return reader.copyRun(batches[0]!, from, count)
  })

const messagesOf = (copy: BatchCopy) =>
  Array.from({ length: copy.count }, (_, i) => {
    const m = copy.message(i)
    return {
      offset: m.offset,
      value: text(m.value),
      key: text(m.key),
      headers: m.headers?.map((h) => [h.name, text(h.value)]),
      timestamp: m.timestamp
    }
  })

const published = (from: number, count: number) =>
  Array.from({ length: count }, (_, k) => {
    const i = from - FIRST + k
    return {
      offset: FIRST + i,
      value: `v-${i}`,
      key: i % 2 === 0 ? `k-${i}` : undefined,
      headers: i % 3 === 0 ? [["h", `x-${i}`]] : undefined,
      timestamp: BASE_MS + 10 * i
    }
  })

describe("a member's copies of what it claims", () => {
  it.effect("a run from anywhere in a batch: each message as published, with its own offset, parts and timestamp", () =>
    Effect.gen(function*() {
      for (
        const [from, count] of [[FIRST, COUNT], [FIRST, 2], [FIRST + 1, 3], [FIRST + 4, 5], [FIRST + 8, 1]] as const
      ) {
        const copy = yield* runOf(readerOver(), from, count)
        expect(copy).toBeInstanceOf(BatchCopy)
        expect(messagesOf(copy as BatchCopy)).toEqual(published(from, count))
      }
    }))

  it.effect("a batch the log no longer holds once copied is gone, whatever the bytes", () =>
    Effect.gen(function*() {
      expect(yield* runOf(readerOver({ held: () => false }), FIRST + 2, 3)).toEqual({ gone: true })
    }))

  it.effect("a batch whose records do not hold is refused, a run from its start or from inside", () =>
    Effect.gen(function*() {
      // The second record's length runs past the batch.
      const spoil = (payload: Uint8Array) => {
        const view = new DataView(payload.buffer, payload.byteOffset, payload.length)
        view.setUint32(8 + ((view.getUint32(0, true) + 7) & ~7), payload.length, true)
      }
      for (const from of [FIRST, FIRST + 3]) {
        const problem = yield* runOf(readerOver({ spoil }), from, 2)
        expect(problem).toHaveProperty("corrupt")
      }
    }))
})

describe("a member's read of an offset its topic does not hold", () => {
  // The topic holds [10, 20): a cursor from "latest" says it is the group's topic (generation 1).
  const log = {
    subscribe: (_topic: string, options: { readonly from: number | "latest" }) =>
      options.from === "latest"
        ? Effect.succeed({ topic: { name: "t", generation: 1 } as TopicInfo })
        : Effect.fail(new LogOutOfRange({ topic: "t", requested: options.from as number, earliest: 10, end: 20 }))
  } as unknown as LogReaderShape

  it.scoped("before what the topic holds: GroupBehindRetention; past its end: GroupCorrupt, naming the offset and the end", () =>
    Effect.gen(function*() {
      const behind = yield* Effect.flip(new GroupReader(log, "g", "t", 1).open(5))
      expect(behind).toMatchObject({ _tag: "GroupBehindRetention", requested: 5, earliest: 10, end: 20 })
      const damaged = yield* Effect.flip(new GroupReader(log, "g", "t", 1).open(2 ** 50))
      expect(damaged).toMatchObject({ _tag: "GroupCorrupt", group: "g" })
      expect(damaged.message).toBe(
        `consumer group "g" cannot be read: it needs offset ${
          2 ** 50
        } of topic t, which ends at 20: an offset its object keeps (its frontier or a pending message) is damaged; delete it (cxlog groups delete g) and create it again`
      )
    }))
})
