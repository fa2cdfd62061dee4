/**
 * The durable tier through the bundled CLI (real processes): `cxlog run --ack 2` creates its
 * topic with replication factor 2 and gives the head a fresh data directory; every message is
 * acknowledged at level 2 (after the head's fdatasyncs, which covered every payload byte) and
 * the audit passes. A head given an RF 2 topic without a data directory refuses to start. After
 * an ACK 2 publish, SIGKILL of head and broker and the region unlinked, `cxlog head --recover`
 * rebuilds the same log: every message at its offset, intact. A data directory that fills up
 * ends an ACK 2 publisher with a typed refusal naming it. A run reports its data directory's
 * filesystem, and warns when it is tmpfs (an fdatasync there reaches no disk).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Schedule } from "effect"
import { execFileSync } from "node:child_process"
import { existsSync, unlinkSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { defaultLogConfig, topicMemoryFor } from "../../src/layers/log/Layout.js"
import { publishWithoutTimeout } from "../helpers/Ack2Publish.js"
import { forkCli, loseRegion, runCli as runRole, runCliWithin, smallRegionEnv } from "../helpers/CliRoles.js"
import { tempDir, uniqueRegion } from "../helpers/Processes.js"
import { cli, runCli } from "../helpers/RunJson.js"
import { smallTmpfs } from "../helpers/Tmpfs.js"

/** The filesystem `dir` is on, as the mount table names it (df, not the statfs the CLI asks). */
const mountedType = (dir: string) =>
  execFileSync("df", ["--output=fstype", dir], { encoding: "utf8" }).trim().split("\n").at(-1)!.trim()

const TMPFS_WARNING = /^cxlog: warning: the data directory \S+ is on tmpfs \(memory\): its fdatasyncs reach no disk/m

describe("cxlog run --ack 2", () => {
  it.live(
    "16 MiB, 2 brokers: acknowledged at level 2 after fdatasyncs that covered every byte; the audit passes",
    () =>
      Effect.gen(function*() {
        expect(existsSync(cli)).toBe(true)
        const { code, stdout, stderr } = yield* runCli([
          "run",
          "--ack",
          "2",
          "--bytes",
          "16MiB",
          "--broker-count",
          "2",
          "--json"
        ])
        expect(code, stderr).toBe(0)
        const summary = JSON.parse(stdout.trim().split("\n").at(-1) ?? "{}") as {
          messages: number
          bytes: number
          ackLevel: number
          auditPassed: boolean
          region: string
          durable: { fsyncs: number; bytesPerFsync: number; filesystem: string } | null
        }
        expect(summary).toMatchObject({ messages: 16384, ackLevel: 2, auditPassed: true })
        expect(summary.durable).not.toBeNull()
        expect(summary.durable!.fsyncs).toBeGreaterThan(0)
        // Each batch's record is its payload (8 bytes of framing per message) plus a 64-byte header: all of it was synced.
        expect(summary.durable!.fsyncs * summary.durable!.bytesPerFsync).toBeGreaterThanOrEqual(summary.bytes)
        // Its data directory was under the OS's temporary directory: named as the mount table names it, a warning only on tmpfs.
        const filesystem = mountedType(process.env["CXLOG_DATA_DIR"] ?? tmpdir())
        expect(summary.durable!.filesystem).toBe(filesystem)
        expect(TMPFS_WARNING.test(stderr)).toBe(filesystem === "tmpfs")
        expect(existsSync(`/dev/shm/${summary.region}`)).toBe(false)
      }),
    240_000
  )

  it.scopedLive(
    "a data directory on tmpfs: the run warns when it starts, and its summary names tmpfs; CXLOG_DATA_DIR is made as the head makes it",
    () =>
      Effect.gen(function*() {
        const mount = yield* smallTmpfs("64m")
        // Not made yet, as a newcomer's first CXLOG_DATA_DIR often is: the run makes it, as the head would.
        const parent = join(mount, "cxlog-data")
        const { code, stdout, stderr } = yield* runRole(["run", "--ack", "2", "--bytes", "2MiB"], {
          CXLOG_DATA_DIR: parent
        })
        expect(code, stderr).toBe(0)
        expect(stderr).toMatch(TMPFS_WARNING)
        expect(stderr).toContain(`the data directory ${parent}/cxlog-run-data-`)
        expect(stdout).toMatch(
          /^durable tier \(ACK 2 = on disk\): \d+ fdatasyncs, \d+ bytes each on average, data directory on tmpfs$/m
        )
        // One that cannot be a directory is named, with what to give instead, before anything starts.
        const file = join(mount, "a-file")
        writeFileSync(file, "")
        const refused = yield* runRole(["run", "--ack", "2", "--bytes", "2MiB"], { CXLOG_DATA_DIR: file })
        expect(refused.code).toBe(1)
        expect(refused.stdout).toBe("")
        expect(refused.stderr.trim()).toBe(
          `cxlog run: the data directory ${file} cannot be used: ${file} is a file, not a directory (give --data-dir / CXLOG_DATA_DIR a directory this user can create and write)`
        )
      }),
    240_000
  )

  it.scopedLive(
    "a head given a topic with replication factor 2 and no data directory refuses to start, naming the flag",
    () =>
      Effect.gen(function*() {
        const region = yield* uniqueRegion("nodatadir")
        const { code, stderr } = yield* runCli(["head", "--region", region, "--topic", "d:5:2:2"])
        expect(code).not.toBe(0)
        expect(stderr).toContain("replication factor 2")
        expect(stderr).toContain("--data-dir")
      }),
    60_000
  )
})

