/**
 * `cxlog publish` from lines (stdin): every line's result is checked; a line the publisher
 * refuses stops the command with a typed error naming it, after flushing the lines before it.
 */
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Layer, Option, Scope } from "effect"
import { spawn } from "node:child_process"
import { type AddressInfo, connect, createServer, type Socket } from "node:net"
import { join } from "node:path"
import { LeaseLineView } from "../../src/layers/log/RecordViews.js"
import { upsertUser, userRecord } from "../../src/layers/net/Auth.js"
import { forEachMessage } from "../../src/layers/net/BatchPayload.js"
import * as BrokerLayers from "../../src/layers/net/Broker.js"
import * as BrokerLogLayers from "../../src/layers/net/BrokerLogMemory.js"
import { FRAME_HEADER_BYTES, FrameType } from "../../src/layers/net/Frame.js"
import { isPidStopped } from "../../src/layers/region/ProcessInfo.js"
import { Offsets } from "../../src/layers/region/Superblock.js"
import { attachRegion } from "../../src/layers/Roles.js"
import { publish, type PublishOptions } from "../../src/programs/roles/Publish.js"
import { describeRanges } from "../../src/programs/roles/PublishOutcomes.js"
import { defaultSequencerOptions } from "../../src/services/log/Sequencer.js"
import { CxlMemory } from "../../src/services/region/CxlMemory.js"
import { cli, forkCli, runCli, smallRegionEnv } from "../helpers/CliRoles.js"
import { tempDir, uniqueRegion } from "../helpers/Processes.js"
import { freePorts, until } from "../helpers/ServeProcess.js"

async function* linesOf(lines: ReadonlyArray<string>) {
  yield* lines
}

const publishLines = (lines: ReadonlyArray<string>, message?: PublishOptions["message"]) =>
  Effect.gen(function*() {
    const log = yield* BrokerLogLayers.makeMemoryLog({ topics: [{ name: "t" }], retainOrdered: true })
    const broker = yield* BrokerLayers.make({ insecure: true }).pipe(Effect.provide(log.forBroker(0)))
    const exit = yield* Effect.exit(publish({
      publisher: {
        brokers: [{ host: "127.0.0.1", port: broker.port }],
        topic: "t",
        batchBytes: 1024,
        maxBatchBytes: 4096
      },
      lines: linesOf(lines),
      messageBytes: 0,
      publisherIndex: 0,
      flushTimeoutMs: 10_000,
      reportEveryMs: 60_000,
      report: () => {},
      ...(message === undefined ? {} : { message })
    }))
    const decoder = new TextDecoder()
    const published: Array<string> = []
    const parts: Array<string> = []
    for (const batch of log.ordered("t")) {
      forEachMessage(batch.payload, batch.messageCount, (m) => {
        published.push(decoder.decode(m.payload))
        parts.push(`${m.key === undefined ? "-" : decoder.decode(m.key)} ${
          m.headers?.map((h) => `${h.name}=${decoder.decode(h.value)}`).join(",") ?? "-"
        }`)
      })
    }
    return { exit, published, parts }
  })

/**
 * A port where something accepts connections and never answers (no WELCOME): a publisher's
 * batches then wait for ACKs until its own timeouts (where nothing listens at all, it fails
 * sooner, on the refusals: BrokersUnreachable). Closed with the scope.
 */
const silentPort = Effect.acquireRelease(
  Effect.async<ReturnType<typeof createServer>>((resume) => {
    const server = createServer(() => {})
    server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
  }),
  (server) => Effect.sync(() => server.close())
).pipe(Effect.map((server) => (server.address() as AddressInfo).port))

