/**
 * /proc/PID/stat through kept files: one file per pid, read again and again while its process
 * runs, closed once the process is gone, and at most 64 kept.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import { readdirSync, readlinkSync } from "node:fs"
import { isPidAlive } from "../../src/layers/region/ProcessInfo.js"
import { readProcStat } from "../../src/layers/region/ProcStatFiles.js"

/** The pids whose /proc stat file this process holds open, once per file. */
const keptStatFiles = (): Array<number> => {
  const pids: Array<number> = []
  for (const fd of readdirSync("/proc/self/fd")) {
    try {
      const target = /^\/proc\/(\d+)\/stat$/.exec(readlinkSync(`/proc/self/fd/${fd}`))
      if (target !== null) pids.push(Number(target[1]))
    } catch {
      // The fd listing's own, closed by now.
    }
  }
  return pids
}

/** `count` sleeping children, SIGKILLed when the scope closes. */
const sleepers = (count: number) =>
  Effect.acquireRelease(
    Effect.sync(() => Array.from({ length: count }, () => spawn("sleep", ["600"], { stdio: "ignore" }))),
    (children) => Effect.sync(() => children.forEach((child) => child.kill("SIGKILL")))
  )

const exited = (child: ChildProcess) =>
  Effect.async<void>((resume) => {
    if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.void)
    child.once("exit", () => resume(Effect.void))
  })

describe("ProcStatFiles", () => {
  it.scopedLive("a pid's stat is read through one kept file while its process runs; once it is gone the pid names none and the file is closed", () =>
    Effect.gen(function*() {
      const [child] = yield* sleepers(1)
      const pid = child!.pid!
      expect(readProcStat(pid)).toMatch(new RegExp(`^${pid} \\(sleep\\) [RSD]`))
      expect(readProcStat(pid)).toMatch(new RegExp(`^${pid} \\(sleep\\) [RSD]`))
      expect(keptStatFiles().filter((p) => p === pid)).toHaveLength(1)
      child!.kill("SIGKILL")
      // Node reaps its children: once the exit is seen, the process is gone, not a zombie.
      yield* exited(child!)
      expect(readProcStat(pid)).toBeUndefined()
      expect(isPidAlive(pid)).toBe(false)
      expect(keptStatFiles()).not.toContain(pid)
    }))

  it.scopedLive("at most 64 files are kept, however many processes are asked of", () =>
    Effect.gen(function*() {
      const children = yield* sleepers(70)
      for (const child of children) expect(readProcStat(child.pid!)).toBeDefined()
      for (const child of children) expect(isPidAlive(child.pid!)).toBe(true)
      // Only the children's files are counted: with isolated modules off, another suite's copy of
      // the module in this fork may hold files of its own (a run in CI held one more). Asking of 70
      // new pids evicts whatever this module held before, so the last 64 children are what it keeps.
      const childPids = new Set(children.map((child) => child.pid!))
      const keptChildren = keptStatFiles().filter((pid) => childPids.has(pid))
      expect(new Set(keptChildren).size).toBe(keptChildren.length)
      expect(new Set(keptChildren)).toEqual(new Set(children.slice(-64).map((child) => child.pid!)))
    }))
})