describe("cxlog head --recover", () => {
  it.scopedLive(
    "SIGKILL head and broker after an ACK 2 publish, unlink the region: the recovered log holds every message at its offset",
    () =>
      Effect.gen(function*() {
        const dir = yield* tempDir("cxlog-recover-")
        const first = yield* uniqueRegion("durable1")
        const env = { ...smallRegionEnv, CXLOG_REGION: first }
        const head = yield* forkCli(["head", "--topic", "d:5:2:2", "--data-dir", dir], env)
        yield* head.event("ready")
        const broker = yield* forkCli(["broker", "--broker-id", "0", "--port", "0"], env)
        const port = (yield* broker.event("listening"))["port"] as number
        const published = yield* runRole([
          "publish",
          "--brokers",
          `127.0.0.1:${port}`,
          "--topic",
          "d",
          "--count",
          "3000",
          "--message-bytes",
          "64",
          "--ack",
          "2"
        ], env)
        expect(published.code, published.stderr).toBe(0)
        const read = (region: string) =>
          Effect.map(
            runRole(["subscribe", "--topic", "d", "--limit", "3000", "--format", "json"], {
              ...env,
              CXLOG_REGION: region
            }),
            (r) => {
              expect(r.code, r.stderr).toBe(0)
              return r.stdout.trim().split("\n")
            }
          )
        const before = yield* read(first)
        expect(before).toHaveLength(3000)
        yield* loseRegion(first, head, broker)

        const second = yield* uniqueRegion("durable2")
        const recovered = yield* forkCli(["head", "--topic", "d:5:2:2", "--recover", dir], {
          ...env,
          CXLOG_REGION: second
        })
        yield* recovered.event("ready")
        expect(recovered.output()).toContain("3000 messages")
        expect(yield* read(second)).toEqual(before)
      }),
    120_000
  )

  it.scopedLive(
    "a head stopped and started again as it was, on its data directory, makes the region again from it: every message there, ACK 2 going on",
    () =>
      Effect.gen(function*() {
        const dir = yield* tempDir("cxlog-restart-")
        const region = yield* uniqueRegion("restart")
        const env = { ...smallRegionEnv, CXLOG_REGION: region }
        const start = () =>
          Effect.gen(function*() {
            const head = yield* forkCli(["head", "--topic", "d:5:2:2", "--data-dir", dir], env)
            yield* head.event("ready")
            const broker = yield* forkCli(["broker", "--broker-id", "0", "--port", "0"], env)
            const port = (yield* broker.event("listening"))["port"] as number
            const publish = (count: number) =>
              Effect.map(
                runRole(
                  ["publish", "--brokers", `127.0.0.1:${port}`, "--topic", "d", "--count", `${count}`, "--ack", "2"],
                  env
                ),
                (r) => expect(r.code, r.stderr).toBe(0)
              )
            const read = (count: number) =>
              Effect.map(
                runRole(["subscribe", "--topic", "d", "--limit", `${count}`, "--format", "json"], env),
                (r) => {
                  expect(r.code, r.stderr).toBe(0)
                  return r.stdout.trim().split("\n")
                }
              )
            const stop = Effect.gen(function*() {
              for (const role of [broker, head]) {
                role.child.kill("SIGTERM")
                expect((yield* role.exited).code).toBe(0)
              }
              expect(existsSync(`/dev/shm/${region}`)).toBe(false)
            })
            return { head, publish, read, stop }
          })
        const first = yield* start()
        yield* first.publish(300)
        const before = yield* first.read(300)
        yield* first.stop
        const again = yield* start()
        expect(again.head.output()).toContain("records topic(s) d of a head before")
        expect(yield* again.read(300)).toEqual(before)
        yield* again.publish(20)
        expect(yield* again.read(320)).toHaveLength(320)
        yield* again.stop
      }),
    120_000
  )

  it.scopedLive(
    "a data directory the head cannot use (a file, under a file, where nothing can be made, a blank path), or --recover beside a flag it would override, refuses the start, naming it and why",
    () =>
      Effect.gen(function*() {
        const parent = yield* tempDir("cxlog-baddir-")
        const file = join(parent, "a-file")
        writeFileSync(file, "")
        for (
          const [dataDir, why] of [
            [file, "is a file, not a directory"],
            [join(file, "sub"), "ENOTDIR"],
            ["/proc/cxlog-data", "ENOENT"]
          ] as const
        ) {
          const region = yield* uniqueRegion("baddir")
          const { code, stderr } = yield* runCliWithin(
            ["head", "--region", region, "--topic", "d:5:2:2", "--data-dir", dataDir],
            smallRegionEnv,
            30_000
          )
          expect(code).toBe(1)
          expect(stderr).toContain(`the data directory ${dataDir} cannot be used`)
          expect(stderr).toContain(why)
          expect(existsSync(`/dev/shm/${region}`)).toBe(false)
        }
        // A blank path (a variable expanded to nothing) is no directory: taken as one, the streams went to the working directory.
        for (const flag of ["--data-dir", "--recover"]) {
          const region = yield* uniqueRegion("baddir")
          const { code, stderr } = yield* runCliWithin(
            ["head", "--region", region, "--topic", "d:5:2:2", flag, ""],
            smallRegionEnv,
            30_000
          )
          expect(code, stderr).toBe(2)
          expect(stderr).toContain(`${flag}: the value is empty: give a directory`)
          expect(existsSync(`/dev/shm/${region}`)).toBe(false)
          expect(existsSync("topic-d")).toBe(false)
        }
        // --recover beside a flag it would override (another data directory, --attach, --standby): refused, not ignored.
        for (
          const [extra, says] of [
            [["--data-dir", join(parent, "other")], "--data-dir (CXLOG_DATA_DIR) names another directory"],
            [["--attach"], "--recover makes a new region from the data directory; --attach takes over an existing one"],
            [["--standby"], "--standby waits for a region to take over and recovers nothing"]
          ] as const
        ) {
          const region = yield* uniqueRegion("baddir")
          const { code, stderr } = yield* runCliWithin(
            ["head", "--region", region, "--topic", "d:5:2:2", "--recover", parent, ...extra],
            smallRegionEnv,
            30_000
          )
          expect(code, stderr).toBe(2)
          expect(stderr).toContain(says)
          expect(existsSync(`/dev/shm/${region}`)).toBe(false)
          expect(existsSync(join(parent, "other"))).toBe(false)
        }
        // --recover of a directory that does not exist: nothing to recover, and neither region nor directory is made.
        const missing = join(parent, "no-such-dir")
        const region = yield* uniqueRegion("baddir")
        const recovered = yield* runCliWithin(
          ["head", "--region", region, "--recover", missing],
          smallRegionEnv,
          30_000
        )
        expect(recovered.code).toBe(1)
        expect(recovered.stderr).toContain(`nothing to recover: the data directory ${missing} does not exist`)
        expect(existsSync(missing)).toBe(false)
        expect(existsSync(`/dev/shm/${region}`)).toBe(false)
        // Nor of one that records no topic (a wrong path that happens to exist): no empty region as if recovered.
        const empty = yield* uniqueRegion("baddir")
        const fromEmpty = yield* runCliWithin(["head", "--region", empty, "--recover", parent], smallRegionEnv, 30_000)
        expect(fromEmpty.code).toBe(1)
        expect(fromEmpty.stderr).toContain(`nothing to recover: the data directory ${parent} records no topic`)
        expect(existsSync(`/dev/shm/${empty}`)).toBe(false)
      }),
    120_000
  )
})

