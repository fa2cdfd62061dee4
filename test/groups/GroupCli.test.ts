/**
 * `cxlog consume` and `cxlog groups` as a user runs them on the region's host (the bundled CLI,
 * a real head): consume prints and acks, `--exec` acks what its command finished and delivers
 * again what failed, up to the dead letters; `groups pending` shows the member holding a message,
 * and a member SIGKILLed while it holds one hands it to the next member at once (the group's
 * ackWait is ten minutes: only its death can hand it on); `--exec` runs what the member holds
 * at once, a key's messages in order when the group is byKey, and a member stopped or killed
 * stops every process its commands started (SIGKILLed after a grace period when they ignore
 * SIGTERM; a member stopped leaves only then). Through a broker (`--brokers`), `--limit` gives back
 * unseen what the broker sent past it.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Schedule } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import { existsSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { isPidStopped, processGroupRuns, procStat } from "../../src/layers/region/ProcessInfo.js"
import { Publisher } from "../../src/services/net/Publisher.js"
import { regionClient } from "../fixtures/groups-harness.js"
import { cli as cliPath, forkCli, runCliWithin } from "../helpers/CliRoles.js"
import { cliOk, groupsHead } from "../helpers/GroupCli.js"
import { isRunning, killGroupsAtEnd, tempDir } from "../helpers/Processes.js"

const head = groupsHead("group-cli", ["jobs", "dead"])

/** Publishes `lines` to `topic` with `cxlog publish --local` (a message per line of its stdin), keyed k1. */
const publishLines = (env: Record<string, string>, topic: string, lines: ReadonlyArray<string | Buffer>) =>
  Effect.async<void, Error>((resume) => {
    const child = spawn(process.execPath, [cliPath, "publish", "--local", "--topic", topic, "--key", "k1"], {
      stdio: ["pipe", "ignore", "pipe"],
      env: { ...process.env, ...env }
    })
    let stderr = ""
    child.stderr!.on("data", (c: Buffer) => (stderr += c.toString()))
    child.on(
      "close",
      (code) => resume(code === 0 ? Effect.void : Effect.fail(new Error(`cxlog publish: exit ${code}: ${stderr}`)))
    )
    child.stdin!.end(Buffer.concat(lines.map((line) => Buffer.concat([Buffer.from(line), Buffer.from("\n")]))))
    return Effect.sync(() => child.kill("SIGKILL"))
  }).pipe(Effect.timeout("30 seconds"))

