/**
 * The message model on the wire (protocol 6): a key, headers and a publish timestamp travel
 * from the publisher through the broker into the log; a batch whose key or header lengths do
 * not add up is refused with `bad-batch` while the broker serves everyone else; a peer of the
 * previous protocol, and a region of the previous layout, get a clear version error.
 */
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect } from "effect"
import { BatchBuilder, BufferPool } from "../../src/layers/net/BatchBuilder.js"
import { forEachMessage, MessageFlags } from "../../src/layers/net/BatchPayload.js"
import * as BrokerLayers from "../../src/layers/net/Broker.js"
import * as BrokerLogLayers from "../../src/layers/net/BrokerLogMemory.js"
import { decodeControl, ErrorBody, PROTOCOL_VERSION } from "../../src/layers/net/Control.js"
import { encodeFrame, type Frame, FrameType } from "../../src/layers/net/Frame.js"
import * as PublisherLayers from "../../src/layers/net/Publisher.js"
import * as CxlMemoryLayers from "../../src/layers/region/CxlMemory.js"
import { LAYOUT_VERSION } from "../../src/layers/region/Superblock.js"
import { encodedParts } from "../fixtures/encoded-parts.js"
import { errorCode, hello, openedEpoch, rawConnect } from "../fixtures/net-raw-client.js"
import { uniqueRegion } from "../helpers/Processes.js"

const errorBody = (frame: Frame) => {
  const body = decodeControl(ErrorBody, frame.payload, "internal")
  return body._tag === "Right" ? `${body.right.code}: ${body.right.message}` : "undecodable"
}

/** A batch of one keyed message whose key length field is then set to `keyLength` (the crc32c is taken after). */
const keyedBatch = (clientId: number, epoch: number, keyLength: number) => {
  const builder = new BatchBuilder(new BufferPool(256, 0))
  builder.add(new Uint8Array(8), Date.now(), encodedParts({ key: "abc" }))
  const payload = new Uint8Array(builder.seal().payload)
  // Record header (8 bytes), the batch's base timestamp (8), then the key's length.
  new DataView(payload.buffer).setUint32(16, keyLength, true)
  return encodeFrame({ type: FrameType.BATCH, clientId, sessionEpoch: epoch, seq: 0, messageCount: 1 }, payload)
}

/** A batch of one record with `flags` and `body` after the base timestamp, its crc32c right. */
const handMadeBatch = (clientId: number, epoch: number, flags: number, body: ReadonlyArray<number>) => {
  const bodyBytes = 8 + body.length
  const payload = new Uint8Array(8 + ((bodyBytes + 7) & ~7))
  const view = new DataView(payload.buffer)
  view.setUint32(0, bodyBytes, true)
  view.setUint32(4, flags | MessageFlags.BASE_TIME, true)
  view.setFloat64(8, Date.now(), true)
  payload.set(body, 16)
  return encodeFrame({ type: FrameType.BATCH, clientId, sessionEpoch: epoch, seq: 0, messageCount: 1 }, payload)
}
const u32le = (n: number) => [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24]

