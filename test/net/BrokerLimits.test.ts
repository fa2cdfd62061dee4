/**
 * What a connection may cost the broker: memory before and after the handshake, idle
 * sessions, connections past the limit (and past the process's open-file limit), and how the
 * client side reports the broker's refusals.
 */
import { describe, expect, it } from "@effect/vitest"
import { Context, Deferred, Effect, Either } from "effect"
import { spawn } from "node:child_process"
import { connect, type Socket } from "node:net"
import { join } from "node:path"
import { createInterface } from "node:readline"
import {
  clientProof,
  type Credentials,
  newNonce,
  upsertUser,
  type UserLimits,
  userRecord
} from "../../src/layers/net/Auth.js"
import * as BrokerLayers from "../../src/layers/net/Broker.js"
import * as BrokerLogLayers from "../../src/layers/net/BrokerLogMemory.js"
import { type ConnectionClosed, openConnection } from "../../src/layers/net/ClientConnection.js"
import {
  authFrame,
  AuthProof,
  Challenge,
  decodeControl,
  type ErrorBody,
  Hello,
  helloFrame,
  PROTOCOL_VERSION,
  SessionOpen,
  sessionOpenFrame,
  WireViolation
} from "../../src/layers/net/Control.js"
import { FRAME_HEADER_BYTES, FrameType, MAX_CONTROL_PAYLOAD_BYTES, writeHeader } from "../../src/layers/net/Frame.js"
import { FrameReader, InPlaceFrameReader } from "../../src/layers/net/FrameReader.js"
import { Subscribe, subscribeFrame } from "../../src/layers/net/SubscribeFrames.js"
import { Appender, type AppenderShape } from "../../src/services/log/Appender.js"
import { Topics, type TopicsShape } from "../../src/services/log/Topics.js"
import type { BrokerOptions } from "../../src/services/net/Broker.js"
import { batchFrame, errorCode, hello, openedEpoch, rawConnect } from "../fixtures/net-raw-client.js"
import { fixtureEntry } from "../helpers/FixtureBuild.js"
import { tempDir } from "../helpers/Processes.js"

/** A publisher's HELLO (its sessions are opened after the WELCOME). */
const helloData = (clientId: number) => new Hello({ protocol: PROTOCOL_VERSION, clientId, ackLevel: 1 })

/** A broker over a fresh memory log, its Appender or Topics wrapped to stall; open unless given credentials. */
const broker = (
  options: BrokerOptions,
  wrap: {
    readonly appender?: (appender: AppenderShape) => AppenderShape
    readonly topics?: (topics: TopicsShape) => TopicsShape
  } = {}
) =>
  Effect.gen(function*() {
    const log = yield* BrokerLogLayers.makeMemoryLog({ topics: [{ name: "t" }] })
    const services = log.forBroker(0).pipe(
      Context.add(Appender, (wrap.appender ?? ((a) => a))(log.appender(0))),
      Context.add(Topics, (wrap.topics ?? ((t) => t))(log.topics))
    )
    return yield* BrokerLayers.make(options.credentials === undefined ? { insecure: true, ...options } : options).pipe(
      Effect.provide(services)
    )
  })

/** A bare header announcing `payloadBytes`. */
const header = (type: FrameType, payloadBytes: number) => {
  const bytes = new Uint8Array(FRAME_HEADER_BYTES)
  writeHeader(bytes, 0, { type, clientId: 1, sessionEpoch: 0, seq: 0, messageCount: 1, payloadBytes, crc32c: 0 })
  return bytes
}

/** Polls `condition` every few ms; fails naming `what` (and `state`) after `timeoutMs`. */
const until = (what: string, condition: () => boolean, timeoutMs = 10_000, state: () => unknown = () => "") =>
  Effect.gen(function*() {
    while (!condition()) yield* Effect.sleep("5 millis")
  }).pipe(
    Effect.timeoutFail({
      duration: timeoutMs,
      onTimeout: () => new Error(`${what}: not within ${timeoutMs} ms ${JSON.stringify(state())}`)
    })
  )

/** The fixture broker as a process whose open-file limit is `files`; killed when the scope closes. */
const brokerProcess = (files: number, options: BrokerOptions) =>
  Effect.gen(function*() {
    const child = yield* Effect.acquireRelease(
      Effect.sync(() =>
        spawn("sh", [
          "-c",
          `ulimit -n ${files} && exec "$0" "$1" "$2"`,
          process.execPath,
          fixtureEntry("net-broker"),
          JSON.stringify(options)
        ], {
          stdio: ["ignore", "pipe", "pipe"]
        })
      ),
      (child) =>
        Effect.sync(() => {
          if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
        })
    )
    let stderr = ""
    child.stderr.on("data", (chunk: Buffer) => void (stderr += chunk.toString()))
    return yield* Effect.async<number>((resume) => {
      createInterface({ input: child.stdout }).once("line", (line) =>
        resume(Effect.succeed(JSON.parse(line).port as number)))
    }).pipe(Effect.timeoutFail({
      duration: 30_000,
      onTimeout: () =>
        new Error(`the broker process did not start: ${stderr}`)
    }))
  })

