/**
 * A TLS handshake the client abandons (docs/security.md): a client that refuses the broker's
 * certificate closes with the certificate error and sends nothing, and the connection it leaves
 * half-open on the broker (Node's client verifies after the handshake's last flight, then only
 * closes its side) does not hold up the broker's close. A TLS broker's close before it answered
 * says to every kind of client what it may mean.
 */
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Scope } from "effect"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { makeRemote as makeRemoteGroups } from "../../src/layers/groups/ConsumerGroupsRemote.js"
import * as BrokerLayers from "../../src/layers/net/Broker.js"
import * as BrokerLogLayers from "../../src/layers/net/BrokerLogMemory.js"
import { type ConnectionClosed, openConnection } from "../../src/layers/net/ClientConnection.js"
import { Hello, PROTOCOL_VERSION } from "../../src/layers/net/Control.js"
import { makeRemoteTopics } from "../../src/layers/net/TopicsRemote.js"
import { certificates, clientCertificate } from "../fixtures/tls-certificates.js"

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

  it.scopedLive("an admin or consumer groups connection a TLS broker closed before answering says what it may mean, as a publisher's does: plain, that the port serves TLS; with a client certificate, that it may have been refused", () =>
    Effect.gen(function*() {
      const certs = yield* certificates
      const stranger = yield* certificates
      const log = yield* BrokerLogLayers.makeMemoryLog({ topics: [{ name: "t" }] })
      const server = yield* BrokerLayers.make({
        insecure: true,
        tls: { cert: certs.cert, key: certs.key, clientCa: join(certs.dir, "ca.pem") }
      }).pipe(Effect.provide(log.forBroker(0)))
      /** What a topics call and a groups call through the broker fail with, connecting with `tls`. */
      const refusals = (tls: { ca: Uint8Array; cert: Uint8Array; key: Uint8Array } | undefined) =>
        Effect.gen(function*() {
          const options = {
            brokers: [{ host: "127.0.0.1", port: server.port }],
            insecure: true,
            connectTimeoutMs: BOUND_MS,
            ...(tls === undefined ? {} : { tls })
          }
          const topics = yield* makeRemoteTopics(options)
          const groups = yield* makeRemoteGroups(options)
          return [yield* Effect.flip(topics.topics.overview), yield* Effect.flip(groups.list)]
        })
      for (const refused of yield* refusals(undefined)) {
        expect(refused.message).toContain("a broker that serves TLS closes plain connections: give tls.ca, --tls-ca")
      }
      // A client certificate another CA signed (the stranger's): the broker's --tls-client-ca refuses it.
      const foreign = { ca: certs.ca, cert: readFileSync(stranger.cert), key: readFileSync(stranger.key) }
      for (const refused of yield* refusals(foreign)) {
        expect(refused.message).toContain("refused this client's certificate")
      }
      // One the broker's CA signed that has expired: the client says so, its dates being its own to read.
      const expired = { ca: certs.ca, ...clientCertificate(certs, "expired", -1) }
      for (const refused of yield* refusals(expired)) {
        expect(refused.message).toMatch(
          /refused this client's certificate \(it expired on [-\dT:.]+Z: give one valid now: tls\.cert, --tls-client-cert\)/
        )
      }
    }))
})
