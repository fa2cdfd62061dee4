/**
 * `cxlog app start`: the processes of an app file run under a Supervisor in the foreground, each
 * of its events printed as one line. SIGINT or SIGTERM interrupts the program (NodeRuntime.runMain):
 * the supervisor's collective shutdown stops every child, its last events are printed, and the
 * command exits 0. An app file with `drain` makes this process a member of the region, and the
 * shutdown a draining one over the file's group.
 */
import { Effect, Fiber, Layer, Stream } from "effect"
import * as SupervisorLayers from "../../layers/ipc/Supervisor.js"
import * as Roles from "../../layers/Roles.js"
import { type ChildSpec, Supervisor, type SupervisorEvent } from "../../services/ipc/Supervisor.js"
import { REGION_SETTINGS } from "../../services/region/RegionSettings.js"
import { settingConfig } from "../../Settings.js"
import { type AppFile, childSpecsOf, loadAppFile } from "./AppFile.js"

/** An event as one line: its tag, then its fields as `key=value` (an exit as its code and signal). */
export const eventLine = (event: SupervisorEvent): string => {
  const fields = Object.entries(event).filter(([k]) => k !== "_tag").flatMap(([k, v]) =>
    k === "exit" && typeof v === "object" && v !== null
      ? Object.entries(v as object).map(([ek, ev]) => `${ek}=${String(ev)}`)
      : [`${k}=${String(v)}`]
  )
  return [event._tag, ...fields].join(" ")
}

/** This process as a member of the region (the file's, else CXLOG_REGION's): a coordinator client. */
const regionMember = (region: string | undefined) =>
  Layer.unwrapEffect(
    Effect.map(
      region === undefined ? settingConfig(REGION_SETTINGS.settings.name) : Effect.succeed(region),
      (name) =>
        Roles.coordinatorClient().pipe(
          Layer.provideMerge(Roles.controlTransport),
          Layer.provideMerge(Roles.processSlot("client")),
          Layer.provideMerge(Roles.attachRegion({ name }))
        )
    )
  )

/** The app's supervisor: a draining one, over the region, when the file asks for it. */
const supervisorOf = (app: AppFile) =>
  app.drain === undefined
    ? SupervisorLayers.layer
    : SupervisorLayers.layerDraining(app.drain.group).pipe(Layer.provide(regionMember(app.region)))

export const runApp = (path: string, json: boolean) =>
  Effect.flatMap(
    loadAppFile(path),
    (app) => supervise(childSpecsOf(path, app), json).pipe(Effect.scoped, Effect.provide(supervisorOf(app)))
  )

const supervise = (specs: ReadonlyArray<ChildSpec>, json: boolean) =>
  Effect.gen(function*() {
    const supervisor = yield* Supervisor
    const print = (event: SupervisorEvent) =>
      Effect.sync(() => process.stdout.write(`${json ? JSON.stringify(event) : eventLine(event)}\n`))
    // A daemon: it outlives this fiber's interruption to print the shutdown's events (the stream ends after ShutdownDone).
    const printer = yield* Effect.forkDaemon(Stream.runForEach(supervisor.events, print))
    yield* Effect.yieldNow() // the printer subscribes before the first child starts
    yield* Effect.forEach(specs, supervisor.start, { discard: true }).pipe(
      Effect.zipRight(Effect.never),
      Effect.onInterrupt(() => supervisor.shutdown.pipe(Effect.zipRight(Fiber.join(printer)))),
      // A spec the supervisor refuses stops what started before it.
      Effect.tapError(() => supervisor.shutdown.pipe(Effect.zipRight(Fiber.join(printer))))
    )
  })
