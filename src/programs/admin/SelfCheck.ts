/**
 * The region self-check: create a region, have a second process attach it, exchange a value
 * and a doorbell wake in each direction, print what happened, unlink it. The peer also reads a
 * page area the parent wrote, first thing after mapping it: it must read what the parent wrote
 * in every page, and what that first read cost is this host's price of a process's first touch
 * of a page of the log (PageTouch.ts). Last, the parent times a system call (SystemCallCost.ts).
 *
 * Each side parks on a doorbell word that nobody changes, so its wait can only end early by
 * the other process's futex wake: the ringer rings until a wake reaches a parked waiter.
 * The peer reports what it saw over the IPC channel, and the check passes only if both
 * sides were woken and read the other's value.
 */
import { Console, Data, Deferred, Duration, Effect } from "effect"
import { fork } from "node:child_process"
import { join, resolve } from "node:path"
import * as CxlMemoryLayers from "../../layers/region/CxlMemory.js"
import {
  describePageTouch,
  type PageTouchCost,
  pageTouchCost,
  touchUnits,
  writeTouchPattern
} from "../../layers/region/PageTouch.js"
import { describePages, regionPages } from "../../layers/region/RegionPages.js"
import { describeSystemCalls, systemCallCost } from "../../layers/region/SystemCallCost.js"
import { loadAddon } from "../../native/Native.js"
import type { CxlMemoryShape } from "../../services/region/CxlMemory.js"

/** Region offsets the two sides use, one cache line each. */
export const SELF_CHECK_WORDS = {
  peerValue: 8192,
  toParent: 8256,
  toPeer: 8320,
  parentValue: 8384,
  /** Nobody waits on it: the parent times its wakes (SystemCallCost.ts). */
  untouched: 8448
} as const
const {
  parentValue: PARENT_VALUE,
  peerValue: PEER_VALUE,
  toParent: TO_PARENT,
  toPeer: TO_PEER,
  untouched: UNTOUCHED
} = SELF_CHECK_WORDS
/** The page area the peer reads first, past the words above: whole 2 MiB pages where the region gets them. */
export const SELF_CHECK_PAGES = { offset: 2 << 20, length: 8 << 20 } as const
const WAIT_MS = 10_000
const RING_EVERY_MS = 2

export class SelfCheckFailed extends Data.TaggedError("SelfCheckFailed")<{ readonly reason: string }> {
  override get message() {
    return `self-check failed: ${this.reason}`
  }
}

/** What the peer sends its parent once its own wait ended. */
export interface PeerReport {
  readonly event: "peer"
  readonly outcome: string
  readonly saw: number
  /** The peer's first and second read of `SELF_CHECK_PAGES`, before anything else it read there. */
  readonly touch: PageTouchCost
}

/** Rings `offset` until a wake reaches a parked waiter, `WAIT_MS` pass or `gone()`; returns how many it woke. */
export const ringUntilWoken = (region: CxlMemoryShape, offset: number, gone: () => boolean = () => false) =>
  Effect.gen(function*() {
    const deadline = Date.now() + WAIT_MS
    for (;;) {
      const woke = region.wake(offset)
      if (woke > 0 || Date.now() >= deadline || gone()) return woke
      yield* Effect.sleep(Duration.millis(RING_EVERY_MS))
    }
  })

/**
 * `peerEntry` is the program forked as `peerEntry selfcheck --peer NAME` (the CLI itself, or a
 * test's stand-in); `dir` is where to make the check's region, for regions named by a path (a
 * tmpfs or hugetlbfs of their own), /dev/shm without it.
 */
