/**
 * `cxlog serve` as a user runs it (`node dist/cxlog.mjs serve`, no IPC channel): it says how to
 * connect once ready; the CLI and the Promise clients publish and read back through it; SIGINT
 * stops it with exit 0 and leaves no process, region or secret file behind, a second one while it
 * stops included; SIGKILLed, its roles
 * do not outlive it; a taken port and a region in use are refused before anything starts; a
 * standby takes over a dead head, a dead broker stops it all; --detach and --stop.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { spawn } from "node:child_process"
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { CxlogPublisher, CxlogSubscriber } from "../../src/index.js"
import { defaultSecretPath } from "../../src/layers/net/Auth.js"
import { discoverTargets } from "../../src/programs/report/Dashboard.js"
import { serveLogPath } from "../../src/programs/serve/ServeDetach.js"
import { childrenOf, cli } from "../helpers/CliRoles.js"
import {
  awaitReady,
  freePorts,
  holdPort,
  running,
  serveRegion,
  standbyServe,
  startServe,
  until
} from "../helpers/ServeProcess.js"

/** `cxlog <args>` to its end (at most 60 s), `input` on its stdin. */
const runCli = (args: ReadonlyArray<string>, input = "") =>
  Effect.acquireUseRelease(
    Effect.sync(() => spawn(process.execPath, [cli, ...args], { stdio: ["pipe", "pipe", "pipe"] })),
    (child) =>
      Effect.async<{ code: number | null; stdout: string; stderr: string }>((resume) => {
        let stdout = ""
        let stderr = ""
        child.stdout.on("data", (c: Buffer) => (stdout += c.toString()))
        child.stderr.on("data", (c: Buffer) => (stderr += c.toString()))
        child.on("close", (code) => resume(Effect.succeed({ code, stdout, stderr })))
        child.stdin.end(input)
      }).pipe(Effect.timeoutFail({
        duration: "60 seconds",
        onTimeout: () => new Error(`cxlog ${args.join(" ")}: still running after 60 s`)
      })),
    (child) => Effect.sync(() => child.exitCode === null && child.signalCode === null && child.kill("SIGKILL"))
  )

const addresses = (list: string) =>
  list.split(",").map((a) => ({ host: a.slice(0, a.lastIndexOf(":")), port: Number(a.slice(a.lastIndexOf(":") + 1)) }))