describe("cxlog publish (lines)", () => {
  it.scopedLive("every line is published, in order", () =>
    Effect.gen(function*() {
      const { exit, published } = yield* publishLines(["a", "", "c"])
      expect(Exit.isSuccess(exit)).toBe(true)
      expect(published).toEqual(["a", "", "c"])
    }))

  it.scopedLive("--key and --header go with every line", () =>
    Effect.gen(function*() {
      const { exit, published, parts } = yield* publishLines(["a", "b"], {
        key: "k",
        headers: [["source", "cli"], ["note", "x,y"]]
      })
      expect(Exit.isSuccess(exit)).toBe(true)
      expect(published).toEqual(["a", "b"])
      expect(parts).toEqual(["k source=cli,note=x,y", "k source=cli,note=x,y"])
    }))

  it.scopedLive("an oversized line fails the command naming it; the lines before it are published, none after it", () =>
    Effect.gen(function*() {
      const { exit, published } = yield* publishLines(["first", "second", "x".repeat(5000), "fourth"])
      expect(exit).toMatchObject({
        _tag: "Failure",
        cause: {
          _tag: "Fail",
          error: { _tag: "LineNotPublished", line: 3, bytes: 5000, cause: { _tag: "MessageTooLarge" } }
        }
      })
      expect(Exit.isFailure(exit) && String(exit.cause)).toMatch(
        /line 3 \(5000 bytes\) was not published: a 5000-byte message does not fit/
      )
      expect(published).toEqual(["first", "second"])
    }))

  it.scopedLive("a line over the topic's limit, taken before the publisher knew it: the failure says it was not published (dropped unsent), the others were", () =>
    Effect.gen(function*() {
      const log = yield* BrokerLogLayers.makeMemoryLog({ topics: [{ name: "t" }], retainOrdered: true })
      yield* log.topics.create({ name: "small", order: 5, ackLevel: 1, replicationFactor: 1, maxMessageBytes: 1024 })
      const broker = yield* BrokerLayers.make({ insecure: true }).pipe(Effect.provide(log.forBroker(0)))
      // Within the publisher's own batch limit: taken, then dropped once the topic's session says its limit.
      const exit = yield* Effect.exit(publish({
        publisher: { brokers: [{ host: "127.0.0.1", port: broker.port }], topic: "small", batchBytes: 1024 },
        lines: linesOf(["first", "x".repeat(2000), "third"]),
        messageBytes: 0,
        publisherIndex: 0,
        flushTimeoutMs: 10_000,
        reportEveryMs: 60_000,
        report: () => {}
      }))
      expect(exit).toMatchObject({
        _tag: "Failure",
        cause: {
          _tag: "Fail",
          error: {
            _tag: "LinesNotAcknowledged",
            line: 2,
            unacknowledged: [{ topic: "small", from: 1, count: 1 }],
            cause: { _tag: "MessageTooLarge", topic: "small", bytes: 2000 }
          }
        }
      })
      const said = Exit.isFailure(exit) ? String(exit.cause) : ""
      expect(said).toContain(
        "line 2 was not published (dropped unsent: a message over the topic's limit; the other 2 lines were acknowledged): a 2000-byte message is over topic small's largest message of 1024 bytes"
      )
      expect(said).not.toContain("may or may not be in the log")
      const decoder = new TextDecoder()
      const published: Array<string> = []
      for (const batch of log.ordered("small")) {
        forEachMessage(batch.payload, batch.messageCount, (m) => published.push(decoder.decode(m.payload)))
      }
      expect(published).toEqual(["first", "third"])
    }))

  const linesTo = (port: number, lines: AsyncIterable<string>, report: PublishOptions["report"] = () => {}) =>
    Effect.exit(publish({
      publisher: {
        brokers: [{ host: "127.0.0.1", port }],
        topic: "t",
        batchBytes: 1024,
        maxBatchBytes: 4096,
        reconnectDelayMs: 50
      },
      lines,
      messageBytes: 0,
      publisherIndex: 0,
      flushTimeoutMs: 1_500,
      reportEveryMs: 20,
      report
    }))

  it.scopedLive("no broker answering: the failure names line 1 as the first not acknowledged, and none as in the log", () =>
    Effect.gen(function*() {
      const exit = yield* linesTo(yield* silentPort, linesOf(["a", "b"]))
      expect(exit).toMatchObject({
        _tag: "Failure",
        cause: {
          _tag: "Fail",
          error: {
            _tag: "LinesNotAcknowledged",
            line: 1,
            sent: 2,
            unacknowledged: [{ from: 0, count: 2 }],
            cause: { _tag: "PublishAckTimeout" }
          }
        }
      })
      expect(exit).toMatchObject({ cause: { error: { batchesSent: 0 } } })
      expect(Exit.isFailure(exit) && String(exit.cause)).toMatch(
        /lines 1-2 were not published \(none is in the log: no batch reached a broker that accepted the session\): \d+ batches not acknowledged within/
      )
    }))

  it.scopedLive("a refused line, then the flush fails too: the failure names the first line not acknowledged and keeps the refusal", () =>
    Effect.gen(function*() {
      const exit = yield* linesTo(yield* silentPort, linesOf(["a", "x".repeat(5000), "c"]))
      expect(exit).toMatchObject({
        _tag: "Failure",
        cause: {
          _tag: "Fail",
          error: {
            _tag: "LinesNotAcknowledged",
            line: 1,
            sent: 1,
            stopped: { _tag: "LineNotPublished", line: 2, cause: { _tag: "MessageTooLarge" } }
          }
        }
      })
      const said = Exit.isFailure(exit) ? String(exit.cause) : ""
      expect(said).toMatch(/the input stopped at line 2 \(5000 bytes\), refused: /)
      // Not told both ways: the lines before it were sent, not acknowledged, so not "published".
      expect(said).not.toContain("lines before it were")
    }))

  it.scopedLive("the broker dies mid-stream: the failure names the first line sent after the last one acknowledged", () =>
    Effect.gen(function*() {
      const log = yield* BrokerLogLayers.makeMemoryLog({ topics: [{ name: "t" }], retainOrdered: true })
      const brokerScope = yield* Scope.make()
      const broker = yield* BrokerLayers.make({ insecure: true }).pipe(
        Effect.provide(log.forBroker(0)),
        Scope.extend(brokerScope)
      )
      // Lines 1-2 go while the broker runs; 3-4 once it is gone.
      const acked = yield* Deferred.make<void>()
      const brokerGone = yield* Deferred.make<void>()
      async function* lines() {
        yield* ["1", "2"]
        await Effect.runPromise(Deferred.await(brokerGone))
        yield* ["3", "4"]
      }
      const publishing = yield* Effect.fork(linesTo(broker.port, lines(), (event) => {
        if (event["ackedMessages"] === 2) Deferred.unsafeDone(acked, Effect.void)
      }))
      yield* Deferred.await(acked).pipe(
        Effect.timeoutFail({ duration: "20 seconds", onTimeout: () => new Error("lines 1-2 were not acknowledged") })
      )
      yield* Scope.close(brokerScope, Exit.void)
      yield* Deferred.succeed(brokerGone, undefined)
      const exit = yield* Fiber.join(publishing)
      expect(exit).toMatchObject({
        _tag: "Failure",
        cause: {
          _tag: "Fail",
          error: {
            _tag: "LinesNotAcknowledged",
            line: 3,
            sent: 4,
            unacknowledged: [{ from: 2, count: 2 }],
            cause: { _tag: "PublishAckTimeout" }
          }
        }
      })
      expect(Exit.isFailure(exit) && String(exit.cause)).toMatch(
        /lines 3-4 were sent but not acknowledged \(each may or may not be in the log; the other 2 lines were acknowledged\)/
      )
    }))
})