/** Reads `bytes` into `reader` as it asks for them until it returns something: that and how many bytes it took. */
const feed = (reader: InPlaceFrameReader, bytes: Uint8Array) => {
  let taken = 0
  while (taken < bytes.length) {
    const into = reader.buffer()
    const n = Math.min(into.length, bytes.length - taken)
    into.set(bytes.subarray(taken, taken + n))
    reader.filled(n)
    taken += n
    const out = reader.next()
    if (out !== undefined) return { taken, out }
  }
  return { taken, out: undefined }
}

describe("InPlaceFrameReader limits", () => {
  it("admit refuses a frame from its header: none of its payload is read, the reader is poisoned", () => {
    const reader = new InPlaceFrameReader({
      accept: [FrameType.HELLO, FrameType.BATCH],
      maxBatchBytes: 1 << 20,
      admit: (
        type
      ) => (type === FrameType.HELLO
        ? undefined
        : new WireViolation({ code: "unexpected-frame", detail: "HELLO first" }))
    })
    const stream = new Uint8Array(FRAME_HEADER_BYTES + 1000)
    stream.set(header(FrameType.BATCH, (1 << 20) - 8))
    // The reader asks for the header alone, refuses it, and asks for nothing of the payload.
    const { out: refused, taken } = feed(reader, stream)
    expect(taken).toBe(FRAME_HEADER_BYTES)
    expect(refused).toBeInstanceOf(WireViolation)
    expect((refused as WireViolation).code).toBe("unexpected-frame")
    expect(reader.midFrame).toBe(false)
    expect(reader.next()).toBe(refused)
  })

  it("heldBytes: a frame in progress, and the frame last returned until the next call", () => {
    const reader = new InPlaceFrameReader({ accept: [FrameType.BATCH], maxBatchBytes: 1 << 16 })
    const frame = batchFrame(1, 0, 0, [new Uint8Array(5000)])
    expect(feed(reader, frame.subarray(0, 3000)).out).toBeUndefined()
    expect(reader.heldBytes).toBe(3000 - FRAME_HEADER_BYTES)
    const whole = feed(reader, frame.subarray(3000)).out
    expect(whole).toMatchObject({ type: FrameType.BATCH, payloadBytes: frame.length - FRAME_HEADER_BYTES })
    // Still the consumer's until the next call (a batch waiting for log room).
    expect(reader.heldBytes).toBe(frame.length - FRAME_HEADER_BYTES)
    expect(reader.next()).toBeUndefined()
    expect(reader.heldBytes).toBe(0)
  })
})

