/**
 * A participant line (a broker slot's owner line, a listener line) whose process was SIGKILLed
 * in the middle of claiming or releasing it is taken by the next claimer: the claim carries the
 * claimer's pid in the same compare-and-swap, and a release frees the pair in one, so the line
 * never names a claim without a pid (a claim no one could ever tell dead, held for ever).
 * The child kills itself right after its first atomic write to the line (participant-crash).
 * A named consumer's line (pid 0: held by no process) whose deleter was killed midway is a dead
 * owner's too (consumer-erase-crash).
 */
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect } from "effect"
import { defaultLogConfig } from "../../src/layers/log/Layout.js"
import { directoryFor, logRegionLayout } from "../../src/layers/log/LogRegion.js"
import { claimLine, lineTaken, listening, newOccurrence } from "../../src/layers/log/Participants.js"
import { ParticipantLineView } from "../../src/layers/log/RecordViews.js"
import * as CxlMemoryLayers from "../../src/layers/region/CxlMemory.js"
import * as DoorbellLayers from "../../src/layers/region/Doorbell.js"
import { CxlMemory } from "../../src/services/region/CxlMemory.js"
import { consumersOf, regionCluster, smallConfig } from "../fixtures/log-harness.js"
import { spawnFixture, uniqueRegion } from "../helpers/Processes.js"

const OUR_BELL = 8192
const CHILD_BELL = 8256
const AREA_BASE = 65536
const area = logRegionLayout(AREA_BASE, defaultLogConfig, directoryFor(defaultLogConfig, 1)).area

/** A region whose line `which` a child left as it was when the child was killed in `phase`. */
const killedIn = (phase: "claim" | "release", which: "listener" | "owner") =>
  Effect.gen(function*() {
    const name = yield* uniqueRegion(`pcrash-${phase}-${which}`)
    const region = yield* CxlMemoryLayers.make({ name, size: 1 << 20, mode: "create" })
    const child = yield* spawnFixture("participant-crash", [name, String(AREA_BASE), phase, which, String(CHILD_BELL)])
    const exit = yield* Deferred.await(child.exited).pipe(
      Effect.timeoutFail({
        duration: "30 seconds",
        onTimeout: () => new Error(`participant-crash did not exit: ${child.stderr()}`)
      })
    )
    expect(exit.signal, child.stderr()).toBe("SIGKILL")
    return { region, line: which === "listener" ? area.listener(0) : area.brokerOwner(0) }
  })

describe("a participant line whose process was killed mid-claim or mid-release", () => {
  it.scoped("a broker slot's owner line, its claimer killed right after its claim: the next broker takes it", () =>
    Effect.gen(function*() {
      const { region, line } = yield* killedIn("claim", "owner")
      expect(lineTaken(region, line)).toBe(true)
      expect(claimLine(region, line, newOccurrence(), OUR_BELL)).toBe(0)
      expect(new ParticipantLineView(region).pid(line)).toBe(process.pid)
    }))

  it.scoped("a broker slot's owner line, its owner killed while releasing it: the next broker takes it", () =>
    Effect.gen(function*() {
      const { region, line } = yield* killedIn("release", "owner")
      expect(claimLine(region, line, newOccurrence(), OUR_BELL)).toBe(0)
      expect(new ParticipantLineView(region).pid(line)).toBe(process.pid)
    }))

  for (const phase of ["claim", "release"] as const) {
    it.scoped(`listener line 0, its process killed in its ${phase}: the next listener takes line 0, not the next one`, () =>
      Effect.gen(function*() {
        const { region, line } = yield* killedIn(phase, "listener")
        const doorbell = yield* DoorbellLayers.make({ offset: OUR_BELL, spinMicros: 0 }).pipe(
          Effect.provideService(CxlMemory, region)
        )
        yield* listening(region, area, doorbell)
        expect(new ParticipantLineView(region).pid(line)).toBe(process.pid)
      }))
  }

  it.scoped("a named consumer's line, its deleter killed after it stopped being the consumer's: durable subscribers take every line", () =>
    Effect.gen(function*() {
      const cluster = yield* regionCluster(CxlMemoryLayers.make)()
      yield* cluster.topics.create({ name: "t", order: 5, ackLevel: 1, replicationFactor: 1 })
      const child = yield* spawnFixture("consumer-erase-crash", [cluster.region!.name, "t"])
      const exit = yield* Deferred.await(child.exited).pipe(
        Effect.timeoutFail({
          duration: "30 seconds",
          onTimeout: () => new Error(`consumer-erase-crash did not exit: ${child.stderr()}`)
        })
      )
      expect(exit.signal, child.stderr()).toBe("SIGKILL")
      expect(yield* (yield* consumersOf(cluster)).list("t")).toEqual([])
      const taken = yield* Effect.all(
        Array.from(
          { length: smallConfig.subscriberSlots },
          () => Effect.either(cluster.reader.subscribe("t", { durable: true }))
        )
      )
      expect(taken.map((t) => (t._tag === "Left" ? t.left._tag : "subscribed"))).toEqual(
        Array(smallConfig.subscriberSlots).fill("subscribed")
      )
    }))
})
