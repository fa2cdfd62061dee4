/**
 * A client's side of a broker connection has TCP keepalive on: a remote subscriber waiting on an
 * idle topic, or a publisher with nothing in flight, gets no bytes that could fail when the
 * broker's host vanishes (no FIN or RST), so only keepalive ends the connection and lets the
 * subscription fail over. Checked in the kernel's state, as SubscriptionKeepAlive.test.ts does for
 * the broker's side: the client's socket shows the keepalive timer (2), due within 60 s; a socket
 * without the option shows no timer (0).
 */
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect } from "effect"
import { readFileSync } from "node:fs"
import * as BrokerLayers from "../../src/layers/net/Broker.js"
import * as BrokerLogLayers from "../../src/layers/net/BrokerLogMemory.js"
import { type ClientSecurity, openConnection } from "../../src/layers/net/ClientConnection.js"
import { Hello, PROTOCOL_VERSION } from "../../src/layers/net/Control.js"
import { makeRemote } from "../../src/layers/net/SubscriberRemote.js"
import { certificates } from "../fixtures/tls-certificates.js"

/** /proc/net/tcp reports timers in USER_HZ ticks. */
const TICKS_PER_SECOND = 100
const KEEPALIVE_TIMER = 2
/** Bound of the waits for a handshake. */
const BOUND_MS = 5_000

/** The timers of the established IPv4 sockets whose peer is local port `port` (the clients' sides of its connections). */
const clientTimers = (port: number): Array<{ readonly kind: number; readonly ticks: number }> => {
  const timers: Array<{ kind: number; ticks: number }> = []
  for (const line of readFileSync("/proc/net/tcp", "utf8").split("\n").slice(1)) {
    const [, localAddress, remoteAddress, state, , timer] = line.trim().split(/\s+/)
    if (localAddress === undefined || remoteAddress === undefined || timer === undefined || state !== "01") continue
    if (parseInt(remoteAddress.split(":")[1]!, 16) !== port) continue
    const [kind, ticks] = timer.split(":")
    timers.push({ kind: parseInt(kind!, 16), ticks: parseInt(ticks!, 16) })
  }
  return timers
}

/** The one client socket to `port`, once it shows the keepalive timer (a retransmission timer shows while a segment is unacknowledged: bounded look). */
const expectKeepAlive = (port: number) =>
  Effect.gen(function*() {
    let seen: ReturnType<typeof clientTimers> = []
    for (let attempt = 0; attempt < 250; attempt++) {
      seen = clientTimers(port)
      if (seen.length === 1 && seen[0]!.kind === KEEPALIVE_TIMER) break
      yield* Effect.sleep(20)
    }
    expect(seen.length, "the client's socket of the connection in /proc/net/tcp").toBe(1)
    expect(seen[0]!.kind, "its timer: 2 is keepalive, 0 none").toBe(KEEPALIVE_TIMER)
    expect(seen[0]!.ticks).toBeGreaterThan(0)
    expect(seen[0]!.ticks).toBeLessThanOrEqual(60 * TICKS_PER_SECOND)
  })

const broker = (tls?: { readonly cert: string; readonly key: string }) =>
  Effect.gen(function*() {
    const log = yield* BrokerLogLayers.makeMemoryLog({ topics: [{ name: "t" }] })
    return yield* BrokerLayers.make(tls === undefined ? { insecure: true } : { insecure: true, tls }).pipe(
      Effect.provide(BrokerLogLayers.layerMemory(log, 0))
    )
  })

/** A remote subscriber on the idle topic "t" (subscribed: the SUBSCRIBED came), and its broker's port. */
const subscribed = (tls: boolean) =>
  Effect.gen(function*() {
    const certs = tls ? yield* certificates : undefined
    const server = yield* broker(certs)
    const subscriber = makeRemote({
      brokers: [{ host: "127.0.0.1", port: server.port }],
      connectTimeoutMs: BOUND_MS,
      ...(certs === undefined ? {} : { tls: { ca: certs.ca } })
    })
    yield* subscriber.subscribe("t", { from: "earliest" })
    return server.port
  })

/** A publisher's connection to a broker, welcomed, with nothing in flight. */
const welcomed = (tls: boolean) =>
  Effect.gen(function*() {
    const certs = tls ? yield* certificates : undefined
    const server = yield* broker(certs)
    const welcome = yield* Deferred.make<void, string>()
    const security: ClientSecurity = certs === undefined ? {} : { tls: { ca: certs.ca } }
    const connection = openConnection(
      { host: "127.0.0.1", port: server.port },
      new Hello({ protocol: PROTOCOL_VERSION, clientId: 3, ackLevel: 1 }),
      {
        onWelcome: () => Deferred.unsafeDone(welcome, Effect.void),
        onSessionOpened: () => {},
        onSessionEnded: () => {},
        onAck: () => {},
        onFenced: () => {},
        onBrokerError: () => {},
        onClosed: (reason) => Deferred.unsafeDone(welcome, Effect.fail(reason))
      },
      BOUND_MS,
      security
    )
    yield* Effect.addFinalizer(() => Effect.sync(() => connection.close()))
    yield* Deferred.await(welcome).pipe(
      Effect.timeoutFail({ duration: BOUND_MS, onTimeout: () => `no WELCOME within ${BOUND_MS} ms` })
    )
    return server.port
  })

describe("a client's TCP keepalive", () => {
  it.scopedLive("a remote subscriber's socket has keepalive on, probing within 60 s", () =>
    Effect.flatMap(subscribed(false), expectKeepAlive))

  it.scopedLive("under TLS, the TCP socket beneath a remote subscriber's has keepalive on", () =>
    Effect.flatMap(subscribed(true), expectKeepAlive))

  it.scopedLive("a publisher's socket has keepalive on, probing within 60 s", () =>
    Effect.flatMap(welcomed(false), expectKeepAlive))

  it.scopedLive("under TLS, the TCP socket beneath a publisher's has keepalive on", () =>
    Effect.flatMap(welcomed(true), expectKeepAlive))
})