/** The publisher seq stamped in each JSON line `cxlog subscribe` printed (Audit.ts: bytes 4..7). */
const stampedSeqs = (stdout: string) =>
  stdout.trim().split("\n").filter((l) => l !== "").map((l) => {
    const line = JSON.parse(l) as { payload?: string; payloadBase64?: string }
    const bytes = line.payload !== undefined
      ? Buffer.from(line.payload, "utf8")
      : Buffer.from(line.payloadBase64!, "base64")
    return bytes.readUInt32LE(4)
  })

describe("crash matrix", () => {
  it.scopedLive(
    "head, broker and publisher SIGKILLed at random points of an ACK 2 run, the region unlinked, recovered: every message acked at level 2 once, in order, nothing invented",
    () =>
      Effect.gen(function*() {
        for (let round = 0; round < 3; round++) {
          yield* Effect.scoped(Effect.gen(function*() {
            const dir = yield* tempDir("cxlog-crash-")
            const first = yield* uniqueRegion(`crash${round}a`)
            // One broker with a 48 MiB Blog: the whole run fits the hot tier, so the recovered log is read from offset 0.
            const env = {
              CXLOG_REGION: first,
              CXLOG_LOG_MAX_BROKERS: "1",
              CXLOG_TOPIC_WRITERS: "1",
              CXLOG_TOPIC_MEMORY: `${topicMemoryFor({ ...defaultLogConfig, maxBrokers: 1 }, 48 << 20)}`
            }
            const head = yield* forkCli(["head", "--topic", "d:5:2:2", "--data-dir", dir], env)
            yield* head.event("ready")
            const broker = yield* forkCli(["broker", "--broker-id", "0", "--port", "0"], env)
            const port = (yield* broker.event("listening"))["port"] as number
            const count = 100_000
            // 20 MB at 5 MB/s: about 4 s, killed somewhere inside.
            const publisher = yield* forkCli(
              [
                "publish",
                "--brokers",
                `127.0.0.1:${port}`,
                "--topic",
                "d",
                "--count",
                `${count}`,
                "--message-bytes",
                "200",
                "--ack",
                "2",
                "--rate-mbps",
                "5"
              ],
              env
            )
            const ackedSoFar = () => (publisher.latest("progress")?.["ackedMessages"] as number | undefined) ?? 0
            for (let i = 0; i < 500 && ackedSoFar() === 0; i++) yield* Effect.sleep("20 millis")
            expect(ackedSoFar()).toBeGreaterThan(0)
            yield* Effect.sleep(Math.floor(Math.random() * 2_000))
            // Killed as a progress report arrives, so what it says acknowledged (at level 2) is close to what was.
            const seen = publisher.latest("progress")
            for (let i = 0; i < 400 && publisher.latest("progress") === seen; i++) yield* Effect.sleep("2 millis")
            const acked = ackedSoFar()
            const victims = [head, broker, publisher].sort(() => Math.random() - 0.5)
            for (const victim of victims) victim.child.kill("SIGKILL")
            for (const victim of victims) yield* victim.exited
            unlinkSync(`/dev/shm/${first}`)

            const second = yield* uniqueRegion(`crash${round}b`)
            const recovered = yield* forkCli(["head", "--topic", "d:5:2:2", "--recover", dir], {
              ...env,
              CXLOG_REGION: second
            })
            yield* recovered.event("ready")
            const held = Number(/(\d+) messages/.exec(recovered.output())?.[1] ?? "0")
            expect(held).toBeGreaterThanOrEqual(acked)
            // Killed inside the run: what the log holds is short of everything.
            expect(held).toBeLessThan(count)
            // The hot tier holds the recovered log's tail (1024 batches a broker at most); recovery checked every offset it replayed.
            const topics = yield* runRole(["topics", "--topic", "d", "--json"], { ...env, CXLOG_REGION: second })
            const [topic] = (JSON.parse(topics.stdout) as { topics: Array<{ earliest: number; end: number }> }).topics
            expect(topic!.end).toBe(held)
            const tail = held - topic!.earliest
            expect(tail).toBeGreaterThan(0)
            const read = yield* runRole(["subscribe", "--topic", "d", "--limit", `${tail}`, "--format", "json"], {
              ...env,
              CXLOG_REGION: second
            })
            expect(read.code, read.stderr).toBe(0)
            // One publisher session in order 5: the message at offset o is its message o — each once, in order, up to the end.
            expect(stampedSeqs(read.stdout)).toEqual(Array.from({ length: tail }, (_, i) => topic!.earliest + i))
          }))
        }
      }),
    240_000
  )
})

