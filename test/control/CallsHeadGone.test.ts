/**
 * An application's process that joined its head, whose head then dies: a standby that takes the
 * lease over answers a call made while the head was gone. The heads are `cxlog head` processes;
 * the application is this process.
 */
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Context, Effect, Fiber, Layer, Schema } from "effect"
import * as ChannelsLayers from "../../src/layers/ipc/Channels.js"
import * as DirectoryLayers from "../../src/layers/region/Directory.js"
import { RegionLayout } from "../../src/layers/RegionLayout.js"
import * as Roles from "../../src/layers/Roles.js"
import { Coordinator } from "../../src/services/control/Coordinator.js"
import { Rings } from "../../src/services/control/Rings.js"
import { Channels } from "../../src/services/ipc/Channels.js"
import { ipcRegionEnv } from "../fixtures/ipc-member.js"
import { forkCli } from "../helpers/CliRoles.js"
import { uniqueRegion } from "../helpers/Processes.js"

/** An application's process of region `region`: its channels, and its coordinator client. */
const member = (region: string) =>
  ChannelsLayers.layer.pipe(
    Layer.provideMerge(
      Layer.unwrapEffect(Effect.map(RegionLayout, (layout) => DirectoryLayers.layer(layout.directory)))
    ),
    Layer.provideMerge(Roles.coordinatorClient()),
    Layer.provideMerge(Roles.controlTransport),
    Layer.provideMerge(Roles.processSlot("client")),
    Layer.provideMerge(Roles.attachRegion({ name: region }))
  )

/** `CXLOG_HEAD_LOST_MS` as this process's members read it as they are built (the rest of the environment as it is). */
const headLostMs = (ms: number) =>
  Effect.withConfigProvider(
    ConfigProvider.fromMap(new Map([["CXLOG_HEAD_LOST_MS", `${ms}`]])).pipe(
      ConfigProvider.orElse(() => ConfigProvider.fromEnv())
    )
  )

describe("calls to the head's coordinator once the head is gone (cxlog head processes)", () => {
  it.scopedLive(
    "a standby that takes the lease over answers a call made while the head was gone: the channel asked for is created",
    () =>
      Effect.gen(function*() {
        const region = yield* uniqueRegion("calls-takeover")
        const env = ipcRegionEnv(region)
        const head = yield* forkCli(["head"], env)
        yield* head.event("ready")
        const standby = yield* forkCli(["head", "--standby", "--standby-check-ms", "200"], env)
        yield* standby.event("standby")
        // A bound well past a takeover's (well under a second, docs/operations.md) on a loaded machine.
        const app = yield* Layer.build(member(region)).pipe(headLostMs(15_000))
        const channels = Context.get(app, Channels)
        const requests = yield* Effect.flatMap(
          Rings,
          (rings) => rings.inspect(Context.get(app, RegionLayout).requestRing(Context.get(app, Coordinator).self.slot))
        ).pipe(Effect.provide(app))

        // The standby takes over only once the request is in the gone head's ring: none of its own reads it.
        standby.child.kill("SIGSTOP")
        head.child.kill("SIGKILL")
        yield* head.exited
        const sent = requests.writer().sequence
        const opening = yield* Effect.fork(Effect.scoped(channels.open("prices", Schema.Number)))
        while (requests.writer().sequence === sent) yield* Effect.sleep("10 millis")
        standby.child.kill("SIGCONT")

        const opened = yield* Fiber.join(opening)
        expect(opened.entry).toMatchObject({ kind: "channel", name: "prices" })
        expect(yield* standby.event("ready")).toMatchObject({ epoch: 2 })
      }),
    60_000
  )
})
