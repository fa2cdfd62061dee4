/**
 * The ports a bench's peer servers are given are all different: a port the kernel hands out twice
 * would leave one server unbound while the other answered for it (a JetStream cluster of two nodes
 * where three were meant).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { freePorts } from "../../src/programs/bench/peers/PeerServer.js"

/** A picker handing out `ports` in turn, then the last for good. */
const picks = (ports: ReadonlyArray<number>) => {
  let next = 0
  return Effect.sync(() => ports[Math.min(next++, ports.length - 1)]!)
}

describe("freePorts", () => {
  it.effect("picks again when the kernel hands a port out twice", () =>
    Effect.gen(function*() {
      expect(yield* freePorts(3, picks([41000, 41000, 41001, 41000, 41002]))).toEqual([41000, 41001, 41002])
    }))

  it.effect("fails, naming the count, when it cannot find that many different ports", () =>
    Effect.gen(function*() {
      const failed = yield* Effect.flip(freePorts(2, picks([41000])))
      expect(failed).toMatchObject({ _tag: "PeerFailed", peer: "port" })
      expect(failed.detail).toMatch(/^no 2 different free ports in \d+ picks$/)
    }))

  it.live("free ports of this host, each different", () =>
    Effect.gen(function*() {
      const ports = yield* freePorts(6)
      expect(new Set(ports).size).toBe(6)
    }))
})