describe("cxlog serve", () => {
  it.scopedLive(
    "serves the CLI and the Promise clients; SIGINT stops it with exit 0, a second one while it stops waited through, leaving no process, region or secret file",
    () =>
      Effect.gen(function*() {
        const region = yield* serveRegion("serve")
        const port = yield* freePorts(2)
        const serving = yield* startServe(["--region", region, "--port", `${port}`, "--broker-count", "2"])
        const list = yield* awaitReady(serving)
        expect(list).toBe(`127.0.0.1:${port},127.0.0.1:${port + 1}`)
        expect(serving.output()).toContain(defaultSecretPath(region))
        expect(serving.output()).toMatch(/^broker 1 \| .*listening on/m)
        const roles = serving.roles()
        expect(roles).toHaveLength(3)

        // The same region again, while this one serves it: refused, naming its head.
        const again = yield* runCli(["serve", "--region", region, "--port", "0", "--broker-count", "1"])
        expect(again.code).toBe(1)
        expect(again.stderr).toMatch(new RegExp(`region ${region} is in use: its head \\(pid \\d+\\) still runs`))

        const published = yield* runCli(
          ["publish", "--brokers", list, "--region", region, "--topic", "events"],
          "cli 0\ncli 1\ncli 2\n"
        )
        expect(published.code, published.stderr).toBe(0)
        yield* Effect.promise(async () => {
          const publisher = await CxlogPublisher.open({ brokers: addresses(list), topic: "events", region })
          for (let i = 0; i < 3; i++) await publisher.publish(`code ${i}`)
          await publisher.close()
        })
        const expected = ["cli 0", "cli 1", "cli 2", "code 0", "code 1", "code 2"]
        const read = yield* runCli([
          "subscribe",
          "--brokers",
          list,
          "--region",
          region,
          "--topic",
          "events",
          "--limit",
          "6"
        ])
        expect(read.code, read.stderr).toBe(0)
        expect(read.stdout.trim().split("\n")).toEqual(expected.map((text, offset) => `${offset}\t${text}`))
        const fromCode = yield* Effect.promise(async () => {
          const subscriber = await CxlogSubscriber.open({ brokers: addresses(list), topic: "events", region })
          const texts: Array<string> = []
          for await (const message of subscriber) {
            texts.push(`${message.offset} ${message.text()}`)
            if (texts.length === expected.length) break
          }
          return texts
        })
        expect(fromCode).toEqual(expected.map((text, offset) => `${offset} ${text}`))

        serving.interrupt()
        // A second Ctrl-C while it stops its roles is said and waited through, as by every command: nothing is left behind.
        yield* until(
          () => /^serve +\| stopping/m.test(serving.output()),
          30_000,
          () => `serve's stopping:\n${serving.output()}`,
          1
        )
        serving.interrupt()
        const exit = yield* serving.exited.pipe(Effect.timeoutFail({
          duration: "30 seconds",
          onTimeout: () => new Error(`serve still runs 30 s after SIGINT:\n${serving.output()}`)
        }))
        expect(exit, serving.output()).toEqual({ code: 0, signal: null })
        expect(serving.output()).toContain(
          "cxlog serve: SIGINT while stopping: still cleaning up what it holds; one more signal stops it at once"
        )
        expect(roles.filter(running)).toEqual([])
        expect(existsSync(`/dev/shm/${region}`)).toBe(false)
        expect(existsSync(defaultSecretPath(region))).toBe(false)
        // Each role stopped cleanly, the brokers before the head; then serve said it was done.
        const ends = [...serving.output().matchAll(/^serve +\| (head|broker \d) \(pid \d+\) exited with (.*)$/gm)].map((
          m
        ) => `${m[1]}: ${m[2]}`)
        expect(ends.slice(0, 2).sort()).toEqual(["broker 0: code 0", "broker 1: code 0"])
        expect(ends.slice(2)).toEqual(["head: code 0"])
        expect(serving.output()).toMatch(/\nserve +\| stopped\n$/)
      }),
    240_000
  )

  it.scopedLive(
    "a taken port is refused before anything starts, naming the port, its broker and the way on",
    () =>
      Effect.gen(function*() {
        const region = yield* serveRegion("serve-port")
        const port = yield* freePorts(2)
        yield* holdPort(port + 1)
        const refused = yield* runCli(["serve", "--region", region, "--port", `${port}`, "--broker-count", "2"])
        expect(refused.code).toBe(1)
        expect(refused.stderr).toContain(
          `cxlog serve: port ${
            port + 1
          } on 127.0.0.1, broker 1's (--port ${port} + 1), is taken by another process (EADDRINUSE). Give serve another --port`
        )
        expect(refused.stdout).not.toMatch(/^head +\|/m)
        expect(existsSync(`/dev/shm/${region}`)).toBe(false)
        // Metrics ports among the brokers' own: refused before anything starts too, as a flag mistake.
        const overlapping = yield* runCli([
          "serve",
          "--region",
          region,
          "--port",
          `${port}`,
          "--broker-count",
          "2",
          "--metrics-port",
          `${port + 1}`
        ])
        expect(overlapping.code).toBe(2)
        expect(overlapping.stderr).toContain(
          `--port ${port} (broker i's at + i: up to ${port + 1}) share port ${port + 1}`
        )
        expect(overlapping.stdout).not.toMatch(/^head +\|/m)
        expect(existsSync(`/dev/shm/${region}`)).toBe(false)
      }),
    120_000
  )

  it.scopedLive(
    "--standby takes over a dead head and serve goes on; a broker that dies stops the rest, exit 1 (--json events)",
    () =>
      Effect.gen(function*() {
        const region = yield* serveRegion("serve-standby")
        const { awaitEvent, events, serving } = yield* standbyServe(region)
        const { brokers, pids } = yield* awaitEvent("ready", 120_000)
        expect([...serving.roles()].sort((a, b) => a - b)).toEqual(
          [pids.head, pids.standby, ...pids.brokers].sort((a, b) => a - b)
        )
        process.kill(pids.head, "SIGKILL")
        expect(yield* awaitEvent("takeover", 60_000)).toMatchObject({ pid: pids.standby, epoch: 2 })
        // Serving on through the standby.
        expect(serving.child.exitCode, serving.output()).toBe(null)
        const read = yield* runCli(
          ["publish", "--brokers", brokers, "--region", region, "--topic", "events"],
          "after the takeover\n"
        ).pipe(
          Effect.zipRight(
            runCli(["subscribe", "--brokers", brokers, "--region", region, "--topic", "events", "--limit", "1"])
          )
        )
        expect(read.stdout).toBe("0\tafter the takeover\n")
        process.kill(pids.brokers[0], "SIGKILL")
        const exit = yield* serving.exited.pipe(Effect.timeoutFail({
          duration: "30 seconds",
          onTimeout: () => new Error(`serve still runs 30 s after its broker died:\n${serving.output()}`)
        }))
        expect(exit, serving.output()).toEqual({ code: 1, signal: null })
        expect(serving.output()).toContain(
          `cxlog serve: broker 0 (pid ${pids.brokers[0]}) exited with SIGKILL; serve stopped the rest`
        )
        expect(
          events().filter((e) => e.event === "exited").map((e) => `${e.role}: ${e.signal ?? e.code}`)
        ).toEqual(["head: SIGKILL", "broker 0: SIGKILL", "standby: 0"])
        expect(events().at(-1)).toEqual({ event: "stopped" })
        expect([pids.head, pids.standby, ...pids.brokers].filter(running)).toEqual([])
        expect(existsSync(`/dev/shm/${region}`)).toBe(false)
      }),
    240_000
  )

  it.scopedLive(
    "--detach returns once the server is ready, leaving it running; --stop stops it as Ctrl-C would",
    () =>
      Effect.gen(function*() {
        const region = yield* serveRegion("serve-detach")
        yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(serveLogPath(region), { force: true })))
        const detached = yield* runCli(["serve", "--detach", "--region", region, "--port", "0", "--broker-count", "1"])
        expect(detached.code, detached.stderr).toBe(0)
        const pid = Number(/runs in the background \(pid (\d+)\)/.exec(detached.stdout)?.[1])
        const roles = [...childrenOf(pid, "head"), ...childrenOf(pid, "broker")]
        yield* Effect.addFinalizer(() =>
          Effect.sync(() => [pid, ...roles].filter(running).forEach((p) => process.kill(p, "SIGKILL")))
        )
        expect(roles).toHaveLength(2)
        const brokers = /^ {2}brokers +--brokers (\S+)$/m.exec(detached.stdout)![1]!
        const read = yield* runCli(
          ["publish", "--brokers", brokers, "--region", region, "--topic", "events"],
          "detached\n"
        ).pipe(
          Effect.zipRight(
            runCli(["subscribe", "--brokers", brokers, "--region", region, "--topic", "events", "--limit", "1"])
          )
        )
        expect(read.stdout).toBe("0\tdetached\n")
        const again = yield* runCli(["serve", "--detach", "--region", region, "--port", "0", "--broker-count", "1"])
        expect(again.code).toBe(1)
        expect(again.stderr).toContain(`cxlog serve: region ${region} is in use: its head (pid ${roles[0]}) still runs`)
        expect(again.stderr).toContain(`(its log: ${serveLogPath(region)})`)

        const stopped = yield* runCli(["serve", "--stop", "--region", region])
        expect(stopped.code, stopped.stderr).toBe(0)
        expect([pid, ...roles].filter(running)).toEqual([])
        expect(existsSync(`/dev/shm/${region}`)).toBe(false)
        expect(readFileSync(serveLogPath(region), "utf8")).toMatch(/\nserve +\| stopped\n/)
        const nothing = yield* runCli(["serve", "--stop", "--region", region])
        expect(nothing.code).toBe(1)
        expect(nothing.stderr).toContain(`no cxlog serve runs region ${region}: there is no such region`)
        // A region left there with no head (one its creator never made, here): --stop says it is there, and what to do.
        writeFileSync(`/dev/shm/${region}`, new Uint8Array(1 << 20))
        const orphan = yield* runCli(["serve", "--stop", "--region", region])
        expect(orphan.code).toBe(1)
        expect(orphan.stderr).toContain(`the region is there but no head serves it`)
        expect(orphan.stderr).toContain(`cxlog regions --remove ${region}`)
      }),
    240_000
  )

  it.scopedLive(
    "SIGKILLed after its standby took over, serve leaves none of its roles running, nor its region or secret file",
    () =>
      Effect.gen(function*() {
        const region = yield* serveRegion("serve-kill-takeover")
        const { awaitEvent, serving } = yield* standbyServe(region)
        const { pids } = yield* awaitEvent("ready", 120_000)
        process.kill(pids.head, "SIGKILL")
        yield* awaitEvent("takeover", 60_000)
        expect(existsSync(defaultSecretPath(region))).toBe(true)
        serving.child.kill("SIGKILL")
        const roles = [pids.standby, ...pids.brokers]
        yield* until(
          () => roles.every((pid: number) => !running(pid)),
          30_000,
          () => `roles ${roles.filter(running).join(", ")} of serve still run after it was SIGKILLed`
        )
        yield* until(
          () => !existsSync(`/dev/shm/${region}`),
          30_000,
          () => `region ${region} is still there after serve was SIGKILLed`
        )
        expect(existsSync(defaultSecretPath(region))).toBe(false)
      }),
    240_000
  )

  it.scopedLive(
    "--metrics-port: a dashboard without --targets finds its roles' endpoints while it serves, and not after",
    () =>
      Effect.gen(function*() {
        const region = yield* serveRegion("serve-announce")
        // The head's metrics port, then broker 0's.
        const metricsPort = yield* freePorts(2)
        const endpoints = [`127.0.0.1:${metricsPort}`, `127.0.0.1:${metricsPort + 1}`]
        const serving = yield* startServe([
          "--region",
          region,
          "--port",
          "0",
          "--broker-count",
          "1",
          "--metrics-port",
          `${metricsPort}`
        ])
        yield* awaitReady(serving)
        expect(discoverTargets()).toEqual(expect.arrayContaining(endpoints))
        serving.interrupt()
        expect((yield* serving.exited.pipe(Effect.timeout("60 seconds"))).code).toBe(0)
        expect(discoverTargets()).not.toContain(endpoints[0])
      }),
    240_000
  )

  it.scopedLive(
    "its stdout's reader gone (| head), serve stops its roles and removes its region, exit 0",
    () =>
      Effect.gen(function*() {
        const region = yield* serveRegion("serve-unread")
        const serving = yield* startServe(["--region", region, "--port", "0", "--broker-count", "1"])
        yield* awaitReady(serving)
        const roles = serving.roles()
        expect(roles).toHaveLength(2)
        serving.child.stdout!.destroy()
        const exit = yield* serving.exited.pipe(Effect.timeoutFail({
          duration: "60 seconds",
          onTimeout: () => new Error(`serve ran on 60 s after its stdout closed:\n${serving.output()}`)
        }))
        expect(exit.code, serving.output()).toBe(0)
        expect(roles.filter(running)).toEqual([])
        expect(existsSync(`/dev/shm/${region}`)).toBe(false)
      }),
    240_000
  )

  it.scopedLive("SIGKILLed, serve leaves none of its roles running, nor its region", () =>
    Effect.gen(function*() {
      const region = yield* serveRegion("serve-kill")
      const serving = yield* startServe(["--region", region, "--port", "0", "--broker-count", "1"])
      yield* awaitReady(serving)
      const roles = serving.roles()
      expect(roles).toHaveLength(2)
      serving.child.kill("SIGKILL")
      yield* until(() => roles.every((pid) => !running(pid)), 30_000, () =>
        `roles ${roles.filter(running).join(", ")} of serve still run after it was SIGKILLed`)
      yield* until(
        () =>
          !existsSync(`/dev/shm/${region}`),
        30_000,
        () =>
          `region ${region} is still there after serve was SIGKILLed`
      )
    }), 240_000)
})
