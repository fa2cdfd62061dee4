/**
 * Sizes as flags and CXLOG_* variables take them (Settings.ts): binary units, whole bytes, shown
 * back as the docs write them; every flag of the command line that is a number of bytes takes one.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import { parseSize, showSize } from "../../src/Settings.js"
import { runCli } from "../helpers/CliRoles.js"

describe("sizes", () => {
  it("take binary units in any case, with or without a space, and a number of bytes", () => {
    expect(parseSize("64KiB")).toEqual(Either.right(65_536))
    expect(parseSize("2 MiB")).toEqual(Either.right(2 * 2 ** 20))
    expect(parseSize("2mb")).toEqual(Either.right(2 * 2 ** 20))
    expect(parseSize("1.5GiB")).toEqual(Either.right(1.5 * 2 ** 30))
    // A fraction of a unit is rounded to the byte.
    expect(parseSize("3.7KiB")).toEqual(Either.right(3789))
    expect(parseSize("4096")).toEqual(Either.right(4096))
    expect(parseSize("1TiB")).toEqual(Either.right(2 ** 40))
  })

  it("refuse a fraction of a byte and less than one byte, naming why", () => {
    expect(parseSize("1.5")).toEqual(Either.left("1.5 is not a size: a number of bytes is a whole number"))
    expect(parseSize("1.5B")).toEqual(Either.left("1.5B is not a size: a number of bytes is a whole number"))
    expect(parseSize("0")).toEqual(Either.left("0 is not a size: it must be at least 1 byte"))
    expect(Either.isLeft(parseSize("-1"))).toBe(true)
    expect(Either.isLeft(parseSize("12XB"))).toBe(true)
    // Past what a number holds exactly: refused here, not later as a bad integer.
    expect(parseSize("999999999999999999999")).toEqual(
      Either.left("999999999999999999999 is not a size: it is past any memory or disk (2^53 bytes)")
    )
  })

  it("are shown back as the docs write them, and read again as the same bytes", () => {
    for (const bytes of [65_536, 2 * 2 ** 20, 3 * 2 ** 30, 1000]) {
      expect(parseSize(showSize(bytes))).toEqual(Either.right(bytes))
    }
    expect(showSize(64 * 2 ** 20)).toBe("64MiB")
  })

  it.effect("are what every flag of a number of bytes takes: --message-bytes 4KiB is 4096 bytes to run, bench and publish", () =>
    Effect.gen(function*() {
      for (const command of ["run", "bench", "publish", "head", "broker", "topics", "create-topic"]) {
        const help = yield* runCli([command, "--help"])
        // A rate in bytes a second is a number (BYTES), not a size.
        const bytesFlags = [...help.stdout.matchAll(/^(--[a-z-]*(?:bytes|memory)) (\S+)/gm)].filter(([, flag]) =>
          !flag!.endsWith("-per-s")
        )
        expect(bytesFlags.length, command).toBeGreaterThan(0)
        for (const [, flag, placeholder] of bytesFlags) expect(`${command} ${flag} ${placeholder}`).toMatch(/ SIZE$/)
      }
      for (const command of ["run", "bench"]) {
        const refused = yield* runCli([command, "--message-bytes", "4KiB", "--bytes", "2KiB"])
        expect(refused.code, refused.stderr).toBe(2)
        expect(refused.stderr.trimEnd()).toBe(
          `cxlog ${command}: --bytes 2048 holds no whole 4096-byte message (--message-bytes)`
        )
      }
      const publish = yield* runCli(["publish", "--brokers", "127.0.0.1:1", "--count", "1", "--message-bytes", "2MiB"])
      expect(publish.code).toBe(2)
      expect(publish.stderr).toContain("cxlog publish: a 2097152-byte message does not fit a batch")
    }))
})