describe("a head attached without a data directory", () => {
  it.scopedLive(
    "a head attached without the data directory its region's rf 2 topics need refuses their ACK 2 at once, and says why",
    () =>
      Effect.gen(function*() {
        const dir = yield* tempDir("cxlog-attach-nodir-")
        const region = yield* uniqueRegion("attachnodir")
        const env = { ...smallRegionEnv, CXLOG_REGION: region }
        const first = yield* forkCli(["head", "--topic", "d:5:2:2", "--data-dir", dir], env)
        yield* first.event("ready")
        first.child.kill("SIGKILL")
        yield* first.exited
        const attached = yield* forkCli(["head", "--attach"], env)
        yield* attached.event("ready")
        expect(attached.output()).toContain("keep a copy on disk, and this head has no data directory")
        // A local publisher (appending in the region; the region's one writer slot is free until the broker starts) is refused the same way, where it waited for good.
        const local = yield* runCliWithin(
          ["publish", "--local", "--topic", "d", "--count", "10", "--ack", "2", "--flush-timeout-ms", "600000"],
          env,
          60_000
        )
        expect(local.code).not.toBe(0)
        expect(local.stderr).toContain("durability-unavailable: topic d: its copy on disk stopped")
        const broker = yield* forkCli(["broker", "--broker-id", "0", "--port", "0"], env)
        const port = (yield* broker.event("listening"))["port"] as number
        const published = yield* publishWithoutTimeout(port, env, ["--count", "10"], 60_000)
        expect(published.code).not.toBe(0)
        expect(published.stderr).toContain("durability-unavailable")
        const listed = yield* runRole(["topics", "--topic", "d", "--json"], env)
        expect(JSON.parse(listed.stdout).topics[0]).toMatchObject({ name: "d", diskCopyStopped: "stopped" })
      }),
    120_000
  )
})

