/**
 * Deleting a named consumer either deletes it or fails typed. Whatever pid its line's claim word
 * holds (a creator killed before clearing its own, that pid since reused) stops nothing; a
 * deleter's mark in the `member` word makes it one deleter at a time, and a mark whose deleter
 * died is taken over. A deletion never erases another consumer that took the line meanwhile: the
 * other process's deletion and creation run from inside this one's atomic accesses (Atomics
 * wrapped for the member word).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { lineTaken } from "../../src/layers/log/Participants.js"
import { Participant, SubscriberLine } from "../../src/layers/log/Records.js"
import { ParticipantLineView, SubscriberLineView } from "../../src/layers/log/RecordViews.js"
import * as CxlMemoryLayers from "../../src/layers/region/CxlMemory.js"
import { consumersOf, regionCluster, smallConfig } from "../fixtures/log-harness.js"

/** A pid no process has (above any pid_max): `kill(pid, 0)` finds nobody. */
const DEAD_PID = 0x3fffffff

const setUp = Effect.gen(function*() {
  const cluster = yield* regionCluster(CxlMemoryLayers.make)()
  const { memory, area } = cluster.region!
  const { id: topicId } = yield* cluster.topics.create({ name: "t", order: 5, ackLevel: 1, replicationFactor: 1 })
  const consumers = yield* consumersOf(cluster)
  const lines = new SubscriberLineView(memory)
  const all = Array.from({ length: smallConfig.subscriberSlots }, (_, s) => area.subscriber(topicId, s))
  /** Creates consumer `name` (no member left) and gives its line. */
  const create = (name: string, offset = 0) =>
    Effect.gen(function*() {
      yield* Effect.scoped(consumers.join("t", name, { offset, globalSeq: 0 }))
      return all.find((l) =>
        lineTaken(memory, l) && lines.durable(l) === 2 && lines.committed(l) === offset &&
        lines.nameLength(l) === name.length
      )!
    })
  const names = Effect.map(consumers.list("t"), (list) => list.map((c) => `${c.name}@${c.committed}`))
  return { cluster, memory, consumers, lines, participants: new ParticipantLineView(memory), create, names }
})

describe("deleting a named consumer", () => {
  it.scoped("its killed creator's pid left in the claim word, now a live process's: remove deletes it (it answered true and deleted nothing)", () =>
    Effect.gen(function*() {
      const { memory, consumers, participants, create, names } = yield* setUp
      const line = yield* create("c")
      participants.storePid(line, process.ppid)
      expect(yield* consumers.remove("t", "c")).toBe(true)
      expect(yield* names).toEqual([])
      expect(lineTaken(memory, line)).toBe(false)
    }))

  it.scoped("a deleter killed after marking the consumer: the next remove finishes it; a live deleter's mark fails remove and join typed", () =>
    Effect.gen(function*() {
      const { consumers, lines, participants, create, names } = yield* setUp
      const dead = yield* create("dead")
      lines.storeMember(dead, -DEAD_PID, 0)
      participants.storePid(dead, DEAD_PID)
      const live = yield* create("live", 3)
      lines.storeMember(live, -process.ppid, 0)

      expect(yield* consumers.remove("t", "dead")).toBe(true)
      const removing = yield* Effect.either(consumers.remove("t", "live"))
      expect(removing).toMatchObject({
        _tag: "Left",
        left: { _tag: "ConsumerBeingDeleted", name: "live", pid: process.ppid }
      })
      const joining = yield* Effect.either(Effect.scoped(consumers.join("t", "live", { offset: 0, globalSeq: 0 })))
      expect(joining).toMatchObject({ _tag: "Left", left: { _tag: "ConsumerBusy", pid: process.ppid } })
      expect(yield* names).toEqual(["live@3"])
    }))

  for (const at of ["look", "swap"] as const) {
    it.scoped(`the line deleted and taken by another consumer at this deletion's ${at}: that consumer keeps it`, () =>
      Effect.gen(function*() {
        const { cluster, memory, consumers, lines, create, names } = yield* setUp
        const line = yield* create("c")
        const other = yield* consumersOf(cluster)
        // The member word and its tag: one 64-bit word.
        const memberPair = (line + SubscriberLine.member) / 8
        const { load, compareExchange } = Atomics
        let armed = true
        // Another process deletes "c" and creates "d" (in the same, first free line) right before this deletion's access.
        const interlope = (array: unknown, index: number) => {
          if (!armed || !(array instanceof BigUint64Array) || array.buffer !== memory.buffer || index !== memberPair) {
            return
          }
          armed = false
          expect(Effect.runSync(other.remove("t", "c"))).toBe(true)
          Effect.runSync(Effect.scoped(other.join("t", "d", { offset: 5, globalSeq: 0 })))
          expect(lines.nameLength(line)).toBe(1)
        }
        type Load = (array: BigUint64Array, index: number) => bigint
        type Swap = (array: BigUint64Array, index: number, expected: bigint, value: bigint) => bigint
        if (at === "look") {
          Atomics.load = ((array: BigUint64Array, index: number) => {
            interlope(array, index)
            return (load as unknown as Load)(array, index)
          }) as typeof Atomics.load
        } else {
          Atomics.compareExchange = ((array: BigUint64Array, index: number, expected: bigint, value: bigint) => {
            interlope(array, index)
            return (compareExchange as unknown as Swap)(array, index, expected, value)
          }) as typeof Atomics.compareExchange
        }
        const removed = yield* consumers.remove("t", "c").pipe(Effect.ensuring(Effect.sync(() => {
          Atomics.load = load
          Atomics.compareExchange = compareExchange
        })))
        expect(armed).toBe(false)
        expect(removed).toBe(false)
        expect(yield* names).toEqual(["d@5"])
        // Its member word was put back (no deleter's mark left on it), and it takes a member.
        expect(lines.member(line)).toBe(0)
        const member = yield* consumers.join("t", "d", { offset: 0, globalSeq: 0 })
        expect([member.created, member.committed()]).toEqual([false, 5])
      }))
  }

  it.scoped("the line's claim turned over under this deletion's mark (freed as its dead creator's): remove answers false and puts the member word back", () =>
    Effect.gen(function*() {
      const { memory, consumers, lines, participants, create, names } = yield* setUp
      const line = yield* create("c")
      participants.storePid(line, DEAD_PID)
      const occurrence = participants.occurrence(line)
      const pairIndex = (line + Participant.occurrence) / 8
      const { load } = Atomics
      let armed = true
      // Another process frees the line (a dead owner's) right before this deletion reads its claim to take it over.
      Atomics.load = ((array: BigUint64Array, index: number) => {
        if (armed && array instanceof BigUint64Array && array.buffer === memory.buffer && index === pairIndex) {
          armed = false
          expect(lines.member(line)).toBe(-process.pid)
          expect(participants.swapClaim(line, occurrence, DEAD_PID, 0, 0)).toBe(true)
        }
        return (load as unknown as (array: BigUint64Array, index: number) => bigint)(array, index)
      }) as typeof Atomics.load
      const removed = yield* consumers.remove("t", "c").pipe(Effect.ensuring(Effect.sync(() => {
        Atomics.load = load
      })))
      expect(armed).toBe(false)
      expect(removed).toBe(false)
      expect(yield* names).toEqual([])
      // No deleter's mark left behind on the line.
      expect(lines.member(line)).toBe(0)
    }))
})
