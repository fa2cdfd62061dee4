/**
 * The bounds of number settings, as the layers' `Config` reads their variables: a number past
 * what it is read exactly as (2^53), a span of milliseconds past the longest Node timer (which
 * would fire after 1 ms), and a group's, a channel's, a service's or a publisher's value past
 * what the region or the wire holds are refused naming the variable and its bound, not read
 * rounded, armed as a 1 ms timer or refused later in the option's own words.
 */
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Either } from "effect"
import { GROUP_SETTINGS } from "../../src/services/groups/GroupSettings.js"
import { CHANNEL_SETTINGS } from "../../src/services/ipc/ChannelSettings.js"
import { SERVICE_SETTINGS } from "../../src/services/ipc/ServiceSettings.js"
import { SEQUENCER_SETTINGS } from "../../src/services/log/LogSettings.js"
import { BROKER_SETTINGS, PUBLISHER_SETTINGS } from "../../src/services/net/NetSettings.js"
import { type Setting, settingConfig } from "../../src/Settings.js"

/** What the setting's `Config` makes of `text` as its variable: the value, or the error's text. */
const read = <A>(setting: Setting<A>, text: string) =>
  Effect.either(
    Effect.withConfigProvider(settingConfig(setting), ConfigProvider.fromMap(new Map([[setting.env, text]])))
  ).pipe(Effect.map(Either.mapLeft(String)))

const refusal = <A>(setting: Setting<A>, text: string) =>
  read(setting, text).pipe(Effect.map((result) => (Either.isLeft(result) ? result.left : `read as ${result.right}`)))

describe("number settings' bounds", () => {
  it.effect("a whole number past 2^53 is refused naming the variable, not read rounded", () =>
    Effect.gen(function*() {
      const { maxConnections } = BROKER_SETTINGS.settings
      const refused = yield* refusal(maxConnections, "99999999999999999999")
      expect(refused).toContain(maxConnections.env)
      expect(refused).toContain("99999999999999999999 is above 9007199254740991")
      expect(yield* read(maxConnections, "9007199254740991")).toEqual(Either.right(9_007_199_254_740_991))
    }))

  it.effect("milliseconds past the longest Node timer are refused naming the variable; spans only compared with the clock are not", () =>
    Effect.gen(function*() {
      const { checkEveryMs } = GROUP_SETTINGS.settings
      const refused = yield* refusal(checkEveryMs, "99999999999")
      expect(refused).toContain(checkEveryMs.env)
      expect(refused).toContain("99999999999 is above 2147483647")
      expect(yield* read(checkEveryMs, "2147483647")).toEqual(Either.right(2_147_483_647))
      const { sessionIdleMs } = SEQUENCER_SETTINGS.settings
      expect(yield* read(sessionIdleMs, "99999999999")).toEqual(Either.right(99_999_999_999))
    }))

  it.effect("a group's defaults past what its region layout holds are refused naming the variable", () =>
    Effect.gen(function*() {
      const { ackWaitMs, maxDeliver, maxInFlight, memberSlots, pendingSlots } = GROUP_SETTINGS.settings
      const cases = [
        [memberSlots, "1025", "1025 is above 1024"],
        [pendingSlots, "1048577", "1048577 is above 1048576"],
        [maxInFlight, "1048577", "1048577 is above 1048576"],
        [maxDeliver, "4294967296", "4294967296 is above 4294967295"],
        [ackWaitMs, "4294967296", "4294967296 is above 4294967295"]
      ] as const
      for (const [setting, text, why] of cases) {
        const refused = yield* refusal(setting, text)
        expect(refused).toContain(setting.env)
        expect(refused).toContain(why)
      }
      expect(yield* read(memberSlots, "1024")).toEqual(Either.right(1024))
    }))

  it.effect("a publisher's client id past 32 bits is refused naming CXLOG_CLIENT_ID", () =>
    Effect.gen(function*() {
      const { clientId } = PUBLISHER_SETTINGS.settings
      const refused = yield* refusal(clientId, "4294967296")
      expect(refused).toContain(clientId.env)
      expect(refused).toContain("4294967296 is above 4294967295")
    }))

  it.effect("a channel's or a service's defaults past what its layout holds are refused naming the variable", () =>
    Effect.gen(function*() {
      const channel = CHANNEL_SETTINGS.settings
      const service = SERVICE_SETTINGS.settings
      const cases = [
        [channel.writerSlots, "257", "257 is above 256"],
        [channel.readerSlots, "65", "65 is above 64"],
        [channel.ringBytes, "2GiB", "2GiB is not from 4KiB to 1GiB"],
        [channel.ringBytes, "1KiB", "1KiB is not from 4KiB to 1GiB"],
        [channel.ringBytes, "4100", "4100 is not a multiple of 64 bytes"],
        [service.callerSlots, "256", "256 is above 255"],
        [service.ringBytes, "2GiB", "2GiB is not from 4KiB to 1GiB"]
      ] as const
      for (const [setting, text, why] of cases) {
        const refused = yield* refusal(setting, text)
        expect(refused).toContain(setting.env)
        expect(refused).toContain(why)
      }
      expect(yield* read(channel.ringBytes, "1GiB")).toEqual(Either.right(2 ** 30))
      expect(yield* read(service.callerSlots, "255")).toEqual(Either.right(255))
    }))
})
