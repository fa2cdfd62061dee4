/**
 * Several topics and patterns from the command line, and the failures around them, against a head
 * and a broker run as `cxlog` processes: a pattern subscriber (over TCP and in place) picks up a
 * topic created after it started; a pattern that matches nothing waits, bounded; bad syntax and an
 * unknown topic among several are one-line typed failures; a topic deleted (`cxlog topics delete`)
 * while one publisher writes it and others fails that topic's publishes alone.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Schedule } from "effect"
import { join } from "node:path"
import * as PublisherLayers from "../../src/layers/net/Publisher.js"
import { forkCli, runCliWithin, smallRegionEnvFor } from "../helpers/CliRoles.js"
import { tempDir, uniqueRegion } from "../helpers/Processes.js"

/** A head with `topics` (order 5) and one broker over a small region of its own. */
const cluster = (topics: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const region = yield* uniqueRegion("subscribe-topics")
    const env = { ...smallRegionEnvFor(1), CXLOG_HEAP_BYTES: `${128 << 20}`, CXLOG_REGION: region }
    const head = yield* forkCli(["head", ...topics.flatMap((name) => ["--topic", `${name}:5:1`])], env)
    yield* head.event("ready", 60_000)
    const broker = yield* forkCli(["broker", "--broker-id", "0", "--port", "0"], env)
    const port = (yield* broker.event("listening"))["port"] as number
    return { env, port, region }
  })

const lines = (stdout: string) =>
  stdout.trim().split("\n").map((line) => JSON.parse(line) as { topic: string; offset: number; payload: string })

