/**
 * `cxlog consumers reset NAME --to earliest|latest|OFFSET|TIME`, as processes: the consumer's
 * next member resumes where the reset put it — back, forward, or at the first message stamped
 * at or after a time; a new name is created there; a live member, a position outside the
 * window and a reset without --to are refused, changing nothing.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { forkCli, runCli, smallRegionEnv } from "../helpers/CliRoles.js"
import { uniqueRegion } from "../helpers/Processes.js"
import { until } from "../helpers/ServeProcess.js"

interface Consumer {
  readonly name: string
  readonly committed: number
}

describe("cxlog consumers reset", () => {
  it.scopedLive(
    "moves a consumer back, forward and to a time; its next member resumes there",
    () =>
      Effect.gen(function*() {
        const region = yield* uniqueRegion("consumer-reset")
        const env = { ...smallRegionEnv, CXLOG_REGION: region }
        const head = yield* forkCli(["head", "--topic", "t:5:1"], env)
        yield* head.event("ready")
        const broker = yield* forkCli(["broker", "--broker-id", "0", "--port", "0"], env)
        const brokers = `127.0.0.1:${(yield* broker.event("listening"))["port"]}`
        const cli = (args: ReadonlyArray<string>) => runCli(args, env)
        const ok = (args: ReadonlyArray<string>) =>
          Effect.map(cli(args), (r) => {
            expect(r.code, r.stderr).toBe(0)
            return r.stdout
          })
        const publish = (count: number) => ok(["publish", "--brokers", brokers, "--topic", "t", "--count", `${count}`])
        /** The offsets a member of `name` reads next, `count` of them (it commits them as it goes). */
        const member = (name: string, count: number) =>
          Effect.map(
            ok(["subscribe", "--topic", "t", "--consumer", name, "--limit", `${count}`, "--format", "json"]),
            (out) => out.trim().split("\n").map((l) => (JSON.parse(l) as { offset: number; timestamp: number }))
          )
        const committed = (name: string) =>
          Effect.map(
            ok(["consumers", "--topic", "t", "--json"]),
            (out) => (JSON.parse(out) as Array<Consumer>).find((c) => c.name === name)?.committed
          )
        const reset = (name: string, to: string) => cli(["consumers", "reset", name, "--topic", "t", "--to", to])

        yield* publish(5)
        const firstFive = yield* member("billing", 5)
        // The next five are published once the clock has passed the last stamp of these (a reset to a time tells them apart).
        const lastStamp = firstFive[4]!.timestamp
        yield* until(() => Date.now() > lastStamp, 5_000, () => `the clock to pass ${lastStamp}`)
        yield* publish(5)
        expect(yield* committed("billing")).toBe(5)

        expect((yield* reset("billing", "2")).stdout).toContain("committed offset 5 → 2")
        expect((yield* member("billing", 3)).map((m) => m.offset)).toEqual([2, 3, 4])
        expect((yield* reset("billing", "latest")).code).toBe(0)
        expect(yield* committed("billing")).toBe(10)
        expect((yield* reset("billing", "earliest")).code).toBe(0)
        expect((yield* member("billing", 1)).map((m) => m.offset)).toEqual([0])
        // The second five were stamped after the first five's last message.
        const since = new Date(firstFive[4]!.timestamp + 1).toISOString()
        expect((yield* reset("billing", since)).code).toBe(0)
        expect((yield* member("billing", 2)).map((m) => m.offset)).toEqual([5, 6])

        const created = yield* reset("audit", "7")
        expect(created.stdout).toContain("created consumer audit of topic t at offset 7")
        expect((yield* member("audit", 1)).map((m) => m.offset)).toEqual([7])

        // Refused, changing nothing: past the end, without --to, and while a member reads.
        const past = yield* reset("billing", "99")
        expect(past.code).not.toBe(0)
        expect(past.stderr).toContain("outside the retained window")
        const bare = yield* cli(["consumers", "reset", "billing", "--topic", "t"])
        expect(bare.code).toBe(2)
        expect(bare.stderr).toContain("reset NAME --topic T --to")
        const reading = yield* forkCli(["subscribe", "--topic", "t", "--consumer", "billing"], env)
        yield* reading.event("subscribed")
        const busy = yield* reset("billing", "0")
        expect(busy.code).not.toBe(0)
        expect(busy.stderr).toContain("has an active member")
        expect(yield* committed("billing")).toBeGreaterThanOrEqual(7)
      }),
    120_000
  )
})
