/**
 * The broker's receive path under TLS (docs/security.md): past the handshake a TLS connection
 * reads in place like a plain one, each decrypted record going where the frame reader says (a
 * header, or the log's space for a batch), a record that straddles frames split across them.
 * Over a real region log, with raw TLS clients that cut their input anywhere.
 */
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect } from "effect"
import { connect as connectTcp, createServer, Socket } from "node:net"
import { connect as connectTls } from "node:tls"
import { withBlogBytes } from "../../src/layers/log/Layout.js"
import { FRAME_HEADER_BYTES, FrameType } from "../../src/layers/net/Frame.js"
import { smallConfig } from "../fixtures/log-harness.js"
import { batchFrame, errorCode, hello, openedEpoch, type RawClient, rawConnect } from "../fixtures/net-raw-client.js"
import { regionBroker } from "../fixtures/region-broker.js"
import { certificates } from "../fixtures/tls-certificates.js"

/** A TLS broker over a region log (real Blog, real in-place receive), its sequencer driven by the test. */
const tlsRegionBroker = Effect.gen(function*() {
  const certs = yield* certificates
  // Room for every batch a test sends: nothing waits for the sequencer the test drives.
  const { logged, server } = yield* regionBroker(
    { insecure: true, tls: { cert: certs.cert, key: certs.key } },
    withBlogBytes(smallConfig, 2 << 20)
  )
  return { ca: certs.ca, server, logged }
})

/** A raw TLS client of the broker (or relay) at `port`, trusting `ca`. */
const tlsConnect = (port: number, ca: Buffer) =>
  rawConnect(
    port,
    (p) => ({
      socket: connectTls({ socket: connectTcp({ host: "127.0.0.1", port: p, noDelay: true }), host: "127.0.0.1", ca }),
      ready: "secureConnect"
    })
  )

/** The frames a connection received, once it closed: at most 5 s. */
const closedWithin = (client: RawClient) =>
  Deferred.await(client.closed).pipe(
    Effect.timeoutFail({ duration: 5_000, onTimeout: () => new Error("the connection was not closed within 5 s") })
  )

/** A TLS session's HELLO and WELCOME: the session epoch. */
const opened = (client: RawClient, clientId: number) =>
  Effect.gen(function*() {
    client.write(hello("t", clientId))
    return yield* openedEpoch(client)
  })

/** Until the broker has appended `count` batches, at most 5 s. */
const receivedBatches = (server: { readonly stats: () => { readonly batches: number } }, count: number) =>
  Effect.gen(function*() {
    for (let waited = 0; server.stats().batches < count; waited += 5) {
      if (waited >= 5_000) {
        return yield* Effect.fail(
          new Error(`the broker appended ${server.stats().batches} batches, not ${count}, within 5 s`)
        )
      }
      yield* Effect.sleep("5 millis")
    }
  })

const bytesOf = (seed: number, length: number) => new Uint8Array(length).map((_, k) => (seed * 31 + k * 7) & 0xff)
/** Batch `seq` of `client`: sizes chosen so TLS's 16 KiB records end inside headers and payloads alike. */
const messagesOf = (
  client: number,
  seq: number
) => [
  bytesOf(client * 100 + seq, 5000 + 997 * seq),
  bytesOf(client + seq, 3 + 13 * seq),
  bytesOf(seq, 7001 - 11 * client)
]
const expected = (client: number, seq: number) => ({
  crcOk: true,
  messages: messagesOf(client, seq).map((m) => [...m])
})

