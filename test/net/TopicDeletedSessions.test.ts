/**
 * A session whose topic was deleted is told so as `topic-deleted`, whichever way it comes back:
 * re-attached to a broker (which can tell from the epoch that the topic was there), or
 * registered again after the log forgot its session (when a broker can only say it does not
 * know the name, the publisher knows its topic was there, since it had a session of it).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { type AddressInfo, createServer, type Socket } from "node:net"
import * as BrokerLayers from "../../src/layers/net/Broker.js"
import * as BrokerLogLayers from "../../src/layers/net/BrokerLogMemory.js"
import {
  ackFrame,
  endedFrame,
  SessionOpen,
  sessionOpenedFrame,
  sessionOpenFrame,
  Welcome,
  welcomeFrame
} from "../../src/layers/net/Control.js"
import { FrameType } from "../../src/layers/net/Frame.js"
import { FrameReader } from "../../src/layers/net/FrameReader.js"
import * as PublisherLayers from "../../src/layers/net/Publisher.js"
import { testMessage } from "../fixtures/net-audit.js"
import { batchFrame, epochOf, errorCode, hello, openedEpoch, rawConnect } from "../fixtures/net-raw-client.js"

/**
 * A broker speaking just enough of the protocol to forget a session: its first SESSION_OPEN is
 * opened (epoch 1) and its batches acknowledged; `forget` ends it `unknown-session` (as when the
 * log reused its line), and every later SESSION_OPEN is refused `unknown-topic` (the topic was
 * deleted meanwhile).
 */
const forgetfulBroker = Effect.acquireRelease(
  Effect.async<{ readonly port: number; readonly forget: () => void; readonly close: () => void }>((resume) => {
    const sockets = new Set<Socket>()
    let forget = () => {}
    let opens = 0
    const server = createServer((socket) => {
      sockets.add(socket)
      socket.on("error", () => {})
      const reader = new FrameReader({
        accept: [FrameType.HELLO, FrameType.SESSION_OPEN, FrameType.BATCH, FrameType.CLOSE],
        maxBatchBytes: 1 << 20
      })
      socket.on("data", (chunk: Buffer) => {
        reader.push(chunk)
        for (let frame = reader.next(); frame !== undefined; frame = reader.next()) {
          if (!("type" in frame)) return socket.destroy()
          if (frame.type === FrameType.HELLO) {
            socket.write(
              welcomeFrame(new Welcome({ protocol: 7, brokerId: 0, maxBatchBytes: 1 << 20, maxSessions: 64 }))
            )
          } else if (frame.type === FrameType.SESSION_OPEN && opens++ === 0) {
            const session = frame.clientId
            socket.write(sessionOpenedFrame(session, 1, undefined, { maxBatchBytes: 1 << 20 }))
            forget = () =>
              void socket.write(endedFrame(session, 1, "unknown-session", "session 1 ended and its record was reused"))
          } else if (frame.type === FrameType.BATCH) {
            socket.write(ackFrame(frame.clientId, 1, frame.seq + 1, 1, new Float64Array([frame.seq, 0]), 0, 1))
          } else if (frame.type === FrameType.SESSION_OPEN) {
            socket.write(endedFrame(frame.clientId, 0, "unknown-topic", "unknown topic \"t\""))
          }
        }
      })
    })
    server.listen(0, "127.0.0.1", () =>
      resume(Effect.succeed({
        port: (server.address() as AddressInfo).port,
        forget: () => forget(),
        close: () => {
          for (const socket of sockets) socket.destroy()
          server.close()
        }
      })))
  }),
  (broker) => Effect.sync(broker.close)
)

describe("a session of a deleted topic", () => {
  it.scopedLive("re-attached to a broker by its epoch: ENDED topic-deleted, naming the topic; a new session of the name: unknown-topic", () =>
    Effect.gen(function*() {
      const log = yield* BrokerLogLayers.makeMemoryLog({ topics: [{ name: "t" }] })
      const broker = yield* BrokerLayers.make({ insecure: true }).pipe(Effect.provide(log.forBroker(0)))
      const first = yield* rawConnect(broker.port)
      first.write(hello("t", 5))
      const epoch = yield* openedEpoch(first)
      yield* log.topics.delete("t")

      const again = yield* rawConnect(broker.port)
      again.write(hello("t", 5, epoch))
      expect((yield* again.nextFrame()).type).toBe(FrameType.WELCOME)
      const ended = yield* again.nextFrame()
      expect(errorCode(ended)).toBe("topic-deleted")
      expect(new TextDecoder().decode(ended.payload)).toContain(`topic \\"t\\" was deleted`)

      const fresh = yield* rawConnect(broker.port)
      fresh.write(hello("t", 6))
      expect((yield* fresh.nextFrame()).type).toBe(FrameType.WELCOME)
      expect(errorCode(yield* fresh.nextFrame())).toBe("unknown-topic")
    }))

  it.scopedLive("ended topic-deleted on a connection: its batches still in flight are dropped, and the connection's other session goes on", () =>
    Effect.gen(function*() {
      const log = yield* BrokerLogLayers.makeMemoryLog({ topics: [{ name: "t" }, { name: "u" }] })
      const broker = yield* BrokerLayers.make({ insecure: true }).pipe(Effect.provide(log.forBroker(0)))
      const client = yield* rawConnect(broker.port)
      // Session 5 of t, then session 6 of u (the last this connection opened), on the one connection.
      client.write(hello("t", 5))
      const tEpoch = yield* openedEpoch(client)
      client.write(sessionOpenFrame(6, 0, new SessionOpen({ topic: "u" })))
      const uEpoch = epochOf(yield* client.nextFrame())
      yield* log.topics.delete("u")
      const message = new Uint8Array(24).fill(1)
      client.write(batchFrame(6, uEpoch, 0, [message]))
      const ended = yield* client.nextFrame()
      expect([ended.type, ended.clientId, errorCode(ended)]).toEqual([FrameType.ENDED, 6, "topic-deleted"])
      // Sent before the client read its ENDED: not a session this connection never opened, so no violation.
      client.write(batchFrame(6, uEpoch, 1, [message]))
      client.write(batchFrame(5, tEpoch, 0, [message]))
      const acked = yield* client.nextFrame()
      expect([acked.type, acked.clientId, acked.seq]).toEqual([FrameType.ACK, 5, 1])
      expect(broker.stats().rejected).toEqual({ "topic-deleted": 1 })
      expect(log.ordered("t")).toHaveLength(1)
    }))

  it.scopedLive("registered again after the log forgot it, refused unknown-topic: the publisher fails its topic as deleted", () =>
    Effect.gen(function*() {
      const broker = yield* forgetfulBroker
      const p = yield* PublisherLayers.make({
        brokers: [{ host: "127.0.0.1", port: broker.port }],
        topic: "t",
        ackTimeoutMs: 600_000
      })
      yield* p.publishAcked(testMessage(1, 0, 64))
      // Nothing unacknowledged: the publisher registers a new session, which the broker refuses.
      broker.forget()
      const failed = () => p.stats().topics.find((t) => t.topic === "t")?.failure
      for (let look = 0; look < 500 && failed() === undefined; look++) yield* Effect.sleep(10)
      expect(failed()).toMatch(/topic-deleted/)
      const failure = yield* Effect.flip(p.publishAcked(testMessage(1, 1, 64)))
      expect(failure).toMatchObject({ _tag: "BrokerRejected", code: "topic-deleted", topic: "t" })
      expect(failure.message).toContain(`topic "t" was deleted (unknown topic "t")`)
    }))
})
