/**
 * A broker's settings from the environment: `BrokerLayers.config` and `cxlog broker`'s flags read
 * the variables and defaults of one table (`BROKER_SETTINGS`); the size default the CLI shows is
 * the default in bytes; a broker composed with `layerConfig` serves TLS from its variables.
 */
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Context, Duration, Effect, Either, Layer } from "effect"
import { connect } from "node:tls"
import * as BrokerLayers from "../../src/layers/net/Broker.js"
import * as BrokerLogLayers from "../../src/layers/net/BrokerLogMemory.js"
import { Broker, type BrokerOptions } from "../../src/services/net/Broker.js"
import { BROKER_SETTINGS as BROKER_TABLE } from "../../src/services/net/NetSettings.js"
import { parseSize } from "../../src/Settings.js"
import { certificates } from "../fixtures/tls-certificates.js"

const BROKER_SETTINGS = BROKER_TABLE.settings

const configFrom = (env: Record<string, string>) =>
  Effect.withConfigProvider(BrokerLayers.config, ConfigProvider.fromMap(new Map(Object.entries(env))))

describe("broker settings", () => {
  it("the size default the CLI shows is the default in bytes", () => {
    expect(parseSize(BROKER_SETTINGS.maxBatchBytes.shownDefault!)).toEqual(
      Either.right(BROKER_SETTINGS.maxBatchBytes.default)
    )
  })

  it.effect("with no variable set, config gives the table's defaults; each variable set is read", () =>
    Effect.gen(function*() {
      expect(yield* configFrom({})).toEqual({
        host: BROKER_SETTINGS.host.default,
        port: BROKER_SETTINGS.port.default,
        maxBatchBytes: BROKER_SETTINGS.maxBatchBytes.default,
        ackIntervalMs: BROKER_SETTINGS.ackIntervalMs.default,
        idleTimeoutMs: BROKER_SETTINGS.idleTimeoutMs.default,
        maxConnections: BROKER_SETTINGS.maxConnections.default,
        maxSessions: BROKER_SETTINGS.maxSessions.default,
        insecure: false
      })
      const set = yield* configFrom({
        [BROKER_SETTINGS.host.env]: "10.1.2.3",
        [BROKER_SETTINGS.port.env]: "7411",
        [BROKER_SETTINGS.maxBatchBytes.env]: "4096",
        [BROKER_SETTINGS.ackIntervalMs.env]: "2",
        [BROKER_SETTINGS.idleTimeoutMs.env]: "3000",
        [BROKER_SETTINGS.maxConnections.env]: "9",
        [BROKER_SETTINGS.maxSessions.env]: "12",
        [BROKER_SETTINGS.credentials.env]: "/tmp/users",
        [BROKER_SETTINGS.insecure.env]: "true",
        [BROKER_SETTINGS.tlsCert.env]: "/tmp/broker.pem",
        [BROKER_SETTINGS.tlsKey.env]: "/tmp/broker.key",
        [BROKER_SETTINGS.tlsClientCa.env]: "/tmp/clients.pem"
      })
      expect(set).toEqual({
        host: "10.1.2.3",
        port: 7411,
        maxBatchBytes: 4096,
        ackIntervalMs: 2,
        idleTimeoutMs: 3000,
        maxConnections: 9,
        maxSessions: 12,
        credentials: "/tmp/users",
        insecure: true,
        tls: { cert: "/tmp/broker.pem", key: "/tmp/broker.key", clientCa: "/tmp/clients.pem" }
      })
    }))

  it.effect("a TLS certificate without its key, a key without its certificate, a client CA without both: refused naming the variables", () =>
    Effect.gen(function*() {
      const { tlsCert, tlsClientCa, tlsKey } = BROKER_SETTINGS
      for (
        const env of [
          { [tlsCert.env]: "/tmp/broker.pem" },
          { [tlsKey.env]: "/tmp/broker.key" },
          { [tlsClientCa.env]: "/tmp/clients.pem" }
        ]
      ) {
        const refused = yield* Effect.either(configFrom(env))
        expect(Either.isLeft(refused) && String(refused.left)).toContain(`${tlsCert.env} and ${tlsKey.env}`)
      }
    }))

  it.scopedLive("a broker composed with layerConfig serves TLS with the certificate its variables name", () =>
    Effect.gen(function*() {
      const certs = yield* certificates
      const log = yield* BrokerLogLayers.makeMemoryLog({ topics: [{ name: "t" }] })
      const env = new Map([
        [BROKER_SETTINGS.port.env, "0"],
        [BROKER_SETTINGS.insecure.env, "true"],
        [BROKER_SETTINGS.tlsCert.env, certs.cert],
        [BROKER_SETTINGS.tlsKey.env, certs.key]
      ])
      const broker = yield* Layer.build(BrokerLayers.layerConfig).pipe(
        Effect.map((context) => Context.get(context, Broker)),
        Effect.provide(log.forBroker(0)),
        Effect.withConfigProvider(ConfigProvider.fromMap(env))
      )
      // Trusting only the test CA: the handshake completes only if the broker presents the certificate given.
      const authorized = yield* Effect.async<boolean, Error>((resume) => {
        const socket = connect({ host: "127.0.0.1", port: broker.port, ca: certs.ca }, () => {
          resume(Effect.succeed(socket.authorized))
          socket.destroy()
        })
        socket.once("error", (error) => resume(Effect.fail(error)))
      }).pipe(Effect.timeout("5 seconds"))
      expect(authorized).toBe(true)
    }))

  it.scopedLive("a key that is not its certificate's: BrokerListenFailed at start naming both files", () =>
    Effect.gen(function*() {
      const certs = yield* certificates
      const log = yield* BrokerLogLayers.makeMemoryLog({ topics: [{ name: "t" }] })
      const wrongKey = certs.key.replace(/broker\.key$/, "ca.key")
      const failed = yield* Effect.flip(
        BrokerLayers.make({ port: 0, insecure: true, tls: { cert: certs.cert, key: wrongKey } }).pipe(
          Effect.provide(log.forBroker(0))
        )
      )
      expect(failed).toMatchObject({ _tag: "BrokerListenFailed" })
      expect(failed.message).toContain(`cannot load its TLS certificate ${certs.cert} and key ${wrongKey}: `)
      expect(failed.message).toMatch(/key values mismatch/)
    }))

  it.scopedLive("a client CA that holds no certificate (its key file given by mistake): BrokerListenFailed at start naming it", () =>
    Effect.gen(function*() {
      const certs = yield* certificates
      const log = yield* BrokerLogLayers.makeMemoryLog({ topics: [{ name: "t" }] })
      const failed = yield* Effect.flip(
        BrokerLayers.make({ port: 0, insecure: true, tls: { cert: certs.cert, key: certs.key, clientCa: certs.key } })
          .pipe(Effect.provide(log.forBroker(0)))
      )
      expect(failed).toMatchObject({ _tag: "BrokerListenFailed" })
      expect(failed.message).toContain(
        `its client CA ${certs.key} holds no certificate (no -----BEGIN CERTIFICATE----- block)`
      )
    }))

  it.scopedLive("a port another process listens on: BrokerListenFailed saying how to find it and which option moves the broker", () =>
    Effect.gen(function*() {
      const log = yield* BrokerLogLayers.makeMemoryLog({ topics: [{ name: "t" }] })
      const first = yield* BrokerLayers.make({ port: 0, insecure: true }).pipe(Effect.provide(log.forBroker(0)))
      const taken = yield* Effect.flip(
        BrokerLayers.make({ port: first.port, insecure: true }).pipe(Effect.provide(log.forBroker(1)))
      )
      expect(taken.message).toBe(
        `broker cannot listen on 127.0.0.1:${first.port}: port ${first.port} is taken by another process (EADDRINUSE): give the broker another port (--port, CXLOG_BROKER_PORT, BrokerOptions.port), or stop what listens there (\`ss -ltnp 'sport = :${first.port}'\` names it)`
      )
    }))

  it.effect("a size variable takes the docs' units", () =>
    Effect.gen(function*() {
      expect((yield* configFrom({ [BROKER_SETTINGS.maxBatchBytes.env]: "2MiB" })).maxBatchBytes).toBe(2 << 20)
      const refused = yield* Effect.either(configFrom({ [BROKER_SETTINGS.maxBatchBytes.env]: "2 parsecs" }))
      expect(Either.isLeft(refused) && String(refused.left)).toContain(BROKER_SETTINGS.maxBatchBytes.env)
    }))

  it.effect("a timeout past Node's timers (2^31 - 1 ms) is refused naming its variable; the largest one a timer takes is read", () =>
    Effect.gen(function*() {
      const { ackIntervalMs, idleTimeoutMs } = BROKER_SETTINGS
      expect((yield* configFrom({ [idleTimeoutMs.env]: `${2 ** 31 - 1}` })).idleTimeoutMs).toBe(2 ** 31 - 1)
      for (const setting of [idleTimeoutMs, ackIntervalMs]) {
        const refused = yield* Effect.either(configFrom({ [setting.env]: "1e10" }))
        expect(Either.isLeft(refused) && String(refused.left)).toContain(`${setting.env}`)
        expect(Either.isLeft(refused) && String(refused.left)).toContain("1e10 is above 2147483647")
      }
    }))

  it.scopedLive("options a broker cannot serve with fail InvalidBrokerOptions naming the option, before it listens", () =>
    Effect.gen(function*() {
      const log = yield* BrokerLogLayers.makeMemoryLog({ topics: [{ name: "t" }] })
      const refused = (options: BrokerOptions) =>
        Effect.flip(BrokerLayers.make({ port: 0, insecure: true, ...options }).pipe(Effect.provide(log.forBroker(0))))
      // Each would otherwise serve wrongly: a timer past 2^31 - 1 ms fires after 1 ms (every
      // connection closed as idle at once), a NaN handshake timeout refuses every client, a NaN
      // connection limit is none, and a span that is no duration throws from Duration.decode.
      const cases: ReadonlyArray<readonly [BrokerOptions, string]> = [
        [
          { idleTimeout: Duration.infinity },
          "idleTimeoutMs must be a number of milliseconds from 0 to 2147483647 (0: never), not Infinity"
        ],
        [
          { idleTimeoutMs: 1e10 },
          "idleTimeoutMs must be a number of milliseconds from 0 to 2147483647 (0: never), not 10000000000"
        ],
        [{ ackIntervalMs: -1 }, "ackIntervalMs must be a number of milliseconds from 0 to 2147483647"],
        [
          { handshakeTimeoutMs: Number.NaN },
          "handshakeTimeoutMs must be a number of milliseconds from 1 to 2147483647, not NaN"
        ],
        [{ idleTimeout: "5 sekonds" as Duration.DurationInput }, "idleTimeout must be a duration"],
        [{ maxConnections: Number.NaN }, "maxConnections must be a whole number from 1 up, not NaN"],
        [{ maxSessions: 0 }, "maxSessions must be a whole number from 1 up, not 0"],
        [{ port: 70_000 }, "port must be a whole number from 0 to 65535, not 70000"]
      ]
      for (const [options, reason] of cases) {
        const failed = yield* refused(options)
        expect(failed._tag).toBe("InvalidBrokerOptions")
        expect(failed.message).toContain(reason)
      }
    }))
})
