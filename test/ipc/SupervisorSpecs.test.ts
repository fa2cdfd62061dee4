/**
 * A supervisor in this process, without a region: what its `start` refuses before it starts
 * anything (SupervisorSpecInvalid: a spec giving neither or both of script and command, a name
 * whose instances run already), what a child is started with and told of itself, and a shutdown
 * that restarts nothing whatever the policy. Its children here are plain Node processes; the
 * supervisor's scope stops them.
 */
import { describe, expect, it, vi } from "@effect/vitest"
import { Chunk, Context, Effect, Layer, Option, Queue, Schedule, Stream, Take } from "effect"
import { readFileSync, realpathSync } from "node:fs"
import { join } from "node:path"
import * as SupervisorLayers from "../../src/layers/ipc/Supervisor.js"
import { Supervisor } from "../../src/services/ipc/Supervisor.js"
import { isRunning, tempDir } from "../helpers/Processes.js"

/** A child that runs until it is stopped (or a minute passed). */
const waiting = { command: process.execPath, args: ["-e", "setTimeout(() => {}, 60000)"], output: "ignore" } as const

describe("Supervisor's specs", () => {
  it.scopedLive("start refuses a spec with neither or both of script and command, and a name that runs already, starting nothing for it", () =>
    Effect.gen(function*() {
      const supervisor = Context.get(yield* Layer.build(SupervisorLayers.layer), Supervisor)
      expect(yield* Effect.flip(supervisor.start({ name: "none" }))).toMatchObject({
        _tag: "SupervisorSpecInvalid",
        name: "none",
        reason: "give one of script and command"
      })
      expect(yield* Effect.flip(supervisor.start({ name: "both", script: "x.mjs", ...waiting }))).toMatchObject({
        _tag: "SupervisorSpecInvalid",
        name: "both",
        reason: "give one of script and command"
      })
      expect(yield* supervisor.children).toEqual([])
      expect(yield* supervisor.start({ name: "w", count: 2, restart: "never", ...waiting })).toEqual(["w#0", "w#1"])
      const running = supervisor.children.pipe(
        Effect.filterOrFail((all) => all.length > 0 && all.every((c) => c.pid !== undefined)),
        Effect.retry(Schedule.spaced("10 millis")),
        Effect.timeout("30 seconds")
      )
      const first = yield* running
      const pids = first.map((c) => c.pid!)
      // Killed at the end whatever the supervisor did with them: one it lost track of would outlive the test.
      yield* Effect.addFinalizer(() =>
        Effect.sync(() => pids.filter(isRunning).forEach((pid) => process.kill(pid, "SIGKILL")))
      )
      expect(yield* Effect.flip(supervisor.start({ name: "w", restart: "never", ...waiting }))).toMatchObject({
        _tag: "SupervisorSpecInvalid",
        name: "w",
        reason: "a child of this name runs already"
      })
      // The two of the first start, each running once as before; the refused one started none.
      const children = yield* running
      expect(children.map((c) => [c.child, c.state, c.restarts, c.pid])).toEqual([
        ["w#0", "running", 0, pids[0]],
        ["w#1", "running", 0, pids[1]]
      ])
      expect(new Set(pids).size).toBe(2)
      expect(yield* supervisor.shutdown).toMatchObject({ stopped: 2, killed: 0 })
      expect(pids.filter(isRunning)).toEqual([])
    }))

  it.scopedLive("a shutdown restarts nothing: children of policy always that its SIGTERM ended are told exited, and none starts again", () =>
    Effect.gen(function*() {
      const supervisor = Context.get(yield* Layer.build(SupervisorLayers.layer), Supervisor)
      const events = yield* Stream.toQueue(supervisor.events)
      yield* supervisor.start({ name: "a", count: 2, restart: "always", backoffMs: 0, ...waiting })
      const first = yield* supervisor.children.pipe(
        Effect.filterOrFail((all) => all.length === 2 && all.every((c) => c.pid !== undefined)),
        Effect.retry(Schedule.spaced("10 millis")),
        Effect.timeout("30 seconds")
      )
      const pids = first.map((c) => c.pid!)
      yield* Effect.addFinalizer(() =>
        Effect.sync(() => pids.filter(isRunning).forEach((pid) => process.kill(pid, "SIGKILL")))
      )
      expect(yield* supervisor.shutdown).toMatchObject({ stopped: 2, killed: 0 })
      // Every event to the end (the stream ends with ShutdownDone): from ShutdownStarted on, exits only.
      const told: Array<string> = []
      for (;;) {
        const taken = yield* Queue.take(events).pipe(Effect.flatMap(Take.done), Effect.option)
        if (taken._tag === "None") break
        for (const event of taken.value) told.push(event._tag)
      }
      const after = told.slice(told.indexOf("ShutdownStarted"))
      expect(after).toEqual(["ShutdownStarted", "ChildExited", "ChildExited", "ShutdownDone"])
      expect(pids.filter(isRunning)).toEqual([])
      expect((yield* supervisor.children).map((c) => [c.state, c.pid, c.restarts])).toEqual([
        ["stopped", undefined, 0],
        ["stopped", undefined, 0]
      ])
    }))

  it.scopedLive("a child runs with its spec's args, env and cwd, told its name, supervisor and restarts in CXLOG_SUPERVISED_*", () =>
    Effect.gen(function*() {
      const dir = realpathSync(yield* tempDir("cxlog-supervised-"))
      const supervisor = Context.get(yield* Layer.build(SupervisorLayers.layer), Supervisor)
      const events = yield* Stream.toQueue(supervisor.events)
      // Fails its first run (exit 3) after saying what it was given, and is restarted once (on-failure).
      const says = [
        "const fs = require('fs'); const e = process.env",
        "const out = `${process.cwd()}/run-${e.CXLOG_SUPERVISED_RESTARTS}.json`",
        "fs.writeFileSync(out, JSON.stringify({ arg: process.argv[1], x: e.SPEC_ENV_X, name: e.CXLOG_SUPERVISED_NAME, by: e.CXLOG_SUPERVISED_BY, cwd: process.cwd() }))",
        "process.exit(e.CXLOG_SUPERVISED_RESTARTS === '0' ? 3 : 0)"
      ].join("; ")
      yield* supervisor.start({
        name: "told",
        command: process.execPath,
        args: ["-e", says, "an-arg"],
        env: { SPEC_ENV_X: "x-value" },
        cwd: dir,
        restart: "on-failure",
        backoffMs: 0,
        output: "ignore"
      })
      const exits: Array<number | null> = []
      while (exits.length < 2) {
        const taken = yield* Queue.take(events).pipe(Effect.flatMap(Take.done), Effect.timeout("30 seconds"))
        for (const event of taken) if (event._tag === "ChildExited") exits.push(event.exit.code)
      }
      expect(exits).toEqual([3, 0])
      const told = { arg: "an-arg", x: "x-value", name: "told#0", by: String(process.pid), cwd: dir }
      expect(JSON.parse(readFileSync(join(dir, "run-0.json"), "utf8"))).toEqual(told)
      expect(JSON.parse(readFileSync(join(dir, "run-1.json"), "utf8"))).toEqual(told)
    }))

  it.scopedLive("a child whose cwd is not there is not started, its reason naming the directory rather than its program", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("cxlog-supervised-")
      const supervisor = Context.get(yield* Layer.build(SupervisorLayers.layer), Supervisor)
      const events = yield* Stream.toQueue(supervisor.events)
      yield* supervisor.start({ name: "lost", cwd: join(dir, "gone"), restart: "never", ...waiting })
      for (;;) {
        const taken = yield* Queue.take(events).pipe(Effect.flatMap(Take.done), Effect.timeout("30 seconds"))
        const exited = taken.pipe(Chunk.findFirst((e) => e._tag === "ChildExited"))
        if (Option.isNone(exited)) continue
        expect(exited.value).toMatchObject({
          exit: { code: 127, signal: null },
          reason: `not started: spawn ${process.execPath} ENOENT: no directory ${join(dir, "gone")} to run in (cwd)`
        })
        return
      }
    }))

  it.scopedLive("a program that could not be started signals no one and is not told started: its pid is none, and -(-1) is init's", () =>
    Effect.gen(function*() {
      const kill = vi.spyOn(process, "kill")
      yield* Effect.addFinalizer(() => Effect.sync(() => kill.mockRestore()))
      const supervisor = Context.get(yield* Layer.build(SupervisorLayers.layer), Supervisor)
      const events = yield* Stream.toQueue(supervisor.events)
      yield* supervisor.start({ name: "absent", command: "cxlog-no-such-program", restart: "never", output: "ignore" })
      const exits: Array<number | null> = []
      const started: Array<number> = []
      while (exits.length === 0) {
        const taken = yield* Queue.take(events).pipe(Effect.flatMap(Take.done), Effect.timeout("30 seconds"))
        for (const event of taken) {
          if (event._tag === "ChildExited") exits.push(event.exit.code)
          if (event._tag === "ChildStarted") started.push(event.pid)
        }
      }
      expect(exits).toEqual([127])
      // Told exited with why, never started with a pid of -1.
      expect(started).toEqual([])
      expect(kill.mock.calls.filter(([pid]) => pid === 1 || pid === -1)).toEqual([])
    }))
})