describe("cxlog publish --count --rate-mbps", () => {
  it.scopedLive("an offered load is paced by a plain timer: messages are published from its callback, not by waking the fiber per tick", () =>
    Effect.gen(function*() {
      const log = yield* BrokerLogLayers.makeMemoryLog({ topics: [{ name: "t" }], retainOrdered: true })
      const broker = yield* BrokerLayers.make({ insecure: true }).pipe(Effect.provide(log.forBroker(0)))
      // The publisher reads each message's key as it takes it. What tells the designs apart is how
      // often a fiber runs to take messages, not how many it takes then (a tick that is late takes
      // every message due since): so each run of takings (one synchronous stretch: a timer tick, or
      // a fiber's run) is counted once, by whether a fiber is running it. The first read opens a
      // stretch; a microtask, which runs only once the stretch is over, closes it.
      const stretches = { inFiber: 0, outside: 0 }
      let inStretch = false
      const message = {
        get key() {
          if (!inStretch) {
            inStretch = true
            queueMicrotask(() => {
              inStretch = false
            })
            if (Option.isSome(Fiber.getCurrentFiber())) stretches.inFiber++
            else stretches.outside++
          }
          return "k"
        }
      }
      // 300 messages of 1000 bytes at 1 MB/s: ~300 ms, a tick per ms. The fiber also wakes, rightly,
      // when the window is full, and takes the messages due by then itself: so the window is fixed
      // at 300 batches, which 300 messages cannot fill however late the ACKs come on a loaded host.
      const exit = yield* Effect.exit(publish({
        publisher: {
          brokers: [{ host: "127.0.0.1", port: broker.port }],
          topic: "t",
          maxInFlightBatches: 300,
          adaptiveWindow: false
        },
        count: 300,
        messageBytes: 1000,
        rateMBps: 1,
        publisherIndex: 0,
        flushTimeoutMs: 10_000,
        reportEveryMs: 60_000,
        report: () => {},
        message
      }))
      expect(Exit.isSuccess(exit)).toBe(true)
      expect(log.ordered("t").reduce((n, batch) => n + batch.messageCount, 0)).toBe(300)
      // In a fiber: the message checked before the publisher connects, and the first tick, run as the
      // fiber starts the pacer (one stretch, or two if the fiber yielded between them). Every later
      // tick runs from the timer. Waking the fiber per tick would take messages in it at every tick.
      expect(stretches.inFiber).toBeLessThanOrEqual(2)
      expect(stretches.outside).toBeGreaterThan(0)
    }))
})

