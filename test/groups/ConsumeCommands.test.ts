/**
 * The commands `cxlog consume --exec` runs: each reads its message whole from a file written
 * before it starts (never from a pipe filled as it runs, which a member killed in between left
 * empty), and the environment names the message.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { readdirSync } from "node:fs"
import { tmpdir } from "node:os"
import { commandRunner, INPUT_NOT_WRITTEN } from "../../src/programs/roles/ConsumeCommands.js"
import type { Delivery } from "../../src/services/groups/ConsumerGroups.js"

const delivery = (value: string): Delivery => ({
  group: "g",
  topic: "t",
  offset: 7,
  timestamp: 0,
  key: undefined,
  headers: undefined,
  value: new TextEncoder().encode(value),
  deliveryCount: 2,
  ack: Effect.succeed(true),
  nak: () => Effect.succeed(true),
  term: () => Effect.succeed(true),
  inProgress: Effect.succeed(true)
})

const inputFiles = () => readdirSync(tmpdir()).filter((name) => name.startsWith(`cxlog-consume-${process.pid}-`))

describe("cxlog consume --exec commands", () => {
  it.scoped("read their message from a file there whole before they start; nothing of it is left behind", () =>
    Effect.gen(function*() {
      const before = inputFiles()
      const run = yield* Effect.scoped(Effect.gen(function*() {
        const run = yield* commandRunner
        const big = "x".repeat(300_000)
        // A regular file, not a pipe: its whole size is there as the command starts.
        expect(yield* run(`[ -f /dev/stdin ] && [ "$(wc -c)" -eq 300000 ]`, delivery(big))).toBe(0)
        expect(
          yield* run(`[ "$(cat)" = hello ] && [ "$CONSUME_OFFSET $CONSUME_DELIVERY_COUNT" = "7 2" ]`, delivery("hello"))
        )
          .toBe(0)
        // A command that does not read its input is no failure.
        expect(yield* run("exit 0", delivery("unread"))).toBe(0)
        expect(yield* run("exit 3", delivery("x"))).toBe(3)
        return run
      }))
      expect(run).toBeDefined()
      expect(inputFiles()).toEqual(before)
    }))

  it.scoped("whose input cannot be written do not run: the runner answers 126 (delivered again), nothing thrown", () =>
    Effect.gen(function*() {
      const run = yield* commandRunner
      const before = process.env["TMPDIR"]
      process.env["TMPDIR"] = "/nonexistent-cxlog-tmp"
      yield* Effect.addFinalizer(() =>
        Effect.sync(() => before === undefined ? delete process.env["TMPDIR"] : void (process.env["TMPDIR"] = before))
      )
      expect(yield* run("exit 0", delivery("never read"))).toBe(INPUT_NOT_WRITTEN)
    }))
})
