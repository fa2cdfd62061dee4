/**
 * Names of channels and services, over the live layers (a region mapped by the addon, this
 * process as the directory's writer) and the in-memory fakes: a name that is not well-formed
 * Unicode (half of a surrogate pair alone) has no UTF-8 of its own, so it is refused as an invalid
 * name instead of being stored as U+FFFD, where it and the name with U+FFFD would be one object.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Schema, type Scope } from "effect"
import * as ServicesMemory from "../../src/layers/ipc/ServicesMemory.js"
import { Channels } from "../../src/services/ipc/Channels.js"
import { Services } from "../../src/services/ipc/Services.js"
import { type ChannelsRun, liveChannelsRun, liveServices, memoryChannelsRun } from "../fixtures/channel-region.js"
import { bankHandlers } from "../fixtures/service-methods.js"
import { uniqueRegion } from "../helpers/Processes.js"

const Price = Schema.Struct({ symbol: Schema.String, price: Schema.Number })

const LONE = "x\ud800y"
/** What LONE's UTF-8 would have been: a name of its own, well formed. */
const REPLACED = "x\ufffdy"

type ServicesRun = <A, E>(
  program: Effect.Effect<A, E, Services | Scope.Scope>
) => Effect.Effect<A, unknown, Scope.Scope>

const liveServicesRun: ServicesRun = (program) =>
  Effect.flatMap(
    uniqueRegion("object-names"),
    (region) => Effect.provide(Effect.scoped(program), liveServices({ region, bell: 0, writesDirectory: true }))
  )
const memoryServicesRun: ServicesRun = (program) => Effect.provide(Effect.scoped(program), ServicesMemory.layerMemory())

const names = (label: string, channelsRun: ChannelsRun, servicesRun: ServicesRun) =>
  describe(`object names: ${label}`, () => {
    it.scopedLive("a channel named with a lone surrogate is refused as an invalid name; the name with U+FFFD is another", () =>
      channelsRun(Effect.gen(function*() {
        const channels = yield* Channels
        const refused = yield* Effect.flip(channels.open(LONE, Price))
        expect(refused).toMatchObject({ _tag: "ChannelUnavailable", name: LONE })
        expect(refused.message).toContain("invalid name")
        expect(refused.message).toContain("surrogate")
        expect((yield* Effect.flip(channels.openRaw(LONE)))._tag).toBe("ChannelUnavailable")
        expect(yield* channels.list).toEqual([])
        yield* channels.open(REPLACED, Price)
        expect((yield* Effect.flip(channels.open(LONE, Price)))._tag).toBe("ChannelUnavailable")
        expect(yield* Effect.flip(channels.remove(LONE))).toMatchObject({ _tag: "ChannelNotFound" })
        expect(yield* channels.list).toEqual([REPLACED])
      })))

    it.scopedLive("a service named with a lone surrogate is refused as an invalid name; the name with U+FFFD is another", () =>
      servicesRun(Effect.gen(function*() {
        const services = yield* Services
        const refused = yield* Effect.flip(services.serve(LONE, bankHandlers({ value: 1 })))
        expect(refused).toMatchObject({ _tag: "ServiceUnavailable", name: LONE })
        expect(refused.message).toContain("surrogate")
        expect(yield* services.list).toEqual([])
        yield* services.serve(REPLACED, bankHandlers({ value: 1 }))
        expect((yield* Effect.flip(services.serve(LONE, bankHandlers({ value: 1 }))))._tag).toBe("ServiceUnavailable")
        expect(yield* Effect.flip(services.connect(LONE))).toMatchObject({ _tag: "ServiceNotFound" })
        expect((yield* services.list).map((s) => s.name)).toEqual([REPLACED])
      })))

    it.scopedLive("a name that is no string (a JavaScript caller's 42, null) is a typed error, and nothing is made", () =>
      Effect.gen(function*() {
        // What a caller without TypeScript's types can pass.
        const notText = [42, null] as unknown as ReadonlyArray<string>
        yield* channelsRun(Effect.gen(function*() {
          const channels = yield* Channels
          for (const name of notText) {
            const refused = yield* Effect.flip(channels.open(name, Price))
            expect(refused).toMatchObject({ _tag: "ChannelUnavailable", name: String(name) })
            expect(refused.message).toContain("a name is a string")
            expect((yield* Effect.flip(channels.openRaw(name)))._tag).toBe("ChannelUnavailable")
            expect(yield* Effect.flip(channels.remove(name))).toMatchObject({ _tag: "ChannelNotFound" })
          }
          expect(yield* channels.list).toEqual([])
        }))
        yield* servicesRun(Effect.gen(function*() {
          const services = yield* Services
          for (const name of notText) {
            const refused = yield* Effect.flip(services.serve(name, bankHandlers({ value: 1 })))
            expect(refused).toMatchObject({ _tag: "ServiceUnavailable", name: String(name) })
            expect(yield* Effect.flip(services.connect(name))).toMatchObject({ _tag: "ServiceNotFound" })
            expect(yield* Effect.flip(services.remove(name))).toMatchObject({ _tag: "ServiceNotFound" })
          }
          expect(yield* services.list).toEqual([])
        }))
      }))
  })

names("live region", liveChannelsRun, liveServicesRun)
names("in-memory fake", memoryChannelsRun, memoryServicesRun)
