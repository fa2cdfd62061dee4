/**
 * Liveness by pid: a process that exited and waits to be reaped (a zombie: the roles of a
 * SIGKILLed `cxlog run`, orphaned to an init that reaps late) is gone, with or without its start tag.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { isPidAlive, isProcessAlive, startTagOf } from "../../src/layers/region/ProcessInfo.js"
import { unreapedProcess } from "../helpers/Unreaped.js"

describe("ProcessInfo liveness", () => {
  it.scopedLive("a live process is alive; once it exited unreaped (a zombie) it is gone", () =>
    Effect.gen(function*() {
      const child = yield* unreapedProcess("sleep 600")
      const tag = startTagOf(child.pid)
      expect(tag).toBeGreaterThan(0)
      expect(isPidAlive(child.pid)).toBe(true)
      expect(isProcessAlive(child.pid, tag)).toBe(true)
      yield* child.killToZombie
      expect(isPidAlive(child.pid)).toBe(false)
      expect(isProcessAlive(child.pid, tag)).toBe(false)
      expect(isProcessAlive(child.pid, 0)).toBe(false)
      expect(isProcessAlive(child.pid, tag & 0xffff, 16)).toBe(false)
    }))

  it("this process is alive", () => {
    expect(isPidAlive(process.pid)).toBe(true)
    expect(isProcessAlive(process.pid, startTagOf(process.pid))).toBe(true)
  })
})