describe("cxlog publish --count", () => {
  const stamped = (count: number, publisher: Partial<PublishOptions["publisher"]>) =>
    Effect.flatMap(silentPort, (port) =>
      Effect.exit(publish({
        publisher: {
          brokers: [{ host: "127.0.0.1", port }],
          topic: "t",
          batchBytes: 1024,
          reconnectDelayMs: 50,
          ...publisher
        },
        count,
        messageBytes: 100,
        publisherIndex: 0,
        flushTimeoutMs: 1_000,
        reportEveryMs: 60_000,
        report: () => {}
      })))

  it.scopedLive("no broker answering: the final flush fails naming how many messages are not acknowledged, and that none is in the log", () =>
    Effect.gen(function*() {
      const exit = yield* stamped(3, {})
      expect(exit).toMatchObject({
        _tag: "Failure",
        cause: {
          _tag: "Fail",
          error: {
            _tag: "MessagesNotAcknowledged",
            count: 3,
            sent: 3,
            batchesSent: 0,
            unacknowledged: [{ from: 0, count: 3 }],
            during: "flush",
            cause: { _tag: "PublishAckTimeout" }
          }
        }
      })
      expect(Exit.isFailure(exit) && String(exit.cause)).toMatch(
        /3 of 3 messages not acknowledged, and none is in the log: no batch reached a broker that accepted the session; the final flush failed: 1 batches not acknowledged within 1000 ms/
      )
    }))

  it.scopedLive("a window that stays full fails naming the message that waited (with no broker answering, none is in the log)", () =>
    Effect.gen(function*() {
      // One 100-byte message per batch, one batch in flight: the second sealed batch waits for room.
      const exit = yield* stamped(50, { batchBytes: 128, maxInFlightBatches: 1, ackTimeoutMs: 500 })
      expect(exit).toMatchObject({
        _tag: "Failure",
        cause: { _tag: "Fail", error: { _tag: "MessagesNotAcknowledged", count: 50, during: "send", batchesSent: 0 } }
      })
      const sent = Exit.isFailure(exit) && exit.cause._tag === "Fail"
        ? (exit.cause.error as { readonly sent: number }).sent
        : 0
      expect(sent).toBeGreaterThan(0)
      expect(sent).toBeLessThan(50)
      expect(exit).toMatchObject({ cause: { error: { sent, unacknowledged: [{ from: 0, count: sent }] } } })
      expect(Exit.isFailure(exit) && String(exit.cause)).toMatch(
        new RegExp(
          `50 of 50 messages not acknowledged, and none is in the log: no batch reached a broker that accepted the session; waiting for window room to send message ${
            sent + 1
          } failed: .* not acknowledged within 500 ms`
        )
      )
    }))

  it.scopedLive("every broker refuses the session at authentication: none is in the log, and the failure says so", () =>
    Effect.gen(function*() {
      const users = join(yield* tempDir("cxlog-publish-auth-"), "users")
      upsertUser(users, userRecord("alice", "alice-secret-1", { publish: ["*"], read: ["*"] }, undefined, 64))
      const log = yield* BrokerLogLayers.makeMemoryLog({ topics: [{ name: "t" }], retainOrdered: true })
      const broker = yield* BrokerLayers.make({ credentials: users }).pipe(Effect.provide(log.forBroker(0)))
      const wrongSecret = {
        brokers: [{ host: "127.0.0.1", port: broker.port }],
        credentials: { user: "alice", secret: "not-alice-secret" }
      }
      const stampedExit = yield* stamped(1000, wrongSecret)
      expect(stampedExit).toMatchObject({
        cause: {
          error: {
            _tag: "MessagesNotAcknowledged",
            count: 1000,
            batchesSent: 0,
            cause: { _tag: "BrokerRejected", code: "auth-failed" }
          }
        }
      })
      expect(Exit.isFailure(stampedExit) && String(stampedExit.cause)).toMatch(
        /1000 of 1000 messages not acknowledged, and none is in the log: no batch reached a broker that accepted the session; .* refused the session: auth-failed/
      )
      const linesExit = yield* Effect.exit(publish({
        publisher: { ...wrongSecret, topic: "t", batchBytes: 1024 },
        lines: linesOf(["a", "b"]),
        messageBytes: 0,
        publisherIndex: 0,
        flushTimeoutMs: 5_000,
        reportEveryMs: 60_000,
        report: () => {}
      }))
      expect(linesExit).toMatchObject({ cause: { error: { _tag: "LinesNotAcknowledged", batchesSent: 0 } } })
      expect(Exit.isFailure(linesExit) && String(linesExit.cause)).toMatch(
        /lines 1-2 were not published \(none is in the log: no batch reached a broker that accepted the session\): .* refused the session: auth-failed/
      )
      expect(log.ordered("t")).toEqual([])
    }))
})