describe("several topics and patterns from the command line", () => {
  it.scopedLive(
    "a pattern subscriber, over TCP and in place, picks up a topic created after it started",
    () =>
      Effect.gen(function*() {
        const { env, port } = yield* cluster(["late.zero", "other"])
        const read = [
          "subscribe",
          "--topic",
          "late.*",
          "--format",
          "json",
          "--limit",
          "3",
          "--idle-timeout-ms",
          "30000"
        ]
        const remote = yield* forkCli([...read, "--brokers", `127.0.0.1:${port}`], env)
        const inPlace = yield* forkCli(read, env)
        for (const subscriber of [remote, inPlace]) {
          expect((yield* subscriber.event("subscribed"))["topics"]).toEqual(["late.zero"])
        }
        const created = yield* runCliWithin(["create-topic", "--topic", "late.one"], env, 30_000)
        expect(created.code, created.stderr).toBe(0)
        const published = yield* runCliWithin(
          ["publish", "--brokers", `127.0.0.1:${port}`, "--topic", "late.one", "--count", "3", "--message-bytes", "16"],
          env,
          30_000
        )
        expect(published.code, published.stderr).toBe(0)
        for (const subscriber of [remote, inPlace]) {
          expect((yield* subscriber.event("done", 30_000))["messages"]).toBe(3)
          const printed = lines(subscriber.output().split("\n").filter((line) => line.startsWith("{")).join("\n"))
          expect(printed.map((m) => [m.topic, m.offset])).toEqual([["late.one", 0], ["late.one", 1], ["late.one", 2]])
        }
      }),
    120_000
  )

  it.scopedLive(
    "a pattern subscriber says so on stderr when a topic it read is deleted and made again, whose messages start again at 0",
    () =>
      Effect.gen(function*() {
        const { env, port } = yield* cluster(["made.again"])
        const publish = (count: number) =>
          Effect.flatMap(
            runCliWithin(
              ["publish", "--brokers", `127.0.0.1:${port}`, "--topic", "made.again", "--count", `${count}`],
              env,
              30_000
            ),
            (run) => Effect.sync(() => expect(run.code, run.stderr).toBe(0))
          )
        const subscriber = yield* forkCli(
          ["subscribe", "--topic", "made.*", "--format", "json", "--limit", "5", "--idle-timeout-ms", "30000"],
          env
        )
        yield* subscriber.event("subscribed")
        yield* publish(3)
        const printed = () => subscriber.output().split("\n").filter((line) => line.startsWith("{"))
        yield* Effect.suspend(() => printed().length >= 3 ? Effect.void : Effect.fail("waiting")).pipe(
          Effect.retry(Schedule.spaced("50 millis").pipe(Schedule.upTo("30 seconds")))
        )
        for (const args of [["topics", "delete", "made.again"], ["create-topic", "--topic", "made.again:5:1"]]) {
          const run = yield* runCliWithin(args, env, 30_000)
          expect(run.code, run.stderr).toBe(0)
        }
        yield* publish(2)
        expect((yield* subscriber.event("done", 30_000))["messages"]).toBe(5)
        expect(lines(printed().join("\n")).map((m) => m.offset)).toEqual([0, 1, 2, 0, 1])
        expect(subscriber.output()).toContain(
          "cxlog subscribe: topic made.again was deleted and made again: its new messages follow, from offset 0\n"
        )
      }),
    120_000
  )

  it.scopedLive(
    "a pattern that matches nothing (or only topics its user may not read) waits, bounded, saying so; bad syntax and an unknown topic among several are typed one-line failures",
    () =>
      Effect.gen(function*() {
        const { env, port } = yield* cluster(["known", "secret.a", "secret.b"])
        // A user who may read `known` alone is told its pattern matches topics it may not read.
        const viewerSecret = join(yield* tempDir("cxlog-viewer-"), "viewer.secret")
        const added = yield* runCliWithin(
          ["user", "add", "viewer", "--read", "known", "--secret-file", viewerSecret],
          env,
          30_000
        )
        expect(added.code, added.stderr).toBe(0)
        const viewer = yield* runCliWithin(
          [
            "subscribe",
            "--brokers",
            `127.0.0.1:${port}`,
            "--secret-file",
            viewerSecret,
            "--topic",
            "secret.*",
            "--limit",
            "1",
            "--idle-timeout-ms",
            "500"
          ],
          env,
          30_000
        )
        expect(viewer.code).toBe(1)
        expect(viewer.stderr.split("\n")[0]).toBe(
          "cxlog subscribe: secret.* matches 2 topics this user may not read (its read right in the credential file: docs/security.md); reading those made to match it that it may"
        )
        for (const where of [[], ["--brokers", `127.0.0.1:${port}`]]) {
          const waiting = yield* runCliWithin(
            ["subscribe", ...where, "--topic", "none.*", "--limit", "1", "--idle-timeout-ms", "500"],
            env,
            30_000
          )
          expect(waiting.code).toBe(1)
          // Said at once, so a mistyped pattern is not a silent wait.
          expect(waiting.stderr.split("\n")[0]).toBe(
            "cxlog subscribe: no topic matches none.* yet: reading the topics made to match it (cxlog topics lists them)"
          )
          expect(waiting.stderr).toMatch(/topic none\.\*: no new message for 500 ms after 0 of the 1 asked for/)
          const bad = yield* runCliWithin(["subscribe", ...where, "--topic", "a.>.b", "--limit", "1"], env, 30_000)
          expect(bad.code).toBe(2)
          expect(bad.stderr).toMatch(/invalid topic or pattern "a\.>\.b": `>` stands for the rest of a name/)
          expect(bad.stderr.trim().split("\n")).toHaveLength(1)
          const unknown = yield* runCliWithin(
            ["subscribe", ...where, "--topic", "known", "--topic", "nope", "--limit", "1"],
            env,
            30_000
          )
          expect(unknown.code).toBe(1)
          expect(unknown.stderr).toMatch(/unknown topic "nope"/)
        }
      }),
    120_000
  )

  it.scopedLive(
    "a topic deleted (cxlog topics delete) while a publisher writes it and others: its publishes fail naming it, the others' are acknowledged",
    () =>
      Effect.gen(function*() {
        const { env, port, region } = yield* cluster(["x.one", "x.two", "x.three"])
        const publisher = yield* PublisherLayers.make({ brokers: [{ host: "127.0.0.1", port }], region, clientId: 3 })
        const message = new TextEncoder().encode("hello")
        const round = Effect.forEach(
          ["x.one", "x.two", "x.three"],
          (topic) => publisher.publishAcked(message, { topic }),
          { discard: true }
        )
        yield* round
        const deleted = yield* runCliWithin(["topics", "delete", "x.two"], env, 30_000)
        expect(deleted.code, deleted.stderr).toBe(0)
        const refused = yield* Effect.flip(
          Effect.repeat(publisher.publishAcked(message, { topic: "x.two" }), Schedule.spaced("20 millis"))
        ).pipe(Effect.timeoutFail({ duration: 10_000, onTimeout: () => new Error("x.two still takes messages") }))
        expect(refused).toMatchObject({ _tag: "BrokerRejected", code: "topic-deleted", topic: "x.two" })
        expect(refused.message).toMatch(/refused the session of topic x\.two: topic-deleted/)
        for (let i = 0; i < 20; i++) {
          for (const topic of ["x.one", "x.three"]) yield* publisher.publishAcked(message, { topic })
        }
        const stats = publisher.stats().topics
        expect(stats.find((t) => t.topic === "x.two")?.failure).toMatch(/topic-deleted/)
        expect(stats.filter((t) => t.topic !== "x.two").map((t) => t.ackedMessages)).toEqual([21, 21])
      }),
    120_000
  )
})
