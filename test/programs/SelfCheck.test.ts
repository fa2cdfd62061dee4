/**
 * `cxlog selfcheck`: a wake in each direction between two processes, and a failure whenever
 * the peer reports anything but a wait ended by the parent's wake.
 */
import { describe, expect, it } from "@effect/vitest"
import { Console, Effect, Either } from "effect"
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { selfCheck } from "../../src/programs/admin/SelfCheck.js"
import { fixtureEntry } from "../helpers/FixtureBuild.js"

const peer = fixtureEntry("selfcheck-peer")

const checkWith = (mode: string, dir?: string) =>
  Effect.acquireUseRelease(
    Effect.sync(() => {
      const before = process.env["CXLOG_TEST_PEER_MODE"]
      process.env["CXLOG_TEST_PEER_MODE"] = mode
      return before
    }),
    () => Effect.either(selfCheck(peer, [], dir)),
    (before) =>
      Effect.sync(() => {
        if (before === undefined) delete process.env["CXLOG_TEST_PEER_MODE"]
        else process.env["CXLOG_TEST_PEER_MODE"] = before
      })
  )

describe("self-check", () => {
  it.live(
    "both processes are woken by the other's ring and read the other's value; the region is removed",
    () =>
      Effect.gen(function*() {
        const result = yield* checkWith("real")
        expect(Either.isRight(result), Either.isLeft(result) ? result.left.message : "").toBe(true)
        expect(existsSync(`/dev/shm/cxlog-selfcheck-${process.pid}`)).toBe(false)
      }),
    30_000
  )

  it.live(
    "with --dir, makes its region in that directory (a region named by a path), checks it the same and removes it",
    () =>
      Effect.acquireUseRelease(
        Effect.sync(() => mkdtempSync(join(tmpdir(), "cxlog-selfcheck-dir-"))),
        (dir) =>
          Effect.gen(function*() {
            // What the check says, kept.
            const lines: Array<string> = []
            const current = yield* Console.consoleWith(Effect.succeed)
            const keeping = {
              ...current,
              log: (...args: ReadonlyArray<unknown>) => Effect.sync(() => void lines.push(args.join(" ")))
            }
            const result = yield* Effect.withConsole(checkWith("real", dir), keeping)
            expect(Either.isRight(result), Either.isLeft(result) ? result.left.message : "").toBe(true)
            expect(lines.some((line) => line.startsWith(`created region ${dir}/cxlog-selfcheck-`))).toBe(true)
            // Its last figure: what one system call costs this process, timed on a word nobody waits on.
            expect(
              lines.filter((line) => /^system calls: \d+\.\d\d µs each \(a futex wake nobody waits for/.test(line))
            )
              .toHaveLength(1)
            expect(readdirSync(dir)).toEqual([])
            // The peer reads its pages where the parent wrote them: one byte off fails there too.
            const wrongPages = yield* checkWith("wrong-pages", dir)
            expect(Either.isLeft(wrongPages) && wrongPages.left.message).toMatch(/the peer read other bytes/)
            const missing = yield* Effect.either(selfCheck(peer, [], join(dir, "missing")))
            expect(Either.isLeft(missing) && missing.left.message).toContain(
              `: open: the directory ${join(dir, "missing")} does not exist`
            )
          }),
        (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
      ),
    60_000
  )

  it.live(
    "fails when the peer's wait did not end by a wake, reports nothing or read other bytes in the page area, though it exits 0",
    () =>
      Effect.gen(function*() {
        const notEqual = yield* checkWith("not-equal")
        expect(Either.isLeft(notEqual) && notEqual.left.message).toMatch(/the peer's doorbell wait ended not-equal/)
        const silent = yield* checkWith("silent")
        expect(Either.isLeft(silent) && silent.left.message).toMatch(/without reporting its doorbell wait/)
        const wrongPages = yield* checkWith("wrong-pages")
        expect(Either.isLeft(wrongPages) && wrongPages.left.message).toMatch(
          /the peer read other bytes than the parent wrote in the region's 2048 pages/
        )
      }),
    60_000
  )
})