describe("Broker limits", () => {
  it.scopedLive("before the handshake, 200 connections announcing 1 MiB batches are refused from the header; the broker holds almost nothing", () =>
    Effect.gen(function*() {
      const connections = 200
      const server = yield* broker({ handshakeTimeoutMs: 120_000 })
      const clients = yield* Effect.forEach(Array.from({ length: connections }), () => rawConnect(server.port))
      let peak = 0
      const sample = () => {
        peak = Math.max(peak, server.stats().queuedBytes)
        return false
      }
      const part = new Uint8Array(256 << 10).fill(7)
      for (const client of clients) {
        client.write(header(FrameType.BATCH, (1 << 20) - 8))
        // The rest of the batch never comes: a broker that gathers it holds this until the handshake timeout.
        client.write(part)
        sample()
      }
      const codes = yield* Effect.forEach(clients, (client) =>
        Deferred.await(client.closed).pipe(
          Effect.tap(sample),
          Effect.map((frames) => errorCode(frames[frames.length - 1])),
          Effect.timeoutFail({
            duration: 20_000,
            onTimeout: () => new Error("a connection that announced a batch before HELLO is still open")
          })
        ))
      expect(new Set(codes)).toEqual(new Set(["unexpected-frame"]))
      expect(server.stats().rejected["unexpected-frame"]).toBe(connections)
      // At most the one chunk each header came in, far from the 256 KiB each client sent.
      expect(peak).toBeLessThanOrEqual(connections * (FRAME_HEADER_BYTES + MAX_CONTROL_PAYLOAD_BYTES + (64 << 10)))
      yield* until("connections released", () => server.stats().connections === 0)
      expect(server.stats().queuedBytes).toBe(0)
    }))

  it.scopedLive("a HELLO header announcing more than 4 KiB is refused from the header", () =>
    Effect.gen(function*() {
      const server = yield* broker({ handshakeTimeoutMs: 120_000 })
      const client = yield* rawConnect(server.port)
      client.write(header(FrameType.HELLO, MAX_CONTROL_PAYLOAD_BYTES + 1))
      client.write(new Uint8Array(MAX_CONTROL_PAYLOAD_BYTES))
      const frames = yield* Deferred.await(client.closed).pipe(
        Effect.timeoutFail({ duration: 10_000, onTimeout: () => new Error("still open") })
      )
      expect(errorCode(frames[frames.length - 1])).toBe("oversized")
    }))

  it.scopedLive("while a session's opening is under way, input past its SESSION_OPEN pauses the socket", () =>
    Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      const slowHandshake = (topics: TopicsShape): TopicsShape => ({
        ...topics,
        lookup: (name) => Effect.zipRight(Deferred.await(gate), topics.lookup(name))
      })
      const server = yield* broker({}, { topics: slowHandshake })
      const client = yield* rawConnect(server.port)
      client.write(hello("t", 3))
      // A client that does not wait for its SESSION_OPENED.
      for (let i = 0; i < 64; i++) client.write(new Uint8Array(16 << 10).fill(1))
      yield* until("input reaches the broker", () => server.stats().queuedBytes > 0)
      // A window, not a wait: the client keeps offering its megabyte; what the broker takes of it must not pass the bound.
      yield* Effect.sleep("200 millis")
      expect(server.stats().queuedBytes).toBeLessThanOrEqual(
        FRAME_HEADER_BYTES + MAX_CONTROL_PAYLOAD_BYTES + (64 << 10)
      )
      yield* Deferred.succeed(gate, undefined)
      expect((yield* client.nextFrame()).type).toBe(FrameType.WELCOME)
      // The rest is read now, and is not a frame.
      const frames = yield* Deferred.await(client.closed).pipe(
        Effect.timeoutFail({ duration: 10_000, onTimeout: () => new Error("still open") })
      )
      expect(errorCode(frames[frames.length - 1])).toBe("bad-magic")
    }))

  it.scopedLive("an idle session gets ERROR idle-timeout, which the client reports with that code; traffic keeps a session open", () =>
    Effect.gen(function*() {
      const idleTimeoutMs = 400
      const server = yield* broker({ idleTimeoutMs })
      // A session that keeps sending, a batch every 40 ms, for three idle timeouts: never cut.
      const busy = yield* rawConnect(server.port)
      busy.write(hello("t", 5))
      const epoch = yield* openedEpoch(busy)
      for (let seq = 0; seq < 30; seq++) {
        busy.write(batchFrame(5, epoch, seq, [new Uint8Array(16)]))
        yield* Effect.sleep("40 millis")
      }
      expect(server.stats().rejected["idle-timeout"]).toBeUndefined()
      // Then it stops: ERROR idle-timeout, closed.
      const frames = yield* Deferred.await(busy.closed).pipe(
        Effect.timeoutFail({ duration: 10_000, onTimeout: () => new Error("an idle session is still open") })
      )
      // WELCOME, SESSION_OPENED, the ACKs of the 30 batches, then the ERROR.
      expect(frames.slice(2, -1).every((frame) => frame.type === FrameType.ACK)).toBe(true)
      expect(frames[frames.length - 2]!.seq).toBe(30)
      expect(errorCode(frames[frames.length - 1])).toBe("idle-timeout")
      // The client side names the code.
      const welcomed = yield* Deferred.make<void>()
      const closed = yield* Deferred.make<ConnectionClosed>()
      const connection = openConnection({ host: "127.0.0.1", port: server.port }, helloData(6), {
        onWelcome: () => Deferred.unsafeDone(welcomed, Effect.void),
        onSessionOpened: () => {},
        onSessionEnded: () => {},
        onAck: () => {},
        onFenced: () => {},
        onBrokerError: () => {},
        onClosed: (_, error) => Deferred.unsafeDone(closed, Effect.succeed(error))
      }, 60_000)
      yield* Effect.addFinalizer(() => Effect.sync(connection.close))
      yield* Deferred.await(welcomed)
      const error = yield* Deferred.await(closed).pipe(
        Effect.timeoutFail({ duration: 10_000, onTimeout: () => new Error("the idle connection was not closed") })
      )
      expect(error.code).toBe("idle-timeout")
      expect(server.stats().rejected["idle-timeout"]).toBe(2)
    }))

  it.scopedLive("a session whose batch waits for log room is not idle", () =>
    Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      let open = false
      const stalled = (appender: AppenderShape): AppenderShape => ({
        ...appender,
        tryAppendWith: (...args) => (open ? appender.tryAppendWith(...args) : "wait"),
        appendWith: (...args) => Effect.zipRight(Deferred.await(gate), appender.appendWith(...args))
      })
      const server = yield* broker({ idleTimeoutMs: 100 }, { appender: stalled })
      const client = yield* rawConnect(server.port)
      client.write(hello("t", 8))
      const epoch = yield* openedEpoch(client)
      client.write(batchFrame(8, epoch, 0, [new Uint8Array(64)]))
      yield* until("the batch reaches the broker", () => server.stats().queuedBytes > 0)
      // A window, not a wait: five idle timeouts while the broker itself holds the batch, and no cut.
      yield* Effect.sleep("500 millis")
      expect(server.stats().rejected["idle-timeout"]).toBeUndefined()
      expect(server.stats().connections).toBe(1)
      open = true
      yield* Deferred.succeed(gate, undefined)
      const ack = yield* client.nextFrame()
      expect([ack.type, ack.seq]).toEqual([FrameType.ACK, 1])
      // Now it is idle.
      const frames = yield* Deferred.await(client.closed).pipe(
        Effect.timeoutFail({ duration: 10_000, onTimeout: () => new Error("still open") })
      )
      expect(errorCode(frames[frames.length - 1])).toBe("idle-timeout")
    }))

  it.scopedLive("past maxConnections: ERROR too-many-connections at once, reported by the client with that code, not as a timeout", () =>
    Effect.gen(function*() {
      const server = yield* broker({ maxConnections: 3, handshakeTimeoutMs: 120_000 })
      const silent = yield* Effect.forEach([1, 2, 3], () => rawConnect(server.port))
      yield* until("three connections served", () => server.stats().connections === 3)
      const refused = yield* Deferred.make<ErrorBody>()
      const closed = yield* Deferred.make<ConnectionClosed>()
      const events = {
        onWelcome: () => {},
        onSessionOpened: () => {},
        onSessionEnded: () => {},
        onAck: () => {},
        onFenced: () => {},
        onBrokerError: (error: ErrorBody) => Deferred.unsafeDone(refused, Effect.succeed(error)),
        onClosed: (_: string, error: ConnectionClosed) => Deferred.unsafeDone(closed, Effect.succeed(error))
      }
      // A connect timeout far past the wait below: a refusal that ends in a timeout fails the test.
      const connection = openConnection({ host: "127.0.0.1", port: server.port }, helloData(9), events, 120_000)
      yield* Effect.addFinalizer(() => Effect.sync(connection.close))
      const error = yield* Deferred.await(closed).pipe(
        Effect.timeoutFail({ duration: 10_000, onTimeout: () => new Error("the refusal did not arrive") })
      )
      expect(error).toMatchObject({
        _tag: "ConnectionClosed",
        code: "too-many-connections",
        broker: `127.0.0.1:${server.port}`
      })
      expect(error.message).toMatch(/too-many-connections: this broker serves at most 3 connections/)
      expect((yield* Deferred.await(refused)).code).toBe("too-many-connections")
      // A freed place is served again.
      silent[0]!.socket.destroy()
      yield* until("a place freed", () => server.stats().connections === 2)
      const next = yield* rawConnect(server.port)
      next.write(helloFrame(helloData(10)))
      expect((yield* next.nextFrame()).type).toBe(FrameType.WELCOME)
      expect(server.stats().rejected["too-many-connections"]).toBe(1)
    }))

  it.scopedLive("a user's connection limit counts its subscribers with its publishers, and a changed rate applies to its next connection", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("cxlog-limits-")
      const path = join(dir, "users")
      const CAROL: Credentials = { user: "carol", secret: "carol-secret" }
      const add = (limits: UserLimits) =>
        upsertUser(path, userRecord(CAROL.user, CAROL.secret, { publish: ["t"], read: ["t"] }, limits, 64))
      add({ connections: 2 })
      const server = yield* broker({ credentials: path })
      /**
       * A raw connection's handshake as carol, opening with the frame `opening` makes from the client's nonce;
       * `then` follows a WELCOME (a publisher's session, say), and its answer is the answer.
       */
      const handshake = (opening: (nonce: string) => Buffer, then?: Buffer) =>
        Effect.gen(function*() {
          const client = yield* rawConnect(server.port)
          const nonce = newNonce()
          client.write(opening(nonce))
          const challenge = Either.getOrThrow(
            decodeControl(Challenge, (yield* client.nextFrame()).payload, "bad-handshake")
          )
          client.write(authFrame(0, new AuthProof({ proof: clientProof(CAROL, nonce, challenge).proof })))
          const answer = yield* client.nextFrame()
          if (then === undefined || answer.type !== FrameType.WELCOME) return { client, answer }
          client.write(then)
          return { client, answer: yield* client.nextFrame() }
        })
      const subscriber = handshake((nonce) =>
        subscribeFrame(
          new Subscribe({
            protocol: PROTOCOL_VERSION,
            topic: "t",
            from: "earliest",
            credit: 1,
            user: CAROL.user,
            nonce
          })
        )
      )
      const publisher = (clientId: number) =>
        handshake(
          (nonce) =>
            helloFrame(new Hello({ protocol: PROTOCOL_VERSION, clientId, ackLevel: 1, user: CAROL.user, nonce })),
          sessionOpenFrame(clientId, 0, new SessionOpen({ topic: "t" }))
        )
      const first = yield* subscriber
      expect(first.answer.type).toBe(FrameType.SUBSCRIBED)
      const second = yield* subscriber
      expect(second.answer.type).toBe(FrameType.SUBSCRIBED)
      expect(errorCode((yield* publisher(1)).answer)).toBe("too-many-connections")
      expect(errorCode((yield* subscriber).answer)).toBe("too-many-connections")
      // A subscriber that leaves frees its place.
      first.client.socket.destroy()
      second.client.socket.destroy()
      yield* until("carol's subscribers gone", () => server.stats().connections === 0)
      const fast = yield* publisher(2)
      expect(fast.answer.type).toBe(FrameType.SESSION_OPENED)

      // One message a second from now: her next connection's second batch finds the budget in debt.
      add({ connections: 2, messagesPerSecond: 1 })
      const slow = yield* publisher(3)
      expect(slow.answer.type).toBe(FrameType.SESSION_OPENED)
      const epoch = slow.answer.sessionEpoch
      const ten = Array.from({ length: 10 }, () => new Uint8Array(8))
      slow.client.write(batchFrame(3, epoch, 0, ten))
      expect((yield* slow.client.nextFrame()).type).toBe(FrameType.ACK)
      slow.client.write(batchFrame(3, epoch, 1, ten))
      expect(errorCode(yield* slow.client.nextFrame())).toBe("rate-limited")
    }))

  it.scopedLive("under an open-file limit of 512, a connection past what the broker can serve gets ERROR too-many-connections, not a silent drop", () =>
    Effect.gen(function*() {
      // Not much lower: Node opens the modules it loads at start-up all at once.
      const files = 512
      const served = files - 64
      const port = yield* brokerProcess(files, { insecure: true, handshakeTimeoutMs: 120_000 })
      const outcomes: Array<"connecting" | "open" | "refused" | "dropped"> = []
      const sockets: Array<Socket> = []
      yield* Effect.addFinalizer(() => Effect.sync(() => sockets.forEach((socket) => socket.destroy())))
      /** Connects (without a HELLO); resolves once connected, recording what becomes of the connection. */
      const attempt = Effect.async<number>((resume) => {
        const i = outcomes.length
        outcomes.push("connecting")
        const socket = connect({ host: "127.0.0.1", port })
        sockets.push(socket)
        const reader = new FrameReader({ accept: [FrameType.ERROR], maxBatchBytes: 0 })
        let code: string | undefined
        socket.on("error", () => {})
        socket.on("data", (chunk: Buffer) => {
          reader.push(chunk)
          const frame = reader.next()
          if (frame !== undefined && !(frame instanceof WireViolation)) code = errorCode(frame)
          // Told, the client goes, like a publisher's connection does.
          socket.destroy()
        })
        socket.on("close", () => void (outcomes[i] = code === "too-many-connections" ? "refused" : "dropped"))
        socket.once("connect", () => {
          if (outcomes[i] === "connecting") outcomes[i] = "open"
          resume(Effect.succeed(i))
        })
      })
      const counts = () =>
        Object.fromEntries(["open", "refused", "dropped"].map((o) => [o, outcomes.filter((x) => x === o).length]))
      for (let i = 0; i < served; i++) yield* attempt
      // One at a time past the limit, as new publishers come: each is told, none is dropped.
      for (let extra = 0; extra < 20; extra++) {
        const i = yield* attempt
        yield* until(`connection ${i} answered`, () => outcomes[i] !== "open", 10_000, counts)
      }
      expect(counts()).toEqual({ open: served, refused: 20, dropped: 0 })
    }))
})