export const selfCheck = (peerEntry: string, peerExecArgv: ReadonlyArray<string> = [], dir?: string) =>
  Effect.scoped(Effect.gen(function*() {
    const addon = yield* loadAddon()
    const features = addon.features()
    const name = dir === undefined
      ? `cxlog-selfcheck-${process.pid}`
      : join(resolve(dir), `cxlog-selfcheck-${process.pid}`)
    const region = yield* CxlMemoryLayers.make({
      name,
      size: SELF_CHECK_PAGES.offset + SELF_CHECK_PAGES.length,
      mode: "create"
    })
    writeTouchPattern(region.bytes, SELF_CHECK_PAGES.offset, SELF_CHECK_PAGES.length)
    // What the peer must read there: the same pass over the same pages, in this process.
    const written = touchUnits(region.bytes, SELF_CHECK_PAGES.offset, SELF_CHECK_PAGES.length).sum
    const pages = regionPages(name)
    yield* Console.log(
      `created region ${
        dir === undefined ? `/dev/shm/${name}` : name
      } (${region.size} bytes; flush: ${features.flush}, crc32c: ${features.crc32c}; ${describePages(pages)})`
    )
    const reported = yield* Deferred.make<PeerReport>()
    const exited = yield* Deferred.make<string>()
    const peer = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const child = fork(peerEntry, ["selfcheck", "--peer", name], {
          stdio: ["ignore", "inherit", "inherit", "ipc"],
          execArgv: [...peerExecArgv]
        })
        child.on("message", (message) => {
          if ((message as PeerReport).event === "peer") {
            Deferred.unsafeDone(reported, Effect.succeed(message as PeerReport))
          }
        })
        // "close" comes after the IPC channel closed too, so a report the peer sent is in by then.
        child.once("close", (code, signal) => Deferred.unsafeDone(exited, Effect.succeed(signal ?? `code ${code}`)))
        return child
      }),
      (child) => Effect.sync(() => void child.kill("SIGKILL"))
    )
    const started = process.hrtime.bigint()
    const outcome = yield* region.wait(TO_PARENT, 0, WAIT_MS)
    const value = Atomics.load(region.i32, PEER_VALUE / 4)
    const micros = Number(process.hrtime.bigint() - started) / 1000
    yield* Console.log(
      `parent: doorbell ${outcome} after ${micros.toFixed(0)} µs; read ${value} written by pid ${peer.pid}`
    )
    if (outcome !== "woken") {
      return yield* new SelfCheckFailed({
        reason: `the parent's doorbell wait ended ${outcome}, not woken by the peer`
      })
    }
    if (value !== peer.pid) {
      return yield* new SelfCheckFailed({ reason: `the parent read ${value}, not the peer's pid ${peer.pid}` })
    }

    Atomics.store(region.i32, PARENT_VALUE / 4, process.pid)
    const woke = yield* ringUntilWoken(region, TO_PEER, () => peer.exitCode !== null || peer.signalCode !== null)
    const timeout = {
      duration: Duration.millis(WAIT_MS),
      onTimeout: () => new SelfCheckFailed({ reason: "the peer did not finish" })
    }
    const exit = yield* Deferred.await(exited).pipe(Effect.timeoutFail(timeout))
    const peerSaw = yield* Deferred.poll(reported)
    const said = peerSaw._tag === "None" ? undefined : yield* peerSaw.value
    if (said === undefined) {
      return yield* new SelfCheckFailed({ reason: `the peer exited (${exit}) without reporting its doorbell wait` })
    }
    if (said.outcome !== "woken") {
      return yield* new SelfCheckFailed({
        reason: `the peer's doorbell wait ended ${said.outcome}, not woken by the parent`
      })
    }
    if (said.saw !== process.pid) {
      return yield* new SelfCheckFailed({ reason: `the peer read ${said.saw}, not the parent's pid ${process.pid}` })
    }
    if (said.touch.sum !== written) {
      return yield* new SelfCheckFailed({
        reason: `the peer read other bytes than the parent wrote in the region's ${said.touch.units} pages`
      })
    }
    yield* Console.log(`peer's pages: ${describePageTouch(said.touch, pages.huge)}`)
    if (exit !== "code 0") return yield* new SelfCheckFailed({ reason: `the peer exited with ${exit}` })
    if (woke === 0) {
      return yield* new SelfCheckFailed({ reason: "no ring of the peer's doorbell reached a parked peer" })
    }
    // Timed once the peer is gone: nothing else of the check runs beside it.
    const calls = systemCallCost(() => region.wake(UNTOUCHED))
    if (calls.woken > 0) {
      return yield* new SelfCheckFailed({
        reason: `the timed wakes woke ${calls.woken} waiter(s) of a word nobody waits on`
      })
    }
    yield* Console.log(`system calls: ${describeSystemCalls(calls)}`)
    yield* Console.log(`self-check passed; unlinking ${name}`)
  }))

export const selfCheckPeer = (name: string) =>
  Effect.scoped(Effect.gen(function*() {
    const region = yield* CxlMemoryLayers.make({ name, mode: "attach" })
    // First, before anything of this process touched those pages.
    const touch = pageTouchCost(region.bytes, SELF_CHECK_PAGES, { offset: 0, length: SELF_CHECK_PAGES.offset })
    Atomics.store(region.i32, PEER_VALUE / 4, process.pid)
    const woke = yield* ringUntilWoken(region, TO_PARENT)
    yield* Console.log(`peer:   attached ${name}, wrote ${process.pid}, rang the parent's doorbell (woke ${woke})`)
    const outcome = yield* region.wait(TO_PEER, 0, WAIT_MS)
    const saw = Atomics.load(region.i32, PARENT_VALUE / 4)
    yield* Console.log(`peer:   doorbell ${outcome}; read ${saw}`)
    // Delivered before a failure below exits the process.
    yield* Effect.async<void>((resume) => {
      const sent: PeerReport = { event: "peer", outcome, saw, touch }
      if (process.send === undefined || !process.connected) return resume(Effect.void)
      process.send(sent, undefined, undefined, () => resume(Effect.void))
    })
    if (outcome !== "woken") return yield* new SelfCheckFailed({ reason: `the peer's doorbell wait ended ${outcome}` })
  }))
