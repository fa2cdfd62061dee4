/**
 * Wake FIFO paths: one set per region name, so two regions never share (and never remove)
 * each other's FIFOs, and `removeWakeFifos` removes exactly one region's.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { execFileSync } from "node:child_process"
import { existsSync, mkdirSync, rmSync } from "node:fs"
import { basename } from "node:path"
import { removeWakeFifos, wakeDirectory, wakeFifoPath } from "../../src/layers/region/Doorbell.js"

describe("wake FIFO paths", () => {
  it("distinct region names never map to the same FIFO: slashes, underscores, a leading slash, long names", () => {
    const names = [
      "/tmp/x/r",
      "tmp_x_r",
      "tmp/x/r",
      "/r",
      "r",
      "_2fr",
      "r.5",
      "r_",
      "r/",
      "é",
      "_c3_a9",
      "a".repeat(300),
      "a".repeat(301)
    ]
    const paths = names.map((name) => wakeFifoPath(name, 4096))
    expect(new Set(paths).size).toBe(names.length)
    for (const path of paths) expect(Buffer.byteLength(basename(path))).toBeLessThanOrEqual(255)
  })

  it.scoped("removeWakeFifos of one region leaves another's whose name once encoded the same", () =>
    Effect.gen(function*() {
      const tag = `fifo-names-${process.pid}-${Math.random().toString(36).slice(2, 8)}`
      const [file, shm] = [`/tmp/${tag}/r`, `tmp_${tag}_r`]
      mkdirSync(wakeDirectory(), { recursive: true, mode: 0o700 })
      const made = [wakeFifoPath(file, 4096), wakeFifoPath(file, 4160), wakeFifoPath(shm, 4096)]
      yield* Effect.addFinalizer(() => Effect.sync(() => made.forEach((path) => rmSync(path, { force: true }))))
      execFileSync("mkfifo", made)
      expect(removeWakeFifos(file)).toBe(2)
      expect(made.map(existsSync)).toEqual([false, false, true])
      expect(removeWakeFifos(shm)).toBe(1)
      expect(existsSync(made[2]!)).toBe(false)
    }))
})