/**
 * A relay to `port` that stops reading from its client once the broker opened the client's first
 * session (its SESSION_OPENED went through): what the client writes after that — the session's
 * batches — piles up in the kernel until its writes stall.
 */
const stallingRelay = (port: number) =>
  Effect.acquireRelease(
    Effect.async<{ readonly port: number; readonly close: () => void }>((resume) => {
      const sockets: Array<Socket> = []
      const server = createServer((client) => {
        const upstream = connect(port, "127.0.0.1")
        sockets.push(client, upstream)
        client.on("error", () => {})
        upstream.on("error", () => {})
        client.on("data", (bytes) => upstream.write(bytes))
        // The broker's frames, read header by header until the first SESSION_OPENED.
        let replies = Buffer.alloc(0)
        upstream.on("data", (bytes) => {
          client.write(bytes)
          if (client.isPaused()) return
          replies = Buffer.concat([replies, bytes])
          while (replies.length >= FRAME_HEADER_BYTES) {
            const end = FRAME_HEADER_BYTES + replies.readUInt32LE(24)
            if (replies.length < end) break
            if (replies[0] === FrameType.SESSION_OPENED) return void client.pause()
            replies = replies.subarray(end)
          }
        })
      })
      server.listen(0, "127.0.0.1", () =>
        resume(Effect.succeed({
          port: (server.address() as AddressInfo).port,
          close: () => {
            for (const socket of sockets) socket.destroy()
            server.close()
          }
        })))
    }),
    (relay) => Effect.sync(relay.close)
  )