describe("Broker receive path under TLS", () => {
  it.scopedLive("batches in records that straddle frames (many batches in one write, a batch one byte a record, connections interleaved): every batch intact, in order", () =>
    Effect.gen(function*() {
      const { ca, logged, server } = yield* tlsRegionBroker
      const bulk = yield* tlsConnect(server.port, ca)
      const bulkEpoch = yield* opened(bulk, 1)
      const trickle = yield* tlsConnect(server.port, ca)
      const trickleEpoch = yield* opened(trickle, 2)
      // 24 batches in one write: records of 16 KiB cut them wherever they fall. The first batch
      // ends 10 bytes short of the first record's end, so that record ends inside the next header.
      const overhead = batchFrame(1, bulkEpoch, 0, [bytesOf(0, 1000)]).length - 1000
      const first = [bytesOf(77, 16384 - 10 - overhead)]
      const batchOf = (seq: number) => (seq === 0 ? first : messagesOf(1, seq))
      const frames = Array.from({ length: 24 }, (_, seq) => batchFrame(1, bulkEpoch, seq, batchOf(seq)))
      const ends = new Set<"header" | "payload">()
      for (let seq = 0, start = 0; seq < frames.length; start += frames[seq]!.length, seq++) {
        for (let end = Math.ceil((start + 1) / 16384) * 16384; end < start + frames[seq]!.length; end += 16384) {
          ends.add(end - start < FRAME_HEADER_BYTES ? "header" : "payload")
        }
      }
      expect([...ends].sort()).toEqual(["header", "payload"])
      bulk.write(Buffer.concat(frames))
      // Meanwhile another connection's batch arrives one byte a record, while the bulk one is being received.
      const slow = batchFrame(2, trickleEpoch, 0, [bytesOf(9, 300), bytesOf(8, 5)])
      for (const byte of slow) {
        trickle.write(Uint8Array.of(byte))
        yield* Effect.sleep("0 millis")
      }
      trickle.write(batchFrame(2, trickleEpoch, 1, messagesOf(2, 1)))
      yield* receivedBatches(server, 26)
      const log = yield* logged
      for (let seq = 0; seq < 24; seq++) {
        expect(log.get(`1/${seq}`), `batch ${seq}`).toEqual({ crcOk: true, messages: batchOf(seq).map((m) => [...m]) })
      }
      expect(log.get("2/0")).toEqual({ crcOk: true, messages: [[...bytesOf(9, 300)], [...bytesOf(8, 5)]] })
      expect(log.get("2/1")).toEqual(expected(2, 1))
      expect(server.stats()).toMatchObject({ batches: 26, rejected: {} })
      // Both sessions are still served: their ACKs come back over TLS.
      const acked = (client: RawClient, upTo: number) =>
        Effect.gen(function*() {
          for (;;) {
            const frame = yield* client.nextFrame()
            if (frame.type === FrameType.ACK && frame.seq >= upTo) return frame.seq
          }
        })
      expect(yield* acked(bulk, 24)).toBe(24)
      expect(yield* acked(trickle, 2)).toBe(2)
    }))

  it.scopedLive("a TLS connection's batches reach the log with no stream data event on the broker's side (Node copies each record into place)", () =>
    Effect.gen(function*() {
      const { ca, logged, server } = yield* tlsRegionBroker
      const client = yield* tlsConnect(server.port, ca)
      const epoch = yield* opened(client, 5)
      // Counted from here on, split by side: the client's socket reads through data events, so it shows the count works.
      let brokerDataEvents = 0
      let clientDataEvents = 0
      const original = Socket.prototype.emit
      yield* Effect.acquireRelease(
        Effect.sync(() => {
          Socket.prototype.emit = function(this: Socket, event: string | symbol, ...args: Array<unknown>) {
            if (event === "data") {
              if (this === client.socket) clientDataEvents++
              else brokerDataEvents++
            }
            return original.apply(this, [event, ...args] as Parameters<typeof original>)
          } as unknown as typeof original
        }),
        () => Effect.sync(() => (Socket.prototype.emit = original))
      )
      // About 250 KiB in one write (records of 16 KiB cut the batches anywhere), then one batch alone.
      client.write(Buffer.concat(Array.from({ length: 16 }, (_, seq) => batchFrame(5, epoch, seq, messagesOf(5, seq)))))
      client.write(batchFrame(5, epoch, 16, messagesOf(5, 16)))
      yield* receivedBatches(server, 17)
      const log = yield* logged
      for (let seq = 0; seq <= 16; seq++) expect(log.get(`5/${seq}`), `batch ${seq}`).toEqual(expected(5, seq))
      for (;;) {
        const frame = yield* client.nextFrame()
        if (frame.type === FrameType.ACK && frame.seq >= 17) break
      }
      expect(clientDataEvents).toBeGreaterThan(0)
      expect(brokerDataEvents).toBe(0)
    }))

  it.scopedLive("a corrupt crc in a TLS batch cut across records: ERROR bad-crc, the batch not in the log, the connection's earlier batch and another connection's unharmed", () =>
    Effect.gen(function*() {
      const { ca, logged, server } = yield* tlsRegionBroker
      const good = yield* tlsConnect(server.port, ca)
      const goodEpoch = yield* opened(good, 1)
      const corrupt = yield* tlsConnect(server.port, ca)
      const corruptEpoch = yield* opened(corrupt, 2)
      corrupt.write(batchFrame(2, corruptEpoch, 0, messagesOf(2, 0)))
      const bad = Buffer.from(batchFrame(2, corruptEpoch, 1, messagesOf(2, 3)))
      bad[FRAME_HEADER_BYTES + 9000] ^= 1
      corrupt.write(bad.subarray(0, 7000))
      // The good connection's batch lands (with the corrupt one's first) while the corrupt one is still arriving.
      good.write(batchFrame(1, goodEpoch, 0, messagesOf(1, 0)))
      yield* receivedBatches(server, 2)
      corrupt.write(bad.subarray(7000))
      const frames = yield* closedWithin(corrupt)
      expect(errorCode(frames[frames.length - 1])).toBe("bad-crc")
      good.write(batchFrame(1, goodEpoch, 1, messagesOf(1, 1)))
      yield* receivedBatches(server, 3)
      const log = yield* logged
      expect([...log.keys()].sort()).toEqual(["1/0", "1/1", "2/0"])
      expect([log.get("1/0"), log.get("1/1"), log.get("2/0")]).toEqual([expected(1, 0), expected(1, 1), expected(2, 0)])
      expect(server.stats().rejected).toEqual({ "bad-crc": 1 })
    }))

  it.scopedLive("a TLS record altered in flight: that connection is closed and its batch is not appended; the broker serves the next connection", () =>
    Effect.gen(function*() {
      const { ca, logged, server } = yield* tlsRegionBroker
      // A TCP relay that flips one byte of the client's ciphertext once told to.
      let tamperAt: number | undefined
      const relay = yield* Effect.acquireRelease(
        Effect.async<ReturnType<typeof createServer>>((resume) => {
          const relayServer = createServer((inbound: Socket) => {
            const outbound = connectTcp({ host: "127.0.0.1", port: server.port })
            inbound.on("error", () => {})
            outbound.on("error", () => {})
            inbound.on("data", (chunk: Buffer) => {
              if (tamperAt !== undefined && tamperAt < chunk.length) {
                chunk[tamperAt] ^= 0x20
                tamperAt = undefined
              } else if (tamperAt !== undefined) {
                tamperAt -= chunk.length
              }
              outbound.write(chunk)
            })
            outbound.on("data", (chunk: Buffer) => inbound.write(chunk))
            inbound.on("close", () => outbound.destroy())
            outbound.on("close", () => inbound.destroy())
          })
          relayServer.listen(0, "127.0.0.1", () => resume(Effect.succeed(relayServer)))
        }),
        (relayServer) => Effect.sync(() => relayServer.close())
      )
      const relayPort = (relay.address() as { port: number }).port
      const victim = yield* tlsConnect(relayPort, ca)
      const epoch = yield* opened(victim, 3)
      victim.write(batchFrame(3, epoch, 0, messagesOf(3, 0)))
      yield* receivedBatches(server, 1)
      // Inside the next batch's first record, well past its record header.
      tamperAt = 200
      victim.write(batchFrame(3, epoch, 1, messagesOf(3, 1)))
      yield* closedWithin(victim)
      const next = yield* tlsConnect(server.port, ca)
      const nextEpoch = yield* opened(next, 4)
      next.write(batchFrame(4, nextEpoch, 0, messagesOf(4, 0)))
      yield* receivedBatches(server, 2)
      const log = yield* logged
      expect([...log.keys()].sort()).toEqual(["3/0", "4/0"])
      expect([log.get("3/0"), log.get("4/0")]).toEqual([expected(3, 0), expected(4, 0)])
    }))
})