describe("a full data directory", () => {
  it.scopedLive(
    "an ACK 2 publisher gets durability-unavailable naming the full disk, not an ACK timeout",
    () =>
      Effect.gen(function*() {
        const dir = yield* smallTmpfs("2m")
        const region = yield* uniqueRegion("durablefull")
        const env = { ...smallRegionEnv, CXLOG_REGION: region }
        const head = yield* forkCli(["head", "--topic", "d:5:2:2", "--data-dir", join(dir, "data")], env)
        yield* head.event("ready")
        const broker = yield* forkCli(["broker", "--broker-id", "0", "--port", "0"], env)
        const port = (yield* broker.event("listening"))["port"] as number
        // 8 MiB through a 2 MiB disk, with an ACK timeout far beyond the bound here: only the refusal can end it in
        // time; past the bound, the failure shows what the publisher, the head and the broker printed.
        const published = yield* publishWithoutTimeout(
          port,
          env,
          ["--count", "8192", "--message-bytes", "1024"],
          90_000
        )
          .pipe(
            Effect.tapDefect(() =>
              Effect.sync(() =>
                console.error(`head:\n${head.output().slice(-4000)}\nbroker:\n${broker.output().slice(-4000)}`)
              )
            )
          )
        expect(published.code).not.toBe(0)
        expect(published.stderr).toContain("durability-unavailable")
        expect(published.stderr).toContain("data directory is full")
        // cxlog topics says so, where it said ACK 2 (replicated) as if nothing had happened. The head starts the
        // writer again with a backoff, and on this disk, still full, a restart may make one small batch durable (which
        // clears the mark) before the next fails (which sets it again): each reading is taken until the mark stands.
        const readUntil = (args: ReadonlyArray<string>, says: (stdout: string) => boolean) =>
          runRole(args, env).pipe(
            Effect.filterOrFail(
              (r) => r.code === 0 && says(r.stdout),
              (r) => new Error(`cxlog ${args.join(" ")} did not say the copy stopped: ${r.stdout}${r.stderr}`)
            ),
            Effect.retry({ times: 40, schedule: Schedule.spaced("250 millis") })
          )
        const listed = yield* readUntil(
          ["topics", "--topic", "d", "--json"],
          (stdout) => JSON.parse(stdout).topics[0]?.diskCopyStopped === "disk-full"
        )
        expect(JSON.parse(listed.stdout).topics[0]).toMatchObject({ name: "d", diskCopyStopped: "disk-full" })
        const described = yield* readUntil(
          ["topics", "describe", "d"],
          (stdout) => stdout.includes("ack 2 (copy on disk stopped: disk-full)")
        )
        expect(described.stdout).toContain("ack 2 (copy on disk stopped: disk-full)")
      }),
    120_000
  )
})