describe("cxlog publish --count, acknowledged out of order", () => {
  it.scopedLive("ACK level 0, one broker's socket stalled: the failure names exactly the messages not acknowledged, which are not the last ones sent", () =>
    Effect.gen(function*() {
      const log = yield* BrokerLogLayers.makeMemoryLog({ topics: [{ name: "t" }], retainOrdered: true })
      const broker = yield* BrokerLayers.make({ insecure: true }).pipe(Effect.provide(log.forBroker(0)))
      const relay = yield* stallingRelay(broker.port)
      // Round-robin over the relay and the broker itself: every other batch goes to the stalled socket.
      const count = 20_000
      const exit = yield* Effect.exit(publish({
        publisher: {
          brokers: [{ host: "127.0.0.1", port: relay.port }, { host: "127.0.0.1", port: broker.port }],
          topic: "t",
          ackLevel: 0,
          batchBytes: 16 << 10,
          maxInFlightBatches: 8,
          ackTimeoutMs: 1_000
        },
        count,
        messageBytes: 4000,
        publisherIndex: 0,
        flushTimeoutMs: 1_000,
        reportEveryMs: 60_000,
        report: () => {}
      }))
      if (!Exit.isFailure(exit) || exit.cause._tag !== "Fail" || exit.cause.error._tag !== "MessagesNotAcknowledged") {
        return expect.unreachable(
          `not MessagesNotAcknowledged: ${Exit.isFailure(exit) ? String(exit.cause) : "success"}`
        )
      }
      const error = exit.cause.error
      const { sent, unacknowledged } = error
      const missing = unacknowledged.reduce((n, r) => n + r.count, 0)
      expect(sent).toBeLessThan(count)
      // Not a suffix: messages after the first one not acknowledged were (the broker's own link's batches), so
      // the first not acknowledged lies within the count acknowledged, which the old message called the first ones.
      expect(unacknowledged.length).toBeGreaterThan(1)
      expect(unacknowledged[0]!.from).toBeLessThan(sent - missing)
      expect(
        unacknowledged.every((r, i) => i === 0 || r.from > unacknowledged[i - 1]!.from + unacknowledged[i - 1]!.count)
      ).toBe(true)
      expect(error.message).toMatch(
        new RegExp(
          `^${count - sent + missing} of ${count} messages not acknowledged: messages ${
            describeRanges(unacknowledged)
          } sent, each may or may not be in the log; ` +
            `messages ${sent + 1}-${count} never sent; the other ${
              sent - missing
            } messages were acknowledged; waiting for window room to send message ${sent + 1} failed`
        )
      )
    }))
})

