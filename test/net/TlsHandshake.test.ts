/**
 * A TLS handshake the client abandons (docs/security.md): a client that refuses the broker's
 * certificate closes with the certificate error and sends nothing, and the connection it leaves
 * half-open on the broker (Node's client verifies after the handshake's last flight, then only
 * closes its side) does not hold up the broker's close.
 */
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Scope } from "effect"
import * as BrokerLayers from "../../src/layers/net/Broker.js"
import * as BrokerLogLayers from "../../src/layers/net/BrokerLogMemory.js"
import { type ConnectionClosed, openConnection } from "../../src/layers/net/ClientConnection.js"
import { Hello, PROTOCOL_VERSION } from "../../src/layers/net/Control.js"
import { certificates } from "../fixtures/tls-certificates.js"

/** Bounds of this test's waits (a refusal and a close take milliseconds; the broker's TLS handshake timeout is 10 s). */
const BOUND_MS = 5_000

describe("TLS handshake", () => {
  it.scopedLive("a client refusing the broker's certificate closes with that error and sends nothing; the broker still closes at once", () =>
    Effect.gen(function*() {
      const certs = yield* certificates
      const stranger = yield* certificates
      const log = yield* BrokerLogLayers.makeMemoryLog({ topics: [{ name: "t" }] })
      const brokerScope = yield* Scope.make()
      yield* Effect.addFinalizer(() => Scope.close(brokerScope, Exit.void))
      const server = yield* BrokerLayers.make({ insecure: true, tls: { cert: certs.cert, key: certs.key } }).pipe(
        Effect.provide(log.forBroker(0)),
        Scope.extend(brokerScope)
      )
      const closed = yield* Deferred.make<ConnectionClosed>()
      const connection = openConnection(
        { host: "127.0.0.1", port: server.port },
        new Hello({ protocol: PROTOCOL_VERSION, clientId: 2, ackLevel: 1 }),
        {
          onWelcome: () => {},
          onSessionOpened: () => {},
          onSessionEnded: () => {},
          onAck: () => {},
          onFenced: () => {},
          onBrokerError: () => {},
          onClosed: (_, why) => Deferred.unsafeDone(closed, Effect.succeed(why))
        },
        BOUND_MS,
        // Trusting another CA: the broker's certificate does not verify.
        { tls: { ca: stranger.ca } }
      )
      yield* Effect.addFinalizer(() => Effect.sync(() => connection.close()))
      const why = yield* Deferred.await(closed).pipe(
        Effect.timeoutFail({
          duration: BOUND_MS,
          onTimeout: () => new Error(`the connection did not close within ${BOUND_MS} ms`)
        })
      )
      expect(why.code).toBe("unreachable")
      expect(why.detail).toMatch(/certificate/)
      expect(server.stats()).toMatchObject({ connections: 0, batches: 0 })
      yield* Scope.close(brokerScope, Exit.void).pipe(
        // A close cannot be interrupted: past the bound the test fails while it goes on.
        Effect.disconnect,
        Effect.timeoutFail({
          duration: BOUND_MS,
          onTimeout: () =>
            new Error(`the broker did not close within ${BOUND_MS} ms: the abandoned TLS handshake held it`)
        })
      )
    }))
})
