/**
 * pids are reused (pid_max is 32768 on the machines this runs on): a participant line whose
 * owner died may name a pid that a later, unrelated process now has. The line's occurrence
 * carries 16 bits of its claimer's start time, so such a line is still its dead owner's: the
 * next claimer takes it, and a durable cursor left in it holds no retention.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, type Scope } from "effect"
import { defaultTopicShape, placeFor } from "../../src/layers/log/Layout.js"
import {
  claimLine,
  livenessCache,
  livePid,
  lowestDurableCursor,
  moveSubscriber,
  newOccurrence
} from "../../src/layers/log/Participants.js"
import { ParticipantLineView } from "../../src/layers/log/RecordViews.js"
import type { TopicShape } from "../../src/layers/log/TopicShape.js"
import * as CxlMemoryLayers from "../../src/layers/region/CxlMemory.js"
import * as CxlMemoryMemoryLayers from "../../src/layers/region/CxlMemoryMemory.js"
import { ownStartTag, shortStartTag } from "../../src/layers/region/ProcessInfo.js"
import type { CxlMemoryShape, RegionOptions } from "../../src/services/region/CxlMemory.js"
import { regionSize, smallConfig, testRegion } from "../fixtures/log-harness.js"
import { uniqueRegion } from "../helpers/Processes.js"
import { laterShortTag, shortTagOf } from "../helpers/StartTags.js"

/** The doorbell a claim names (never rung here): a line below the log area. */
const OUR_BELL = 4096
const area = testRegion(smallConfig).area
// The test writes topic 0's subscriber lines raw: they lie where a topic's would, at the heap's start.
const shape = defaultTopicShape(smallConfig) as TopicShape
area.place(0, placeFor(smallConfig, shape, area.directory.heap, shape.mainBytes, 1))

/** An occurrence as a claim by the process `shortTag` names would have made it. */
const occurrenceOf = (shortTag: number) => (shortTag << 15) | 7

/** Leaves `line` claimed as `pid` with `occurrence`, as its claimer would have (the owner then died). */
const leftBy = (region: CxlMemoryShape, line: number, occurrence: number, pid: number) =>
  expect(new ParticipantLineView(region).swapClaim(line, 0, 0, occurrence, pid)).toBe(true)

const contract = (
  label: string,
  open: (options: RegionOptions) => Effect.Effect<CxlMemoryShape, unknown, Scope.Scope>
) =>
  describe(`participant lines under a reused pid (${label})`, () => {
    const region = Effect.gen(function*() {
      const name = yield* uniqueRegion("pid-reuse")
      return yield* open({ name, size: regionSize(smallConfig), mode: "create" })
    })

    it.scoped("a broker owner line whose pid a later process now has is its dead owner's: the next broker takes it", () =>
      Effect.gen(function*() {
        const memory = yield* region
        const parent = process.ppid
        const owner = area.brokerOwner(0)
        leftBy(memory, owner, occurrenceOf(laterShortTag(shortTagOf(parent))), parent)
        expect(livePid(memory, owner)).toBe(0)
        expect(claimLine(memory, owner, newOccurrence(), OUR_BELL)).toBe(0)
        expect(livePid(memory, owner)).toBe(process.pid)

        // The same pid with its own start time is a live owner: its line is refused.
        const other = area.brokerOwner(1)
        leftBy(memory, other, occurrenceOf(shortTagOf(parent)), parent)
        expect(livePid(memory, other)).toBe(parent)
        expect(claimLine(memory, other, newOccurrence(), OUR_BELL)).toBe(parent)
      }))

    it.scoped("a listener line left under this very pid by an earlier process is taken, one of this process's is not", () =>
      Effect.gen(function*() {
        const memory = yield* region
        const line = area.listener(0)
        leftBy(memory, line, occurrenceOf(laterShortTag(shortStartTag(ownStartTag()))), process.pid)
        expect(livePid(memory, line)).toBe(0)
        const mine = newOccurrence()
        expect(mine >>> 15).toBe(shortStartTag(ownStartTag()))
        expect(claimLine(memory, line, mine, OUR_BELL)).toBe(0)
        expect(claimLine(memory, line, newOccurrence(), OUR_BELL)).toBe(process.pid)
      }))

    it.scoped("a durable cursor an earlier process under a live pid left holds no retention; the live one's does", () =>
      Effect.gen(function*() {
        const memory = yield* region
        const parent = process.ppid
        const stale = area.subscriber(0, 0)
        leftBy(memory, stale, occurrenceOf(laterShortTag(shortTagOf(parent))), parent)
        moveSubscriber(memory, stale, 5)
        expect(lowestDurableCursor(memory, area, 0, livenessCache())).toBe(Infinity)

        const live = area.subscriber(0, 1)
        leftBy(memory, live, occurrenceOf(shortTagOf(parent)), parent)
        moveSubscriber(memory, live, 9)
        expect(lowestDurableCursor(memory, area, 0, livenessCache())).toBe(9)
      }))
  })

contract("the native region", CxlMemoryLayers.make)
contract("the in-memory fake", CxlMemoryMemoryLayers.makeMemory)