describe("cxlog publish --local (the CLI): a local publisher, no broker", () => {
  it.scopedLive(
    "stamped messages (the CLI) and lines (the same program) go into the region itself; a subscriber reads them back in order",
    () =>
      Effect.gen(function*() {
        const region = yield* uniqueRegion("publish-local")
        const env = { ...smallRegionEnv, CXLOG_REGION: region }
        const head = yield* forkCli(["head", "--topic", "t:5:1"], env)
        yield* head.event("ready")
        const stamped = yield* runCli([
          "publish",
          "--local",
          "--topic",
          "t",
          "--count",
          "2000",
          "--message-bytes",
          "64"
        ], env)
        expect(stamped.code, stamped.stderr).toBe(0)
        expect(stamped.stderr).toContain("publisher: 2000 messages")
        // Lines through the same program, in this process (it maps the region as the CLI does).
        async function* twoLines() {
          yield "alpha"
          yield "beta"
        }
        yield* publish({
          publisher: { brokers: [], topic: "t" },
          local: { name: region },
          lines: twoLines(),
          messageBytes: 0,
          publisherIndex: 0,
          flushTimeoutMs: 5_000,
          reportEveryMs: 60_000,
          report: () => {}
        })
        const read = yield* runCli(["subscribe", "--topic", "t", "--from", "2000", "--limit", "2"], env)
        expect(read.code, read.stderr).toBe(0)
        expect(read.stdout.trim().split("\n")).toEqual(["2000\talpha", "2001\tbeta"])
      }),
    60_000
  )

  it.scopedLive(
    "lines from stdin are published as their bytes: what is not UTF-8 is not replaced",
    () =>
      Effect.gen(function*() {
        const region = yield* uniqueRegion("publish-bytes")
        const env = { ...smallRegionEnv, CXLOG_REGION: region }
        const head = yield* forkCli(["head", "--topic", "t:5:1"], env)
        yield* head.event("ready")
        const code = yield* Effect.async<number | null>((resume) => {
          const child = spawn(process.execPath, [cli, "publish", "--local", "--topic", "t"], {
            stdio: ["pipe", "ignore", "inherit"],
            env: { ...process.env, ...env }
          })
          child.on("close", (exitCode) => resume(Effect.succeed(exitCode)))
          // Latin-1 "café", bytes no UTF-8 text has, and a CRLF line.
          child.stdin!.end(Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x0a, 0xff, 0xfe, 0x00, 0x0a, 0x6f, 0x6b, 0x0d, 0x0a]))
          return Effect.sync(() => child.kill("SIGKILL"))
        })
        expect(code).toBe(0)
        const read = yield* runCli(["subscribe", "--topic", "t", "--limit", "3", "--format", "json"], env)
        expect(read.code, read.stderr).toBe(0)
        expect(read.stdout.trim().split("\n").map((line) => JSON.parse(line))).toMatchObject([
          { offset: 0, payloadBase64: Buffer.from([0x63, 0x61, 0x66, 0xe9]).toString("base64") },
          { offset: 1, payloadBase64: Buffer.from([0xff, 0xfe, 0x00]).toString("base64") },
          { offset: 2, payload: "ok" }
        ])
      }),
    60_000
  )

  it.scopedLive(
    "SIGTERM while its stdin stays open (tail -f | cxlog publish): it stops, the lines it had are in the log",
    () =>
      Effect.gen(function*() {
        const region = yield* uniqueRegion("publish-stop")
        const env = { ...smallRegionEnv, CXLOG_REGION: region }
        const head = yield* forkCli(["head", "--topic", "t:5:1"], env)
        yield* head.event("ready")
        const child = yield* Effect.acquireRelease(
          Effect.sync(() =>
            spawn(process.execPath, [cli, "publish", "--local", "--topic", "t"], {
              stdio: ["pipe", "ignore", "inherit"],
              env: { ...process.env, ...env }
            })
          ),
          (child) => Effect.sync(() => child.kill("SIGKILL"))
        )
        const exited = yield* Deferred.make<number | null>()
        child.on("close", (code) => Deferred.unsafeDone(exited, Effect.succeed(code)))
        // Two lines, and the input left open: the publisher waits for more.
        child.stdin!.write("alpha\nbeta\n")
        const read = yield* runCli(["subscribe", "--topic", "t", "--limit", "2"], env)
        expect(read.stdout).toBe("0\talpha\n1\tbeta\n")
        child.kill("SIGTERM")
        const code = yield* Deferred.await(exited).pipe(Effect.timeoutFail({
          duration: "30 seconds",
          onTimeout: () => new Error("cxlog publish ran on 30 s after its SIGTERM, its stdin open")
        }))
        expect(code).toBe(0)
      }),
    60_000
  )

  it.scopedLive("with no head's region there: the failure names the region, exit 1", () =>
    Effect.gen(function*() {
      const region = yield* uniqueRegion("publish-local-none")
      const { code, stderr } = yield* runCli(["publish", "--local", "--topic", "t", "--count", "1"], {
        ...smallRegionEnv,
        CXLOG_REGION: region
      })
      expect(code).toBe(1)
      expect(stderr).toContain(region)
    }), 30_000)
})

