/**
 * A broker's settings from the environment: `BrokerLayers.config` and `cxlog broker`'s flags read
 * the variables and defaults of one table (`BROKER_SETTINGS`); the size default the CLI shows is
 * the default in bytes.
 */
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Either } from "effect"
import * as BrokerLayers from "../../src/layers/net/Broker.js"
import { BROKER_SETTINGS as BROKER_TABLE } from "../../src/services/net/NetSettings.js"
import { parseSize } from "../../src/Settings.js"

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
        [BROKER_SETTINGS.insecure.env]: "true"
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
        insecure: true
      })
    }))

  it.effect("a size variable takes the docs' units", () =>
    Effect.gen(function*() {
      expect((yield* configFrom({ [BROKER_SETTINGS.maxBatchBytes.env]: "2MiB" })).maxBatchBytes).toBe(2 << 20)
      const refused = yield* Effect.either(configFrom({ [BROKER_SETTINGS.maxBatchBytes.env]: "2 parsecs" }))
      expect(Either.isLeft(refused) && String(refused.left)).toContain(BROKER_SETTINGS.maxBatchBytes.env)
    }))
})
