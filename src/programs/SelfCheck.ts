/**
 * The region self-check: create a region, have a second process attach it, exchange a value
 * and a doorbell wake in each direction, print what happened, unlink it.
 */
import { Console, Duration, Effect } from "effect"
import { fork } from "node:child_process"
import * as CxlMemoryLayers from "../layers/CxlMemory.js"
import { loadAddon } from "../native/Native.js"

const VALUE = 8192
const TO_PARENT = 8256
const TO_PEER = 8320

export const selfCheck = (cliPath: string) =>
  Effect.scoped(Effect.gen(function*() {
    const addon = yield* loadAddon()
    const features = addon.features()
    const name = `cxlog-selfcheck-${process.pid}`
    const region = yield* CxlMemoryLayers.make({ name, size: 1 << 20, mode: "create" })
    yield* Console.log(`created region /dev/shm/${name} (${region.size} bytes; flush: ${features.flush}, crc32c: ${features.crc32c})`)
    const peer = yield* Effect.acquireRelease(
      Effect.sync(() => fork(cliPath, ["selfcheck", "--peer", name], { stdio: ["ignore", "inherit", "inherit", "ipc"] })),
      (child) => Effect.sync(() => void child.kill("SIGKILL"))
    )
    const started = process.hrtime.bigint()
    const outcome = yield* region.wait(TO_PARENT, 0, 10_000)
    const value = Atomics.load(region.i32, VALUE / 4)
    const micros = Number(process.hrtime.bigint() - started) / 1000
    yield* Console.log(`parent: doorbell ${outcome} after ${micros.toFixed(0)} µs; read ${value} written by pid ${peer.pid}`)
    if (outcome !== "woken" || value !== peer.pid) return yield* Effect.fail(new Error("self-check failed: no wake or wrong value"))
    Atomics.store(region.i32, TO_PEER / 4, 1)
    const exit = yield* Effect.async<number | null>((resume) => {
      peer.once("exit", (code) => resume(Effect.succeed(code)))
      const ring = setInterval(() => region.wake(TO_PEER), 2)
      peer.once("exit", () => clearInterval(ring))
    }).pipe(Effect.timeoutFail({ duration: Duration.seconds(10), onTimeout: () => new Error("self-check: peer did not finish") }))
    if (exit !== 0) return yield* Effect.fail(new Error(`self-check: peer exited with ${exit}`))
    yield* Console.log(`self-check passed; unlinking ${name}`)
  }))

export const selfCheckPeer = (name: string) =>
  Effect.scoped(Effect.gen(function*() {
    const region = yield* CxlMemoryLayers.make({ name, mode: "attach" })
    yield* Effect.sleep("50 millis")
    Atomics.store(region.i32, VALUE / 4, process.pid)
    Atomics.store(region.i32, TO_PARENT / 4, 1)
    const woke = region.wake(TO_PARENT)
    yield* Console.log(`peer:   attached ${name}, wrote ${process.pid}, rang the parent's doorbell (woke ${woke})`)
    const outcome = yield* region.wait(TO_PEER, 0, 10_000)
    yield* Console.log(`peer:   doorbell ${outcome}; saw ${Atomics.load(region.i32, TO_PEER / 4)}`)
  }))