describe("cxlog publish --count (the CLI)", () => {
  it.scopedLive("a flush that times out fails naming what waited and how many messages are not acknowledged: exit 1", () =>
    Effect.gen(function*() {
      const region = yield* uniqueRegion("publish-count")
      const env = { ...smallRegionEnv, CXLOG_REGION: region }
      const head = yield* forkCli(["head", "--topic", "t:5:1"], env)
      yield* head.event("ready")
      const broker = yield* forkCli(["broker", "--broker-id", "0", "--port", "0"], env)
      const brokers = `127.0.0.1:${(yield* broker.event("listening"))["port"] as number}`
      const args = ["publish", "--brokers", brokers, "--topic", "t", "--flush-timeout-ms", "1000"]
      expect((yield* runCli([...args, "--count", "3"], env)).code).toBe(0)
      // The head stopped (SIGKILLed with the rest when the scope closes): the broker takes the batch, nobody orders it
      // once the stopped head's lease has lapsed (until then the broker orders its own batches: docs/log.md).
      head.child.kill("SIGSTOP")
      yield* Effect.flatMap(CxlMemory, (memory) => {
        const lines = new LeaseLineView(memory)
        return until(
          () => isPidStopped(head.pid) && lines.expiresAtMs(Offsets.sequencerLease) < Date.now(),
          2 * defaultSequencerOptions.leaseMs + 10_000,
          () => `the stopped head's lease to lapse (it expires at ${lines.expiresAtMs(Offsets.sequencerLease)})`
        )
      }).pipe(Effect.scoped, Effect.provide(Layer.fresh(attachRegion({ name: region }))))
      const { code, stderr } = yield* runCli([...args, "--count", "5"], env)
      expect(code).toBe(1)
      expect(stderr.trimEnd().split("\n")).toHaveLength(1)
      // Batches sealed before the topic's session said its limit stay within the smallest limit: maybe more than one.
      expect(stderr.trimEnd()).toMatch(
        /^cxlog publish: 5 of 5 messages not acknowledged: messages 1-5 sent, each may or may not be in the log; none was acknowledged; the final flush failed: (\d+) batches not acknowledged within 1000 ms; acked\/sent: B0=0\/\1 .*is the head \(sequencer\) running\?$/
      )
    }))
})

describe("cxlog publish stopped (the CLI)", () => {
  it.scopedLive(
    "SIGTERM with lines taken that no broker acknowledges: they are flushed within the bound still, and said, exit 1",
    () =>
      Effect.gen(function*() {
        const region = yield* uniqueRegion("publish-stop-unacked")
        const env = { ...smallRegionEnv, CXLOG_REGION: region }
        const head = yield* forkCli(["head", "--topic", "t:5:1"], env)
        yield* head.event("ready")
        const broker = yield* forkCli(["broker", "--broker-id", "0", "--port", "0"], env)
        const brokers = `127.0.0.1:${(yield* broker.event("listening"))["port"] as number}`
        // Its connections are accepted (by the kernel) and never answered: nothing is acknowledged.
        broker.child.kill("SIGSTOP")
        const metricsPort = yield* freePorts(1)
        const child = yield* Effect.acquireRelease(
          Effect.sync(() =>
            spawn(process.execPath, [
              cli,
              "publish",
              "--brokers",
              brokers,
              "--topic",
              "t",
              "--flush-timeout-ms",
              "1000",
              "--metrics-port",
              `${metricsPort}`
            ], { stdio: ["pipe", "ignore", "pipe"], env: { ...process.env, ...env } })
          ),
          (child) => Effect.sync(() => child.kill("SIGKILL"))
        )
        let stderr = ""
        child.stderr!.on("data", (c: Buffer) => (stderr += c.toString()))
        const exited = yield* Deferred.make<number | null>()
        child.on("close", (code) => Deferred.unsafeDone(exited, Effect.succeed(code)))
        child.stdin!.write("alpha\nbeta\n")
        // Taken by the publisher: a batch of them sealed.
        const sealed = Effect.promise(() =>
          fetch(`http://127.0.0.1:${metricsPort}/metrics`).then((r) => r.text()).catch(() => "")
        ).pipe(Effect.map((text) => Number(/^cxlog_publisher_batches(?:\{[^}]*\})? (\d+)/m.exec(text)?.[1] ?? 0)))
        for (let i = 0; i < 300 && (yield* sealed) === 0; i++) yield* Effect.sleep("100 millis")
        expect(yield* sealed).toBeGreaterThan(0)
        child.kill("SIGTERM")
        const code = yield* Deferred.await(exited).pipe(Effect.timeoutFail({
          duration: "30 seconds",
          onTimeout: () => new Error(`cxlog publish ran on 30 s after its SIGTERM: ${stderr}`)
        }))
        expect(code, stderr).toBe(1)
        expect(stderr).toContain("cxlog publish: lines 1-2 were not published")
      }),
    60_000
  )
})