describe("cxlog consume and cxlog groups", () => {
  it.scopedLive(
    "consume prints and acks; --exec acks what succeeded and sends what keeps failing to the dead letters",
    () =>
      Effect.gen(function*() {
        const env = yield* head
        yield* publishLines(env, "jobs", ["alpha", "beta", "gamma"])
        const printed = yield* cliOk(
          ["consume", "--group", "printer", "--topic", "jobs", "--limit", "3", "--json"],
          env
        )
        expect(printed.trim().split("\n").map((l) => JSON.parse(l))).toMatchObject([
          { group: "printer", offset: 0, deliveryCount: 1, key: "k1", value: "alpha" },
          { offset: 1, value: "beta" },
          { offset: 2, value: "gamma" }
        ])
        const exec =
          "cat >/dev/null; echo \"ran $CONSUME_OFFSET $CONSUME_DELIVERY_COUNT\"; [ \"$CONSUME_OFFSET\" != 1 ]"
        const runner = yield* runCliWithin(
          [
            "consume",
            "--group",
            "runner",
            "--topic",
            "jobs",
            "--dead-letter-topic",
            "dead",
            "--max-deliver",
            "2",
            "--exec",
            exec,
            "--limit",
            "4"
          ],
          env,
          30_000
        )
        expect(runner.code, runner.stderr).toBe(0)
        expect(runner.stdout.trim().split("\n").sort()).toEqual(["ran 0 1", "ran 1 1", "ran 1 2", "ran 2 1"])
        // Each failed command is one line on stderr: which message, how it ended, where it goes now.
        expect(runner.stderr.trim().split("\n")).toEqual([
          "cxlog consume: offset 1 (delivery 1 of 2): the command exited 1; it is delivered again",
          "cxlog consume: offset 1 (delivery 2 of 2): the command exited 1; that was its last delivery (maxDeliver): it goes to the dead-letter topic dead"
        ])
        const empty = yield* runCliWithin(["consume", "--group", "runner", "--exec", " "], env, 30_000)
        expect(empty.code).toBe(2)
        expect(empty.stderr.trim()).toBe("cxlog consume: --exec: the value is empty: give a CMD")
        const { groups } = JSON.parse(yield* cliOk(["groups", "--json"], env))
        expect(groups).toMatchObject([
          { name: "printer", acked: 3, pending: 0, deadLetters: 0 },
          { name: "runner", acked: 2, pending: 0, redeliveries: 1, deadLetters: 1, deadLetterTopic: "dead" }
        ])
        const dead = JSON.parse(yield* cliOk(["subscribe", "--topic", "dead", "--limit", "1", "--format", "json"], env))
        expect(dead).toMatchObject({ key: "k1", payload: "beta" })
        expect(dead.headers).toContainEqual({
          name: "cxlog-dead-letter-reason",
          value: "term: the command exited 1 on delivery 2 of 2"
        })
        // A command killed by a signal is said to be, by the signal's name (not as "exited 128"), in its dead letter too.
        const killed = yield* runCliWithin(
          [
            "consume",
            "--group",
            "killed",
            "--topic",
            "jobs",
            "--dead-letter-topic",
            "dead",
            "--max-deliver",
            "1",
            "--exec",
            "cat >/dev/null; kill -KILL $$",
            "--limit",
            "1"
          ],
          env,
          30_000
        )
        expect(killed.code, killed.stderr).toBe(0)
        expect(killed.stderr.trim()).toBe(
          "cxlog consume: offset 0 (delivery 1 of 1): the command was killed by SIGKILL; that was its last delivery (maxDeliver): it goes to the dead-letter topic dead"
        )
        const deadLines = yield* cliOk(["subscribe", "--topic", "dead", "--limit", "2", "--format", "json"], env)
        expect(JSON.parse(deadLines.trim().split("\n")[1]!).headers).toContainEqual({
          name: "cxlog-dead-letter-reason",
          value: "term: the command was killed by SIGKILL on delivery 1 of 1"
        })
        // A value that is not UTF-8 is printed in base64, as cxlog subscribe prints it, not with its bytes replaced.
        const latin1 = Buffer.from([0x63, 0x61, 0x66, 0xe9])
        yield* publishLines(env, "jobs", [latin1])
        const opts = ["--group", "printer", "--limit", "1"]
        const json = JSON.parse(yield* cliOk(["consume", ...opts, "--json"], env))
        expect(json).toMatchObject({ offset: 3, valueBase64: latin1.toString("base64") })
        expect(json.value).toBeUndefined()
        yield* publishLines(env, "jobs", [latin1])
        expect(yield* cliOk(["consume", ...opts], env)).toBe(`4 [k1] ${latin1.toString("base64")}\n`)
        // A failed command's message is nak'd with --nak-delay-ms: it waits, no member's, due that long after.
        const before = Date.now()
        yield* cliOk([
          "consume",
          "--group",
          "later",
          "--topic",
          "jobs",
          "--exec",
          "exit 1",
          "--nak-delay-ms",
          "600000",
          "--limit",
          "1"
        ], env)
        expect(JSON.parse(yield* cliOk(["groups", "pending", "later", "--json"], env))).toMatchObject([
          {
            offset: 0,
            state: "waiting",
            deliveries: 1,
            deadlineMs: expect.toSatisfy((due: number) => due >= before + 600_000)
          }
        ])
        // The longest delay the flag takes is one a nak takes: the member naks with it and leaves as it should.
        yield* cliOk(
          [
            "consume",
            "--group",
            "latest",
            "--topic",
            "jobs",
            "--exec",
            "exit 1",
            "--nak-delay-ms",
            "4294967295",
            "--limit",
            "1"
          ],
          env
        )
        expect(JSON.parse(yield* cliOk(["groups", "pending", "latest", "--json"], env))).toMatchObject([
          { offset: 0, state: "waiting", deadlineMs: expect.toSatisfy((due: number) => due >= before + 4_294_967_295) }
        ])
      }),
    120_000
  )

  it.scopedLive(
    "--exec: a key no environment holds as text (a NUL, bytes that are not UTF-8) comes in CONSUME_KEY_BASE64 alone; every message runs once, none crashing the member",
    () =>
      Effect.gen(function*() {
        const env = yield* head
        const keys = [Buffer.from("a\0b"), Buffer.from([0x63, 0x61, 0x66, 0xe9]), Buffer.from("plain")]
        // cxlog publish takes its key as an argument, which cannot hold a NUL: published from here.
        yield* Effect.gen(function*() {
          const publisher = yield* Publisher
          for (const [i, key] of keys.entries()) yield* publisher.publish(new TextEncoder().encode(`v${i}`), { key })
          yield* publisher.flush(10_000)
        }).pipe(Effect.provide(regionClient(env["CXLOG_REGION"]!, "jobs")))
        const exec = "cat >/dev/null; echo \"$CONSUME_OFFSET ${CONSUME_KEY-none} $CONSUME_KEY_BASE64\""
        const run = yield* runCliWithin(
          ["consume", "--group", "keys", "--topic", "jobs", "--limit", "3", "--exec", exec],
          env,
          30_000
        )
        // Before, spawn refused the NUL key's environment: the member died with the others it held.
        expect(run.code, run.stderr).toBe(0)
        expect(run.stdout.trim().split("\n").sort()).toEqual([
          `0 none ${keys[0]!.toString("base64")}`,
          `1 none ${keys[1]!.toString("base64")}`,
          `2 plain ${keys[2]!.toString("base64")}`
        ])
        expect(JSON.parse(yield* cliOk(["groups", "describe", "keys", "--json"], env))).toMatchObject({
          acked: 3,
          pending: 0,
          redeliveries: 0
        })
      }),
    120_000
  )

  it.scopedLive(
    "--idle-exit-ms: takes what is there, leaves once the group gives nothing for that long, never while a command runs",
    () =>
      Effect.gen(function*() {
        const env = yield* head
        yield* publishLines(env, "jobs", ["a", "b", "c"])
        // Each command outlasts the idle bound many times over: leaving while one ran would lose its line.
        const slow = "cat >/dev/null; sleep 1; echo \"ran $CONSUME_OFFSET\""
        const drained = yield* cliOk(
          [
            "consume",
            "--group",
            "drain",
            "--topic",
            "jobs",
            "--max-in-flight",
            "1",
            "--idle-exit-ms",
            "200",
            "--exec",
            slow
          ],
          env
        )
        expect(drained.trim().split("\n")).toEqual(["ran 0", "ran 1", "ran 2"])
        expect(JSON.parse(yield* cliOk(["groups", "describe", "drain", "--json"], env))).toMatchObject({
          pending: 0,
          acked: 3,
          members: []
        })
        // Nothing there at all: it leaves after the bound, having printed nothing.
        expect(yield* cliOk(["consume", "--group", "drain", "--idle-exit-ms", "200"], env)).toBe("")
      }),
    120_000
  )

  it.scopedLive(
    "--exec runs every message it holds at once: none waits in hand past ackWait, each runs once; byKey, a key's in offset order",
    () =>
      Effect.gen(function*() {
        const env = yield* head
        // Six commands of 1.2 s each against an ackWait of 1 s: run one after another, the later
        // ones would wait in hand past their deadline, and the second member would take them over
        // and run them again.
        yield* publishLines(env, "jobs", ["a", "b", "c", "d", "e", "f"])
        const slow = "cat >/dev/null; sleep 1.2; echo \"ran $CONSUME_OFFSET $CONSUME_DELIVERY_COUNT\""
        const options = ["--topic", "jobs", "--ack-wait-ms", "1000", "--max-in-flight", "6", "--exec", slow]
        const holder = yield* forkCli(["consume", "--group", "pool", ...options, "--limit", "6"], env)
        yield* holder.event("delivered")
        const other = yield* forkCli(["consume", "--group", "pool", "--exec", slow], env)
        expect((yield* holder.exited).code, holder.output()).toBe(0)
        const ran = `${holder.output()}${other.output()}`.trim().split("\n").sort()
        expect(ran).toEqual([0, 1, 2, 3, 4, 5].map((offset) => `ran ${offset} 1`))
        expect(JSON.parse(yield* cliOk(["groups", "describe", "pool", "--json"], env))).toMatchObject({
          pending: 0,
          acked: 6,
          redeliveries: 0,
          expired: 0
        })
        // byKey (every message here is keyed k1): one after another, each started once the one before ended.
        const logged = "cat >/dev/null; echo \"start $CONSUME_OFFSET\"; sleep 0.3; echo \"end $CONSUME_OFFSET\""
        const keyed = yield* cliOk(
          ["consume", "--group", "keyed", ...options.slice(0, -1), logged, "--by-key", "--limit", "6"],
          env
        )
        expect(keyed.trim().split("\n")).toEqual(
          [0, 1, 2, 3, 4, 5].flatMap((offset) => [`start ${offset}`, `end ${offset}`])
        )
      }),
    120_000
  )

  it.scopedLive(
    "a member stopped (SIGTERM) or killed (SIGKILL) stops its commands and what they started: none runs on beside the next delivery",
    () =>
      Effect.gen(function*() {
        const env = yield* head
        const dir = yield* tempDir("consume-commands-")
        yield* publishLines(env, "jobs", ["long job"])
        yield* cliOk(["groups", "create", "stoppable", "--topic", "jobs", "--ack-wait-ms", "600000"], env)
        // The command starts a process of its own and waits for it: the shell alone is not the whole command.
        const started = join(dir, "started")
        const command = `cat >/dev/null; sleep 300 & echo $! >> ${started}; wait`
        const startedPids =
          () => (existsSync(started) ? readFileSync(started, "utf8").trim().split("\n").map(Number) : [])
        /** Waits (bounded) until the command's own process of run `n` is there, then until it is gone once `stop` ran. */
        const stoppedWith = (n: number, stop: (child: ChildProcess) => void) =>
          Effect.gen(function*() {
            const member = yield* forkCli(["consume", "--group", "stoppable", "--exec", command], env)
            yield* member.event("delivered")
            yield* Effect.sync(() => startedPids().length >= n).pipe(
              Effect.repeat({ until: (there) => there, schedule: Schedule.spaced("20 millis") }),
              Effect.timeout("20 seconds")
            )
            const pid = startedPids()[n - 1]!
            expect(isRunning(pid)).toBe(true)
            stop(member.child)
            // Its exit, not its pipes' close: a process it left running would hold those open.
            yield* Effect.async<void>((resume) => {
              if (member.child.exitCode !== null || member.child.signalCode !== null) return resume(Effect.void)
              member.child.once("exit", () => resume(Effect.void))
            }).pipe(Effect.timeout("20 seconds"))
            yield* Effect.sync(() => isRunning(pid)).pipe(
              Effect.repeat({ until: (up) => !up, schedule: Schedule.spaced("20 millis") }),
              Effect.timeout("10 seconds")
            )
          })
        yield* stoppedWith(1, (child) => child.kill("SIGTERM"))
        // The message goes to the next member (delivered again), which is then killed outright.
        yield* stoppedWith(2, (child) => child.kill("SIGKILL"))
      }),
    120_000
  )

  it.scopedLive(
    "a command stopped (SIGSTOP) is continued after its SIGTERM, so its trap runs: the member stopped, and killed (its watcher)",
    () =>
      Effect.gen(function*() {
        const env = yield* head
        const dir = yield* tempDir("consume-stopped-commands-")
        yield* publishLines(env, "jobs", ["job"])
        yield* cliOk(["groups", "create", "frozen", "--topic", "jobs", "--ack-wait-ms", "600000"], env)
        // The command says its pid, then stops itself; told SIGTERM, its trap writes down that it ran.
        const started = join(dir, "started")
        const termed = join(dir, "termed")
        const command =
          `cat >/dev/null; trap 'echo $$ >> ${termed}; exit 0' TERM; echo $$ >> ${started}; kill -STOP $$; exit 1`
        const lines = (file: string) =>
          existsSync(file) ? readFileSync(file, "utf8").trim().split("\n").map(Number) : []
        // A command left stopped by a failure goes with the test.
        yield* killGroupsAtEnd(() => lines(started))
        const stoppedWith = (n: number, stop: (child: ChildProcess) => void) =>
          Effect.gen(function*() {
            const member = yield* forkCli(["consume", "--group", "frozen", "--exec", command], env)
            yield* Effect.sync(() => lines(started).length >= n && isPidStopped(lines(started)[n - 1]!)).pipe(
              Effect.repeat({ until: (there) => there, schedule: Schedule.spaced("20 millis") }),
              Effect.timeout("20 seconds")
            )
            const pid = lines(started)[n - 1]!
            stop(member.child)
            // Continued after its SIGTERM, it runs its trap at once, not SIGKILLed after the grace period.
            yield* Effect.sync(() => lines(termed).includes(pid)).pipe(
              Effect.repeat({ until: (ran) => ran, schedule: Schedule.spaced("20 millis") }),
              Effect.timeoutFail({
                duration: "10 seconds",
                onTimeout: () =>
                  new Error(
                    `member ${n}: its command ${pid} ran no trap within 10 s (command state ${
                      procStat(pid)?.state ?? "gone"
                    }, member exit ${member.child.exitCode ?? member.child.signalCode}, termed ${
                      JSON.stringify(lines(termed))
                    }): ${member.output()}`
                  )
              })
            )
          })
        yield* stoppedWith(1, (child) => child.kill("SIGTERM"))
        yield* stoppedWith(2, (child) => child.kill("SIGKILL"))
      }),
    120_000
  )

  it.scopedLive(
    "a command that ignores SIGTERM: its member stopped SIGKILLs it after the grace period before the next member is given its message; killed, its watcher does",
    () =>
      Effect.gen(function*() {
        const env = yield* head
        const dir = yield* tempDir("consume-stubborn-")
        yield* cliOk(["groups", "create", "stubborn", "--topic", "jobs", "--ack-wait-ms", "600000"], env)
        // Each run writes its process group and runs on until SIGKILLed: SIGTERM is ignored, by its children too.
        const started = join(dir, "started")
        const command = `cat >/dev/null; trap "" TERM; echo $$ >> ${started}; while :; do sleep 0.05; done`
        const groups = () => (existsSync(started) ? readFileSync(started, "utf8").trim().split("\n").map(Number) : [])
        yield* killGroupsAtEnd(groups)
        const runs = (n: number) =>
          Effect.sync(() => groups().length >= n).pipe(
            Effect.repeat({ until: (there) => there, schedule: Schedule.spaced("20 millis") }),
            Effect.timeout("20 seconds")
          )
        const member = () => forkCli(["consume", "--group", "stubborn", "--exec", command], env)
        const first = yield* member()
        yield* publishLines(env, "jobs", ["stubborn job"])
        yield* runs(1)
        const next = yield* member()
        first.child.kill("SIGTERM")
        // The next member is given the message only once the first left, after its command was gone.
        yield* runs(2)
        expect(processGroupRuns(groups()[0]!), "the first run still ran when the next member was given its message")
          .toBe(
            false
          )
        yield* first.exited
        // Killed outright, the member leaves its watcher to stop the run: SIGTERM, then SIGKILL after the grace period.
        next.child.kill("SIGKILL")
        yield* Effect.sync(() => processGroupRuns(groups()[1]!)).pipe(
          Effect.repeat({ until: (up) => !up, schedule: Schedule.spaced("20 millis") }),
          Effect.timeout("10 seconds")
        )
      }),
    120_000
  )

  it.scopedLive(
    "groups pending shows who holds a message; SIGKILLed, the member hands it to the next at once",
    () =>
      Effect.gen(function*() {
        const env = yield* head
        yield* publishLines(env, "jobs", ["slow job"])
        yield* cliOk(["groups", "create", "slow", "--topic", "jobs", "--ack-wait-ms", "600000"], env)
        // Its command holds the message until the member is gone (and then ends: no process outlives the test).
        const holdWhileParentLives = "exec >/dev/null 2>&1; while kill -0 $PPID; do sleep 0.05; done"
        const stuck = yield* forkCli(["consume", "--group", "slow", "--exec", holdWhileParentLives], env)
        expect(yield* stuck.event("delivered")).toMatchObject({ offset: 0, deliveryCount: 1 })
        const pending = JSON.parse(yield* cliOk(["groups", "pending", "slow", "--json"], env))
        expect(pending).toMatchObject([{ offset: 0, state: "delivered", memberPid: stuck.pid, deliveries: 1 }])
        const listed = yield* cliOk(["groups", "pending", "slow"], env)
        expect(listed).toContain(`${stuck.pid}`)
        // The list as a user reads it: one member, one pending (its age there, not "-"), nothing redelivered or dead.
        expect(yield* cliOk(["groups"], env)).toMatch(
          /^slow\s+jobs\s+-\s+1\s+1\s+\d+(\.\d)?(ms|s)\s+0\s+0\s+0\s+0\s*$/m
        )
        stuck.child.kill("SIGKILL")
        yield* stuck.exited
        const next = yield* cliOk(["consume", "--group", "slow", "--limit", "1", "--json"], env)
        expect(JSON.parse(next)).toMatchObject({ offset: 0, deliveryCount: 2, value: "slow job" })
        expect(JSON.parse(yield* cliOk(["groups", "describe", "slow", "--json"], env))).toMatchObject({
          pending: 0,
          acked: 1,
          redeliveries: 1,
          expired: 0
        })
      }),
    120_000
  )

  it.scopedLive(
    "a group name the directory cannot hold is refused as a bad name (a usage mistake), not as the coordinator's failure",
    () =>
      Effect.gen(function*() {
        const env = yield* head
        const refused = (name: string) =>
          Effect.map(runCliWithin(["groups", "create", name, "--topic", "jobs"], env, 30_000), (run) => {
            expect(run.code).toBe(2)
            return run.stderr.trim()
          })
        expect(yield* refused("")).toBe(`cxlog groups: invalid name "": a name has at least one character`)
        expect(yield* refused("g".repeat(129))).toBe(
          `cxlog groups: invalid name "${"g".repeat(129)}": a name has at most 128 bytes of UTF-8 (this one has 129)`
        )
        expect(yield* cliOk(["groups", "--json"], env)).toBe(`{"groups":[]}\n`)
      }),
    120_000
  )

  it.scopedLive(
    "a consume --topic refused for its member (a window that cannot be, or past the pending table) leaves no group behind",
    () =>
      Effect.gen(function*() {
        const env = yield* head
        const refused = (args: ReadonlyArray<string>) =>
          Effect.map(runCliWithin(["consume", "--topic", "jobs", ...args], env, 30_000), (run) => {
            expect(run.code, run.stderr).not.toBe(0)
            return run.stderr
          })
        // A window no member can have is refused by the flag itself, before anything is made.
        expect(yield* refused(["--group", "wide", "--max-in-flight", "2000000"])).toContain(
          "--max-in-flight: 2000000 is above 1048576"
        )
        expect(yield* refused(["--group", "narrow", "--pending-slots", "4", "--max-in-flight", "8"])).toContain(
          "its members would hold 8 messages at once, its pending table has 4 entries"
        )
        // Neither holds the topic's retention or one of its subscriber lines for a member that never came.
        expect(yield* cliOk(["groups", "--json"], env)).toBe(`{"groups":[]}\n`)
        // A group that was there before is not the refused member's to delete.
        yield* cliOk(["groups", "create", "narrow", "--topic", "jobs", "--pending-slots", "4"], env)
        yield* refused(["--group", "narrow", "--pending-slots", "4", "--max-in-flight", "8"])
        expect(JSON.parse(yield* cliOk(["groups", "--json"], env)).groups).toMatchObject([{ name: "narrow" }])
      }),
    120_000
  )

  it.scopedLive(
    "consume --limit takes no more than its limit, and gives back unseen what it took past it: runs in turn never push a message to the dead letters",
    () =>
      Effect.gen(function*() {
        const env = yield* head
        yield* publishLines(env, "jobs", ["a", "b", "c", "d", "e", "f"])
        const create = ["--topic", "jobs", "--max-deliver", "2", "--dead-letter-topic", "dead"]
        const seen: Array<unknown> = []
        for (let i = 0; i < 6; i++) {
          // A window of 4 with a limit of 1: the member takes only one at once.
          const line = yield* cliOk([
            "consume",
            "--group",
            "turns",
            ...create,
            "--max-in-flight",
            "4",
            "--limit",
            "1",
            "--json"
          ], env)
          const { deliveryCount, offset } = JSON.parse(line)
          seen.push([offset, deliveryCount])
        }
        expect(seen).toEqual([[0, 1], [1, 1], [2, 1], [3, 1], [4, 1], [5, 1]])
        // The group exists: a consume naming other settings is refused, naming them, not joined.
        const other = yield* runCliWithin(
          ["consume", "--group", "turns", "--topic", "jobs", "--by-key", "--max-deliver", "9", "--limit", "1"],
          env,
          30_000
        )
        expect(other.code).toBe(2)
        expect(other.stderr).toContain(
          "it exists, made with byKey false, maxDeliver 2, not byKey true, maxDeliver 9 (delete it and create it again to change them)"
        )
        expect(JSON.parse(yield* cliOk(["groups", "describe", "turns", "--json"], env))).toMatchObject({
          acked: 6,
          pending: 0,
          redeliveries: 0,
          deadLetters: 0
        })
      }),
    120_000
  )

  it.scopedLive(
    "consume --limit through a broker gives back unseen what the broker sent it past its limit: runs in turn see each message as its first delivery",
    () =>
      Effect.gen(function*() {
        const env = yield* head
        const broker = yield* forkCli(["broker", "--broker-id", "0", "--port", "0"], env)
        const brokers = `127.0.0.1:${(yield* broker.event("listening"))["port"] as number}`
        yield* cliOk(["groups", "create", "lim", "--topic", "jobs", "--start", "latest"], env)
        yield* publishLines(env, "jobs", ["1", "2", "3", "4", "5", "6", "7", "8", "9", "10"])
        const seen: Array<[number, number]> = []
        const consumed = (flags: ReadonlyArray<string>) =>
          Effect.map(cliOk(["consume", "--group", "lim", "--json", "--brokers", brokers, ...flags], env), (out) => {
            for (const printed of out.trim().split("\n")) {
              const { deliveryCount, offset } = JSON.parse(printed)
              seen.push([offset, deliveryCount])
            }
          })
        for (let run = 0; run < 3; run++) {
          // Each ack frees the member's window, and the broker sends it the next messages before it leaves.
          yield* consumed(["--limit", "3"])
          // What the run never showed waits, no member's, never delivered: not one delivery nearer maxDeliver.
          const pending = JSON.parse(yield* cliOk(["groups", "pending", "lim", "--json"], env)) as ReadonlyArray<
            Record<string, unknown>
          >
          expect(pending.filter((p) => p["deliveries"] !== 0), "delivered, never shown").toEqual([])
        }
        yield* consumed(["--idle-exit-ms", "500"])
        expect(seen).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9].map((offset) => [offset, 1]))
        expect(JSON.parse(yield* cliOk(["groups", "describe", "lim", "--json"], env))).toMatchObject({
          acked: 10,
          pending: 0,
          redeliveries: 0
        })
      }),
    120_000
  )

  it.scopedLive(
    "a group behind its topic's retention is marked so in the list, and its description says what it needs",
    () =>
      Effect.gen(function*() {
        const env = yield* head
        yield* publishLines(env, "jobs", ["a", "b", "c"])
        yield* cliOk(["groups", "create", "late", "--topic", "jobs"], env)
        yield* cliOk(["groups", "create", "current", "--topic", "jobs", "--start", "latest"], env)
        // The trim takes the messages the group starts at: it needs offset 0, the topic holds from 2 on.
        yield* cliOk(["topics", "trim", "jobs", "--before", "2"], env)
        const listed = yield* cliOk(["groups"], env)
        expect(listed).toMatch(/^late\s+jobs \(behind\)\s/m)
        expect(listed).toMatch(/^current\s+jobs\s/m)
        expect(yield* cliOk(["groups", "describe", "late"], env)).toContain(
          "behind its topic's retention: it needs offset 0, the topic holds from 2 on; its members fail with GroupBehindRetention"
        )
        expect(yield* cliOk(["groups", "describe", "current"], env)).not.toContain("behind")
        // --start OFFSET: a group made after the trim at the first offset the topic holds is not behind either.
        yield* cliOk(["groups", "create", "from-two", "--topic", "jobs", "--start", "2"], env)
        expect(JSON.parse(yield* cliOk(["groups", "describe", "from-two", "--json"], env))).toMatchObject({
          startOffset: 2,
          frontier: 2,
          lag: 1
        })
      }),
    120_000
  )

  it.scopedLive(
    "a group whose topic was deleted says so to its members, and still when a topic of that name is made again",
    () =>
      Effect.gen(function*() {
        const env = yield* head
        yield* cliOk(["topics", "create", "short-lived"], env)
        yield* cliOk(["groups", "create", "orphan", "--topic", "short-lived"], env)
        const listed = () => Effect.map(cliOk(["groups", "--json"], env), (out) => JSON.parse(out).groups[0])
        expect(yield* listed()).toMatchObject({ name: "orphan", topic: "short-lived", topicGone: false })
        // The group handed out offsets the topic made again will not hold: still gone, not behind.
        yield* publishLines(env, "short-lived", ["one", "two"])
        yield* cliOk(["consume", "--group", "orphan", "--limit", "2"], env)
        expect(yield* listed()).toMatchObject({ frontier: 2 })
        yield* cliOk(["topics", "delete", "short-lived"], env)
        // The listing says so too, not only its members.
        expect(yield* listed()).toMatchObject({ name: "orphan", topicGone: true })
        expect(yield* cliOk(["groups"], env)).toContain("short-lived (deleted)")
        const refused = (stderr: string) =>
          expect(stderr.trim()).toBe(
            `cxlog consume: consumer group "orphan": its topic short-lived was deleted; delete the group`
          )
        const gone = yield* runCliWithin(["consume", "--group", "orphan", "--limit", "1"], env, 30_000)
        expect(gone.code).toBe(1)
        refused(gone.stderr)
        // A new topic of the name is another topic: the group stays with the one it was made on.
        yield* cliOk(["topics", "create", "short-lived"], env)
        expect(yield* listed()).toMatchObject({ name: "orphan", topicGone: true })
        const again = yield* runCliWithin(["consume", "--group", "orphan", "--limit", "1"], env, 30_000)
        expect(again.code).toBe(1)
        refused(again.stderr)
      }),
    120_000
  )

  it.scopedLive(
    "a member whose ack comes after the message was taken over says so: not settled, and another member may run it again",
    () =>
      Effect.gen(function*() {
        const env = yield* head
        yield* publishLines(env, "jobs", ["x"])
        // Its command stops the member itself (SIGSTOP), as a frozen process would be, past its ackWait.
        const options = ["--group", "late", "--topic", "jobs", "--ack-wait-ms", "1000", "--limit", "1"]
        const frozen = yield* forkCli(["consume", ...options, "--exec", "cat >/dev/null; kill -STOP $PPID"], env)
        yield* Effect.repeat(Effect.sync(() => isPidStopped(frozen.pid)), {
          until: (stopped) => stopped,
          schedule: Schedule.spaced("50 millis")
        }).pipe(Effect.timeout("30 seconds"))
        // Past its ackWait with no other member to take it over, `groups pending` says so: overdue, held by the stopped member.
        const overdue = new RegExp(`^0\\s+delivered\\s+${frozen.pid}\\s+1\\s+.*\\soverdue \\d`, "m")
        yield* Effect.repeat(cliOk(["groups", "pending", "late"], env), {
          until: (listed) => overdue.test(listed),
          schedule: Schedule.spaced("100 millis")
        }).pipe(Effect.timeout("10 seconds"))
        // And `groups describe` says its member is stopped.
        expect(JSON.parse(yield* cliOk(["groups", "describe", "late", "--json"], env))).toMatchObject({
          members: [{ pid: frozen.pid, pending: 1, stopped: true }]
        })
        expect(yield* cliOk(["groups", "describe", "late"], env)).toMatch(
          new RegExp(`^${frozen.pid} \\(stopped\\)\\s+0\\s+1\\s`, "m")
        )
        // The next member takes it over once its ackWait has run out, runs it and acks it.
        const next = yield* forkCli(
          ["consume", ...options, "--exec", "cat >/dev/null; echo \"ran $CONSUME_OFFSET $CONSUME_DELIVERY_COUNT\""],
          env
        )
        expect((yield* next.exited).code, next.output()).toBe(0)
        expect(next.output().trim()).toBe("ran 0 2")
        // Run again, the first one's command ended 0: its ack settles nothing, and it says so.
        frozen.child.kill("SIGCONT")
        expect((yield* frozen.exited).code, frozen.output()).toBe(0)
        expect(frozen.output()).toContain(
          "cxlog consume: offset 0 (delivery 1): not settled: it was no longer this member's"
        )
        expect(JSON.parse(yield* cliOk(["groups", "describe", "late", "--json"], env))).toMatchObject({
          pending: 0,
          acked: 1,
          expired: 1
        })
      }),
    120_000
  )
})