describe("the message model on the wire", () => {
  it.scopedLive("keys, headers and publish timestamps reach the log; malformed parts get bad-batch and the broker keeps serving the publisher", () =>
    Effect.gen(function*() {
      const log = yield* BrokerLogLayers.makeMemoryLog({ topics: [{ name: "t" }], retainOrdered: true })
      const server = yield* BrokerLayers.make({ insecure: true }).pipe(
        Effect.provide(BrokerLogLayers.layerMemory(log, 0))
      )
      const publisher = yield* PublisherLayers.make({
        brokers: [{ host: "127.0.0.1", port: server.port }],
        topic: "t",
        clientId: 5
      })
      const before = Date.now()
      yield* publisher.publishAcked(new TextEncoder().encode("first"), {
        key: "order-1",
        headers: [["source", "web"], ["raw", Uint8Array.of(0, 255)]]
      })

      const bad: ReadonlyArray<readonly [string, (epoch: number) => Uint8Array, RegExp]> = [
        ["a key longer than its record", (e) => keyedBatch(9, e, 1000), /key overruns/],
        ["a key length near 2^32", (e) => keyedBatch(9, e, 2 ** 32 - 1), /key overruns/],
        [
          "headers longer than their record",
          (e) => handMadeBatch(9, e, MessageFlags.HEADERS, [...u32le(64), ...u32le(1), ...u32le(1), 97, 98]),
          /headers overrun/
        ],
        [
          "a header value past the headers",
          (e) => handMadeBatch(9, e, MessageFlags.HEADERS, [...u32le(10), ...u32le(1), ...u32le(2 ** 32 - 1), 97, 98]),
          /header 0 overruns/
        ],
        ["unknown flag bits", (e) => handMadeBatch(9, e, 0x40, [1, 2, 3]), /unknown flag bits/],
        [
          "garbage with a right crc32c",
          (e) =>
            encodeFrame(
              { type: FrameType.BATCH, clientId: 9, sessionEpoch: e, seq: 0, messageCount: 2 },
              new Uint8Array(64).fill(0x41)
            ),
          /overruns/
        ]
      ]
      for (const [what, frame, reason] of bad) {
        const client = yield* rawConnect(server.port)
        client.write(hello("t", 9))
        client.write(frame(yield* openedEpoch(client)))
        const error = yield* client.nextFrame()
        expect(errorCode(error), what).toBe("bad-batch")
        expect(errorBody(error), what).toMatch(reason)
        yield* Deferred.await(client.closed)
        // The publisher's connection is served all along.
        yield* publisher.publishAcked(new TextEncoder().encode(what))
      }
      yield* publisher.publish(new TextEncoder().encode("last"), { key: new Uint8Array([1, 2, 3]) })
      yield* publisher.flush(10_000)
      const after = Date.now()
      expect(server.stats().rejected).toMatchObject({ "bad-batch": bad.length })

      const seen: Array<
        { value: string; key: Array<number> | undefined; headers: Array<[string, Array<number>]> | undefined }
      > = []
      for (const batch of log.ordered("t")) {
        forEachMessage(batch.payload, batch.messageCount, (m) => {
          expect(m.timestamp).toBeGreaterThanOrEqual(before)
          expect(m.timestamp).toBeLessThanOrEqual(after)
          seen.push({
            value: new TextDecoder().decode(m.payload),
            key: m.key === undefined ? undefined : [...m.key],
            headers: m.headers?.map((h) => [h.name, [...h.value]])
          })
        })
      }
      expect(seen).toEqual([
        {
          value: "first",
          key: [..."order-1"].map((c) => c.charCodeAt(0)),
          headers: [["source", [..."web"].map((c) => c.charCodeAt(0))], ["raw", [0, 255]]]
        },
        ...bad.map(([what]) => ({ value: what, key: undefined, headers: undefined })),
        { value: "last", key: [1, 2, 3], headers: undefined }
      ])
    }))

  it.scopedLive("a peer of the previous protocol gets version-mismatch naming both versions", () =>
    Effect.gen(function*() {
      const log = yield* BrokerLogLayers.makeMemoryLog({ topics: [{ name: "t" }] })
      const server = yield* BrokerLayers.make({ insecure: true }).pipe(
        Effect.provide(BrokerLogLayers.layerMemory(log, 0))
      )
      const old = yield* rawConnect(server.port)
      old.write(hello("t", 1, undefined, 1, PROTOCOL_VERSION - 1))
      const error = yield* old.nextFrame()
      expect(errorBody(error)).toBe(
        `version-mismatch: protocol ${PROTOCOL_VERSION - 1}, this broker speaks ${PROTOCOL_VERSION}`
      )
    }))

  it.scoped("a region of the previous layout is refused with RegionLayoutMismatch naming both versions and the way out", () =>
    Effect.gen(function*() {
      const name = yield* uniqueRegion("old-layout")
      yield* CxlMemoryLayers.make({ name, size: 1 << 20, mode: "create", layoutVersion: LAYOUT_VERSION - 1 })
      const error = yield* Effect.flip(CxlMemoryLayers.make({ name, mode: "attach" }))
      expect(error).toMatchObject({ _tag: "RegionLayoutMismatch", expected: LAYOUT_VERSION, found: LAYOUT_VERSION - 1 })
      expect(error.message).toBe(
        `region ${name} has layout version ${
          LAYOUT_VERSION - 1
        }, this cxlog speaks ${LAYOUT_VERSION}: another cxlog build made it; stop its processes and remove it (cxlog regions --remove ${name}), then start the head again`
      )
    }))
})
