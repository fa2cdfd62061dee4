/**
 * The `cxlog` command line as a user meets it (the bundled CLI, spawned without an IPC
 * channel): a mistake is one line on stderr, no stack trace or internal dump, and exit code
 * 2 for a usage mistake or 1 for a runtime failure; `--verbose` adds the cause. Help names
 * every flag's default and variable, lists no internal command, and has no colour when piped.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { execFileSync, spawn } from "node:child_process"
import { existsSync } from "node:fs"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { useColor } from "../../src/programs/cli/CliKit.js"
import { certificates } from "../fixtures/tls-certificates.js"
import { cli, runCli } from "../helpers/CliRoles.js"
import { uniqueRegion } from "../helpers/Processes.js"

/** stderr is exactly one line, and reads as words rather than a dump or a stack. */
const oneLine = (stderr: string): string => {
  const lines = stderr.trimEnd().split("\n")
  expect(lines).toHaveLength(1)
  expect(stderr).not.toMatch(/^\s+at /m)
  // eslint-disable-next-line no-control-regex -- no ANSI code (it starts with the escape character)
  expect(stderr).not.toMatch(/[{}]|_tag|Exception|\u001b\[/)
  return lines[0]!
}

/** A TCP port nothing listens on: bound, then released. */
const deadPort = Effect.async<number>((resume) => {
  const server = createServer()
  server.listen(0, "127.0.0.1", () => {
    const address = server.address()
    server.close(() => resume(Effect.succeed(typeof address === "object" && address !== null ? address.port : 0)))
  })
})

/**
 * A usage mistake found before anything starts: exit 2, nothing on stdout (a run prints its
 * first line as it starts its roles), one line on stderr. Bounded: such mistakes used to
 * start a cluster that failed seconds later, or a head that ran on.
 */
const refused = (args: ReadonlyArray<string>, env: Record<string, string> = {}) =>
  runCli(args, env).pipe(
    Effect.timeoutFail({
      duration: "20 seconds",
      onTimeout: () => new Error(`cxlog ${args.join(" ")} still running after 20 s`)
    }),
    Effect.map(({ code, stdout, stderr }) => {
      expect(code, `${args.join(" ")}: ${stderr}`).toBe(2)
      expect(stdout, args.join(" ")).toBe("")
      return oneLine(stderr)
    })
  )

describe("cxlog: a user's mistake is one line and an exit code", () => {
  it.effect("a size that is not one: exit 2, naming the flag and the forms a size takes", () =>
    Effect.gen(function*() {
      const { code, stdout, stderr } = yield* runCli(["run", "--bytes", "12XB"])
      expect(code).toBe(2)
      expect(stdout).toBe("")
      expect(oneLine(stderr)).toBe("cxlog run: --bytes: 12XB is not a size: use 64KiB, 1GiB, … or a number of bytes")
    }))

  it.effect("the same mistake in the flag's variable names the variable", () =>
    Effect.gen(function*() {
      const { code, stderr } = yield* runCli(["bench"], { CXLOG_BYTES: "lots" })
      expect(code).toBe(2)
      expect(oneLine(stderr)).toBe(
        "cxlog bench: CXLOG_BYTES=lots: lots is not a size: use 64KiB, 1GiB, … or a number of bytes"
      )
    }))

  it.effect("a port past 65535, as a flag or its variable: exit 2 naming which, before anything starts", () =>
    Effect.gen(function*() {
      const flag = yield* runCli(["broker", "--region", "cli-test-no-region", "--port", "70000"])
      expect(flag.code).toBe(2)
      expect(oneLine(flag.stderr)).toBe("cxlog broker: --port: 70000 is above 65535")
      const variable = yield* runCli(["broker", "--region", "cli-test-no-region"], { CXLOG_BROKER_PORT: "70000" })
      expect(variable.code).toBe(2)
      expect(oneLine(variable.stderr)).toBe("cxlog broker: CXLOG_BROKER_PORT=70000: 70000 is above 65535")
      const metrics = yield* runCli(["serve", "--region", "cli-test-no-region", "--metrics-port", "65536"])
      expect(metrics.code).toBe(2)
      expect(oneLine(metrics.stderr)).toBe("cxlog serve: --metrics-port: 65536 is above 65535")
    }))

  it.effect("a nak delay past what a nak takes (2^32 − 1 ms): exit 2 naming the flag, before the member joins", () =>
    Effect.gen(function*() {
      // Accepted, it failed the member at its first failing command, with every message it held.
      const args = ["consume", "--region", "cli-test-no-region", "--group", "g", "--exec", "exit 1"]
      expect(yield* refused([...args, "--nak-delay-ms", "4294967296"])).toBe(
        "cxlog consume: --nak-delay-ms: 4294967296 is above 4294967295"
      )
    }))

  it.effect("a broker list that is not one, to any command taking --brokers, as the flag or its variable: exit 2 naming which, before anything starts", () =>
    Effect.gen(function*() {
      const nope = `not a broker address: "nope" (host:port, the port in 1..65535)`
      const cases: ReadonlyArray<readonly [ReadonlyArray<string>, Record<string, string>, string]> = [
        [["consume", "--group", "g", "--brokers", "nope"], {}, `cxlog consume: --brokers: ${nope}`],
        [
          ["mirror", "--brokers", "nope", "--region-id", "1", "--topic", "t", "--to", "nats://127.0.0.1:4222"],
          {},
          `cxlog mirror: --brokers: ${nope}`
        ],
        [["subscribe", "--brokers", "127.0.0.1:7400,nope"], {}, `cxlog subscribe: --brokers: ${nope}`],
        [
          ["publish", "--brokers", ",", "--count", "1"],
          {},
          `cxlog publish: --brokers: no broker address in "," (host:port,…)`
        ],
        [["topics", "--brokers", "nope"], {}, `cxlog topics: --brokers: ${nope}`],
        [["groups"], { CXLOG_ADMIN_BROKERS: "nope" }, `cxlog groups: CXLOG_ADMIN_BROKERS=nope: ${nope}`],
        [
          ["consume", "--group", "g"],
          { CXLOG_SUBSCRIBE_BROKERS: "nope" },
          `cxlog consume: CXLOG_SUBSCRIBE_BROKERS=nope: ${nope}`
        ]
      ]
      for (const [args, env, line] of cases) expect(yield* refused(args, env), args.join(" ")).toBe(line)
    }))

  it.scoped("a --report that cannot be written: exit 2 naming it, before the run (whose report it would lose at the end)", () =>
    Effect.gen(function*() {
      const region = yield* uniqueRegion("cli-report")
      const env = { CXLOG_REGION: region }
      const missing = yield* runCli(["run", "--bytes", "1KiB", "--report", "/nonexistent-cxlog-dir/r.html"], env)
      expect(missing.code).toBe(2)
      expect(missing.stdout).toBe("")
      expect(oneLine(missing.stderr)).toBe(
        "cxlog run: --report: there is no directory /nonexistent-cxlog-dir to write /nonexistent-cxlog-dir/r.html in"
      )
      const directory = yield* runCli(["bench", "--bytes", "1KiB"], { ...env, CXLOG_REPORT: tmpdir() })
      expect(directory.code).toBe(2)
      expect(directory.stdout).toBe("")
      expect(oneLine(directory.stderr)).toBe(
        `cxlog bench: CXLOG_REPORT=${tmpdir()}: ${tmpdir()} is a directory: name the file to write`
      )
    }))

  it.effect("dashboard --targets that are no host:port list (a URL as serve prints it, no port, none): exit 2 naming it", () =>
    Effect.gen(function*() {
      const endpoint = (t: string) =>
        `not a metrics endpoint: "${t}" (host:port, as 127.0.0.1:9400, the port in 1..65535)`
      const url = "http://127.0.0.1:9400/metrics"
      expect(yield* refused(["dashboard", "--port", "0", "--targets", url])).toBe(
        `cxlog dashboard: --targets: ${endpoint(url)}`
      )
      expect(yield* refused(["dashboard", "--port", "0", "--targets", "127.0.0.1:9400,127.0.0.1"])).toBe(
        `cxlog dashboard: --targets: ${endpoint("127.0.0.1")}`
      )
      expect(yield* refused(["dashboard", "--port", "0"], { CXLOG_DASHBOARD_TARGETS: "," })).toBe(
        `cxlog dashboard: CXLOG_DASHBOARD_TARGETS=,: no endpoint in "," (host:port,…)`
      )
    }))

  it.effect("a blank address to listen on (a broker's, a dashboard's, the metrics endpoints'; not every interface) or region: exit 2 naming it", () =>
    Effect.gen(function*() {
      const blank = "the value is empty: give an address, as 127.0.0.1, or 0.0.0.0 for every interface"
      expect(yield* refused(["broker", "--host", "", "--port", "0", "--region", "cxlog-no-region"])).toBe(
        `cxlog broker: --host: ${blank}`
      )
      expect(yield* refused(["dashboard", "--port", "0", "--host", " "])).toBe(`cxlog dashboard: --host: ${blank}`)
      expect(
        yield* refused(["head", "--metrics-port", "65531", "--region", "cxlog-no-region"], { CXLOG_METRICS_HOST: " " })
      )
        .toBe(`cxlog head: CXLOG_METRICS_HOST: ${blank}`)
      // A blank region was handed to shm_open: "shm_open failed: Invalid argument".
      expect(yield* refused(["subscribe", "--region", " ", "--topic", "x"])).toBe(
        "cxlog subscribe: --region: the value is empty: give a region name (cxlog, or a path)"
      )
    }))

  it.effect("a blank name, file, directory or command: exit 2 naming the flag, not used as given; blank rights and keys stay values", () =>
    Effect.gen(function*() {
      const blank = (what: string) => `the value is empty: give a ${what}`
      // Each was taken as given: a region "" looked for (exit 1), the working directory checked, a
      // secret file "" reported as "( not written)", a consumer "" refused only once the mirror ran.
      const cases: ReadonlyArray<readonly [ReadonlyArray<string>, string]> = [
        [["regions", "--remove", ""], `cxlog regions: --remove: ${blank("NAME")}`],
        [["selfcheck", "--dir", " "], `cxlog selfcheck: --dir: ${blank("DIR")}`],
        [
          ["consume", "--group", "", "--topic", "x", "--region", "cxlog-no-region"],
          `cxlog consume: --group: ${blank("NAME")}`
        ],
        [
          ["consume", "--group", "g", "--topic", "x", "--exec", "", "--region", "cxlog-no-region"],
          `cxlog consume: --exec: ${blank("CMD")}`
        ],
        [
          ["user", "add", "bob", "--region", "cxlog-no-region", "--secret-file", ""],
          `cxlog user: --secret-file: ${blank("FILE")}`
        ],
        [
          ["subscribe", "--topic", "x", "--consumer", "", "--region", "cxlog-no-region"],
          `cxlog subscribe: --consumer: ${blank("NAME")}`
        ],
        [
          ["mirror", "--topic", "x", "--to", "127.0.0.1:4222", "--stream", ""],
          `cxlog mirror: --stream: ${blank("NAME")}`
        ]
      ]
      for (const [args, line] of cases) expect(yield* refused(args), args.join(" ")).toBe(line)
      // "" is documented where it means something: a user's rights (none), a message's key.
      const noRegion = yield* runCli([
        "publish",
        "--topic",
        "x",
        "--key",
        "",
        "--count",
        "0",
        "--region",
        "cxlog-no-region"
      ])
      expect(noRegion.stderr).not.toContain("the value is empty")
    }))

  it.effect("head: a disk retention no topic it creates can use is refused, exit 2, not dropped unsaid", () =>
    Effect.gen(function*() {
      const needs = "a disk retention needs replication factor 2 (a copy on disk)"
      expect(
        yield* refused(["head", "--region", "cxlog-no-region", "--topic", "x", "--disk-retention-bytes", "1GiB"])
      ).toBe(
        `cxlog head: --disk-retention-bytes: ${needs}, which topic x does not have: give it rf 2, or leave the disk retention out`
      )
      expect(yield* refused(["head", "--region", "cxlog-no-region", "--disk-retention-age", "7d"])).toBe(
        `cxlog head: --disk-retention-age: ${needs}, which no topic named here has: give it rf 2, or leave the disk retention out`
      )
    }))

  it.effect("a mistyped command: exit 2, naming it and suggesting the command meant", () =>
    Effect.gen(function*() {
      const { code, stderr } = yield* runCli(["rnu", "--bytes", "1MiB"])
      expect(code).toBe(2)
      expect(oneLine(stderr)).toBe("cxlog: unknown command rnu (did you mean run?); see cxlog --help")
    }))

  it.effect("an unknown flag: exit 2, suggesting the flag meant (--brokers is addresses; run counts with --broker-count)", () =>
    Effect.gen(function*() {
      const { code, stderr } = yield* runCli(["run", "--brokers", "2"])
      expect(code).toBe(2)
      expect(oneLine(stderr)).toBe(
        "cxlog run: unknown flag --brokers (did you mean --broker-count?); see cxlog run --help"
      )
    }))

  it.effect("words @effect/cli does not take: a flag without its value or given twice, a stray word, a flag before the command", () =>
    Effect.gen(function*() {
      const cases: ReadonlyArray<readonly [ReadonlyArray<string>, string]> = [
        [["run", "--bytes"], "cxlog run: --bytes needs a value (SIZE)"],
        [["run", "--bytes", "1MiB", "--bytes", "2MiB"], "cxlog run: --bytes is given twice"],
        [["run", "fast"], "cxlog run: unexpected argument fast (flags start with --; see cxlog run --help)"],
        [
          ["--bytes", "1MiB", "run"],
          "cxlog: a command comes first, then its flags: cxlog COMMAND [flags] (see cxlog --help)"
        ]
      ]
      for (const [args, line] of cases) {
        const { code, stderr } = yield* runCli(args)
        expect(code, args.join(" ")).toBe(2)
        expect(oneLine(stderr)).toBe(line)
      }
    }))

  it.scoped("a client key that is not its certificate's: exit 1 before any connection, naming the flags and files", () =>
    Effect.gen(function*() {
      const certs = yield* certificates
      const wrongKey = certs.key.replace(/broker\.key$/, "ca.key")
      const { code, stderr } = yield* runCli([
        "publish",
        "--brokers",
        "127.0.0.1:1",
        "--topic",
        "t",
        "--count",
        "1",
        "--tls-client-cert",
        certs.cert,
        "--tls-client-key",
        wrongKey
      ])
      expect(code).toBe(1)
      expect(oneLine(stderr)).toMatch(
        new RegExp(
          `^cxlog publish: credentials ${certs.cert}, ${wrongKey}: --tls-ca, --tls-client-cert, --tls-client-key: .*key values mismatch$`
        )
      )
    }))

  it.scoped("a --tls-ca that holds no certificate (a key file given by mistake): exit 1 before any connection, naming it", () =>
    Effect.gen(function*() {
      const certs = yield* certificates
      const { code, stderr } = yield* runCli(["topics", "--brokers", "127.0.0.1:1", "--tls-ca", certs.key])
      expect(code).toBe(1)
      expect(oneLine(stderr)).toBe(
        `cxlog topics: credentials ${certs.key}: --tls-ca holds no certificate (no -----BEGIN CERTIFICATE----- block): give the CA's certificate, as PEM`
      )
    }))

  it.effect("a command taking words (topics, groups): an unknown flag among them, or a word missing or left over, is named", () =>
    Effect.gen(function*() {
      const cases: ReadonlyArray<readonly [ReadonlyArray<string>, string]> = [
        [
          ["topics", "create", "t1", "--memry", "1MiB"],
          "cxlog topics: unknown flag --memry (did you mean --memory?); see cxlog topics --help"
        ],
        [
          ["topics", "trim", "t1", "--to-offset", "5"],
          "cxlog topics: unknown flag --to-offset; see cxlog topics --help"
        ],
        [["topics", "create", "t1", "--memory", "1MiB", "--memory", "2MiB"], "cxlog topics: --memory is given twice"],
        [["topics", "create", "t1", "--memory"], "cxlog topics: --memory needs a value (SIZE)"],
        [
          ["groups", "create", "g", "--topc", "jobs"],
          "cxlog groups: unknown flag --topc (did you mean --topic?); see cxlog groups --help"
        ],
        [["topics", "create"], "cxlog topics create: name the topic (cxlog topics create NAME)"],
        [["topics", "purge", "a", "b"], "cxlog topics purge a: b? one topic at a time"],
        [["topics", "trim", "a", "--keep", "-1"], "cxlog topics: --keep: -1 is not a whole number of 0 or more"],
        // A bad spec is named as typed, not as the flags and defaults filled it in.
        [
          ["topics", "create", "has space"],
          `cxlog topics create: has space: the name "has space" is not 1 to 100 of A-Z a-z 0-9 . _ -`
        ],
        [["topics", "create", "a:9"], "cxlog topics create: a:9: the order 9 is not one of 0, 2, 4, 5"],
        // A flag of another verb is refused, never dropped: a purge given --before would drop every message.
        [
          ["topics", "purge", "a", "--before", "1"],
          "cxlog topics purge: --before does not apply here (it is for trim)"
        ],
        [["topics", "create", "a", "--keep", "5"], "cxlog topics create: --keep does not apply here (it is for trim)"],
        [
          ["topics", "delete", "a", "--max-age", "1h"],
          "cxlog topics delete: --max-age does not apply here (it is for create)"
        ],
        [
          ["topics", "trim", "a", "--keep", "1", "--memory", "1GiB"],
          "cxlog topics trim: --memory does not apply here (it is for create)"
        ],
        [
          ["topics", "describe", "a", "--json", "--topic", "b"],
          "cxlog topics describe: --topic does not apply here (it is for the list)"
        ],
        [["groups", "pending"], "cxlog groups pending: name the group (cxlog groups pending NAME)"]
      ]
      for (const [args, line] of cases) expect(yield* refused(args), args.join(" ")).toBe(line)
    }))

  it.effect("a mistake a command finds in its flags' combination names the command too, as every other mistake does", () =>
    Effect.gen(function*() {
      const cases: ReadonlyArray<readonly [ReadonlyArray<string>, string]> = [
        [
          ["mirror", "--brokers", "127.0.0.1:1", "--topic", "events"],
          "cxlog mirror: --brokers and --region-id go together: a mirror reading over TCP names the region it reads (cxlog regions --json: createdAtMs)"
        ],
        [
          ["subscribe", "--brokers", "127.0.0.1:1", "--tls-client-cert", "/nonexistent.pem"],
          "cxlog subscribe: --tls-client-cert and --tls-client-key go together"
        ],
        [["bench", "--type", "mirror", "--peers", "redis"], "cxlog bench: --peers is not measured with --type mirror"],
        [
          ["publish", "--brokers", "127.0.0.1:1", "--topic", "t", "--tls-client-cert", "c.pem"],
          "cxlog publish: --tls-client-cert and --tls-client-key go together"
        ],
        [
          ["bench", "--type", "group", "--kill-member", "1"],
          "cxlog bench: --kill-member kills local members: add --local"
        ]
      ]
      for (const [args, line] of cases) expect(yield* refused(args), args.join(" ")).toBe(line)
    }))

  it.effect("--from that is no position: exit 2, saying what a position is", () =>
    Effect.gen(function*() {
      const { code, stderr } = yield* runCli(["subscribe", "--from", "abc"])
      expect(code).toBe(2)
      expect(oneLine(stderr)).toBe(
        "cxlog subscribe: --from: abc is not a position: use earliest, latest or a message offset (0, 1, …)"
      )
    }))

  it.effect("an empty --topic to subscribe, alone or among several: exit 2, not a read of the default topic", () =>
    Effect.gen(function*() {
      // A region that does not exist: a command line taken as valid fails on it, exit 1, instead.
      const at = ["subscribe", "--region", "cli-test-no-region", "--limit", "1"]
      const empty = "cxlog subscribe: --topic: the value is empty: give a NAME"
      const cases: ReadonlyArray<readonly [ReadonlyArray<string>, string]> = [
        [["--topic", ""], empty],
        [["--topic", "  "], empty],
        [["--topic="], empty],
        [["--topic", "orders", "--topic", ""], empty],
        [["--topic", ","], `cxlog subscribe: --topic: "," gives no NAME`]
      ]
      for (const [topics, line] of cases) expect(yield* refused([...at, ...topics]), topics.join(" ")).toBe(line)
    }))

  it.effect("a topic spec with a bad field: exit 2, naming the field, before anything is contacted", () =>
    Effect.gen(function*() {
      const order = yield* runCli(["create-topic", "--topic", "bad:x:9"])
      expect(order.code).toBe(2)
      expect(oneLine(order.stderr)).toBe("cxlog create-topic: --topic: bad:x:9: the order x is not one of 0, 2, 4, 5")
      const ack = yield* runCli(["create-topic", "--topic", "bad:5:9"])
      expect(ack.code).toBe(2)
      expect(oneLine(ack.stderr)).toBe("cxlog create-topic: --topic: bad:5:9: the ack level 9 is not one of 0, 1, 2")
    }))

  it.scoped("a replication factor the log does not build: exit 2 naming those it does, before any head starts; so are the other topic rules", () =>
    Effect.gen(function*() {
      const region = yield* uniqueRegion("cli-rf")
      const factors = "is not one of 1, 2 (1: the region; 2: the region and a copy on disk)"
      expect(yield* refused(["head", "--region", region, "--topic", "t:5:1:3"])).toBe(
        `cxlog head: --topic: t:5:1:3: the replication factor 3 ${factors}`
      )
      expect(yield* refused(["head", "--region", region], { CXLOG_TOPICS: "t:5:1:16" })).toBe(
        `cxlog head: CXLOG_TOPICS=t:5:1:16: t:5:1:16: the replication factor 16 ${factors}`
      )
      expect(yield* refused(["create-topic", "--region", region, "--topic", "t:5:1:0"])).toBe(
        `cxlog create-topic: --topic: t:5:1:0: the replication factor 0 ${factors}`
      )
      expect(yield* refused(["head", "--region", region, "--topic", "t:2:1:2"])).toBe(
        "cxlog head: --topic: t:2:1:2: replication factor 2 needs order 5 (each session's batches ordered in sequence)"
      )
      expect(yield* refused(["head", "--region", region, "--topic", "t:5:1:2"])).toBe(
        "cxlog head: topic(s) t keep a copy on disk (replication factor 2): start the head with --data-dir DIR (CXLOG_DATA_DIR)"
      )
      expect(existsSync(`/dev/shm/${region}`)).toBe(false)
    }))

  it.effect("run: a broker to kill that the run does not start is exit 2, before anything starts", () =>
    Effect.gen(function*() {
      expect(yield* refused(["run", "--bytes", "8MiB", "--kill-broker", "9"])).toBe(
        "cxlog run: --kill-broker 9: the run starts brokers 0 to 3 (--broker-count 4)"
      )
      expect(yield* refused(["run", "--bytes", "8MiB", "--broker-count", "1", "--kill-broker", "1"])).toBe(
        "cxlog run: --kill-broker 1: the run starts broker 0 only (--broker-count 1)"
      )
    }))

  it.effect("run, bench and publish --count: messages, batches or a region their roles would refuse are exit 2, before anything starts", () =>
    Effect.gen(function*() {
      expect(yield* refused(["run", "--message-bytes", "2000000"])).toBe(
        "cxlog run: a 2000000-byte message does not fit a batch of at most 1048576 bytes (the largest message is 1048560 bytes, key and headers included); raise the publisher's maxBatchBytes (cxlog publish --max-batch-bytes), within the brokers' --max-batch-bytes (CXLOG_MAX_BATCH_BYTES)"
      )
      expect(yield* refused(["run", "--batch-bytes", "2GiB"])).toBe(
        "cxlog run: invalid publisher options: batchBytes 2147483648 exceeds maxBatchBytes 1048576: raise maxBatchBytes with it (cxlog publish --max-batch-bytes), within the brokers' --max-batch-bytes (CXLOG_MAX_BATCH_BYTES)"
      )
      expect(yield* refused(["run", "--bytes", "100"])).toBe(
        "cxlog run: --bytes 100 holds no whole 1024-byte message (--message-bytes)"
      )
      expect(yield* refused(["run", "--broker-count", "70"])).toMatch(
        /^cxlog run: invalid log configuration: maxBrokers 70 \(CXLOG_LOG_MAX_BROKERS\) exceeds 64; effective configuration: /
      )
      expect(yield* refused(["bench", "--batch-bytes", "2MiB"])).toBe(
        "cxlog bench: invalid publisher options: batchBytes 2097152 exceeds maxBatchBytes 1048576: raise maxBatchBytes with it (cxlog publish --max-batch-bytes), within the brokers' --max-batch-bytes (CXLOG_MAX_BATCH_BYTES)"
      )
      const port = yield* deadPort
      expect(
        yield* refused(["publish", "--brokers", `127.0.0.1:${port}`, "--count", "1", "--message-bytes", "2000000"])
      ).toBe(
        "cxlog publish: a 2000000-byte message does not fit a batch of at most 1048576 bytes (the largest message is 1048560 bytes, key and headers included); raise the publisher's maxBatchBytes (cxlog publish --max-batch-bytes), within the brokers' --max-batch-bytes (CXLOG_MAX_BATCH_BYTES)"
      )
      // The way forward it names: the same message with a larger batch is not refused for its size (it fails later: no broker there).
      const raised = yield* runCli([
        "publish",
        "--brokers",
        `127.0.0.1:${port}`,
        "--count",
        "1",
        "--message-bytes",
        "2000000",
        "--max-batch-bytes",
        "2MiB",
        "--batch-bytes",
        "2MiB"
      ])
      expect(raised.stderr).not.toMatch(/does not fit a batch/)
      expect(raised.stderr).toMatch(/no broker is listening/)
    }))

  it.scoped("a CXLOG_ variable set but empty is a mistake, not the default: exit 2 naming it, flag variable or not", () =>
    Effect.gen(function*() {
      const region = yield* uniqueRegion("cli-empty")
      expect(yield* refused(["head", "--topic", "t"], { CXLOG_REGION: "" })).toBe(
        "cxlog head: CXLOG_REGION: set but empty: give a NAME, or unset it for the default (cxlog)"
      )
      expect(yield* refused(["run"], { CXLOG_BYTES: "" })).toBe(
        "cxlog run: CXLOG_BYTES: set but empty: give a SIZE, or unset it for the default (1GiB)"
      )
      const unset = "set but empty: give it a value, or unset it for the default"
      expect(yield* refused(["head", "--region", region], { CXLOG_TOPIC_MEMORY: "" })).toBe(
        `cxlog head: CXLOG_TOPIC_MEMORY: ${unset}`
      )
      expect(yield* refused(["run", "--bytes", "1MiB", "--ack", "2"], { CXLOG_DATA_DIR: "" })).toBe(
        `cxlog run: CXLOG_DATA_DIR: ${unset}`
      )
      // Config.integer read "" as 0 here: cxlog config printed a heartbeat of 0 ms.
      expect(yield* refused(["config"], { CXLOG_HEARTBEAT_STALE_MS: "" })).toBe(
        `cxlog config: CXLOG_HEARTBEAT_STALE_MS: ${unset}`
      )
      // A variable a command's flag reads is refused as config's own, not as that command's.
      expect(yield* refused(["config"], { CXLOG_REGION: "" })).toBe(
        "cxlog config: CXLOG_REGION: set but empty: give a NAME, or unset it for the default (cxlog)"
      )
      // One read outside Config (the CLI run forks its roles from) took "" for the default.
      expect(yield* refused(["regions"], { CXLOG_CLI: "" })).toBe(`cxlog regions: CXLOG_CLI: ${unset}`)
      expect(existsSync(`/dev/shm/${region}`)).toBe(false)
      // A switch's variable reads "" as off, as documented.
      const verbose = yield* runCli(["config", "--json"], { CXLOG_VERBOSE: "" })
      expect(verbose.code, verbose.stderr).toBe(0)
    }))

  it.effect("CXLOG_VERBOSE that is no switch stops any command naming it: exit 2 (the --verbose flag wins over it)", () =>
    Effect.gen(function*() {
      // It was read as off, in silence, by every command but config.
      expect(yield* refused(["regions"], { CXLOG_VERBOSE: "bogus" })).toBe(
        "cxlog regions: CXLOG_VERBOSE=bogus: bogus is not true or false"
      )
      const flagWins = yield* runCli(["regions", "--json", "--verbose"], { CXLOG_VERBOSE: "bogus" })
      expect(flagWins.code, flagWins.stderr).toBe(0)
    }))

  it.effect("publishing with no broker listening fails after a few refused attempts, well within the connect timeout, naming the address: exit 1", () =>
    Effect.gen(function*() {
      const port = yield* deadPort
      // A connect timeout past the test's own: only the refusals can end it.
      const { code, stderr } = yield* runCli([
        "publish",
        "--brokers",
        `127.0.0.1:${port}`,
        "--count",
        "1",
        "--connect-timeout-ms",
        "600000"
      ])
      expect(code).toBe(1)
      expect(oneLine(stderr)).toMatch(
        new RegExp(
          `^cxlog publish: no broker is listening: 127\\.0\\.0\\.1:${port} \\(unreachable: connect ECONNREFUSED .*\\), each refused \\d+ attempts; start one`
        )
      )
    }))

  it.scoped("a malformed or unworkable region variable: exit 2, one line naming the variable or every problem", () =>
    Effect.gen(function*() {
      const region = yield* uniqueRegion("cli-config")
      const malformed = yield* runCli(["head", "--region", region], { CXLOG_TOPIC_MEMORY: "abc" })
      expect(malformed.code).toBe(2)
      expect(oneLine(malformed.stderr)).toBe(
        `cxlog head: CXLOG_TOPIC_MEMORY: abc is not a size: use 64KiB, 1GiB, … or a number of bytes`
      )
      // The size is read as the docs write it.
      const sized = yield* runCli(["config", "--json"], { CXLOG_TOPIC_MEMORY: "128MiB" })
      expect(
        (JSON.parse(sized.stdout) as Array<{ variable: string; value: string }>).find((r) =>
          r.variable === "CXLOG_TOPIC_MEMORY"
        )?.value
      ).toBe(`${128 << 20}`)
      const unworkable = yield* runCli(["head", "--region", region], { CXLOG_TOPIC_MEMORY: "16KiB" })
      expect(unworkable.code).toBe(2)
      expect(oneLine(unworkable.stderr)).toMatch(
        /^cxlog head: invalid log configuration: a topic of the default memory and writers cannot be made: memory 16KiB gives each of 4 writer lanes less than 8KiB: give it at least 32KiB; effective configuration: maxBrokers=/
      )
      // A variable cxlog no longer reads is named with what took its place, not ignored.
      const retired = yield* runCli(["config"], { CXLOG_LOG_BLOG_BYTES: "2MiB" })
      expect(retired.code).toBe(2)
      expect(oneLine(retired.stderr)).toBe(
        "cxlog config: CXLOG_LOG_BLOG_BYTES is no longer read: a topic's Blogs share its memory: give it with cxlog topics create --memory, or set CXLOG_TOPIC_MEMORY for the head that creates the region (every topic's default there); unset it"
      )
    }))

  it.effect("a runtime failure is one line, exit 1; --verbose adds its cause", () =>
    Effect.gen(function*() {
      const plain = yield* runCli(["subscribe", "--region", "cxlog-test-no-such-region"])
      expect(plain.code).toBe(1)
      expect(oneLine(plain.stderr)).toMatch(/^cxlog subscribe: region cxlog-test-no-such-region does not exist/)
      const verbose = yield* runCli(["subscribe", "--region", "cxlog-test-no-such-region", "--verbose"])
      expect(verbose.code).toBe(1)
      expect(verbose.stderr.split("\n")[0]).toBe(plain.stderr.trimEnd())
      expect(verbose.stderr.trimEnd().split("\n").length).toBeGreaterThan(1)
    }))
})

describe("cxlog publish's output", () => {
  it.effect("no input at all (empty stdin): exit 0, a summary without NaN that says no batch was acknowledged", () =>
    Effect.gen(function*() {
      const port = yield* deadPort
      // stdin is /dev/null: no line, so no broker is needed either.
      const { code, stderr } = yield* runCli(["publish", "--brokers", `127.0.0.1:${port}`])
      expect(code, stderr).toBe(0)
      expect(oneLine(stderr)).toMatch(
        /^publisher: 0 messages in 0 batches, [\d.]+ s; no batch acknowledged; resends 0, fences 0$/
      )
      expect(stderr).not.toContain("NaN")
    }))
})

/** Whether util-linux's `script` is here to give a command a terminal. */
const hasScript = (() => {
  try {
    execFileSync("script", ["--version"], { stdio: "ignore" })
    return true
  } catch {
    return false
  }
})()

/**
 * Runs `cxlog <args>` on a terminal (util-linux `script`), types `keys` once its output matches
 * `ready`, and gives everything the terminal showed once it ends (SIGKILLed if the scope closes first).
 */
const onTerminal = (args: ReadonlyArray<string>, ready: RegExp, keys: string) =>
  Effect.acquireUseRelease(
    Effect.sync(() =>
      spawn("script", ["-qec", [process.execPath, cli, ...args].map((a) => `'${a}'`).join(" "), "/dev/null"], {
        stdio: ["pipe", "pipe", "pipe"]
      })
    ),
    (child) =>
      Effect.async<string>((resume) => {
        let shown = ""
        let typed = false
        child.stdout!.on("data", (chunk: Buffer) => {
          shown += chunk.toString()
          if (!typed && ready.test(shown)) {
            typed = true
            child.stdin!.write(keys)
          }
        })
        child.on("close", () => resume(Effect.succeed(shown)))
      }),
    (child) => Effect.sync(() => child.exitCode === null && child.signalCode === null && child.kill("SIGKILL"))
  )

describe("cxlog run's output", () => {
  it.effect.skipIf(!hasScript)(
    "on a terminal, a run stopped before its summary (Ctrl-C) ends its live line: nothing is written onto it",
    () =>
      Effect.gen(function*() {
        const shown = yield* onTerminal(
          ["run", "--bytes", "4GiB", "--broker-count", "1"],
          / MB\/s {2}acked .* s$/,
          "\u0003"
        )
        // The terminal echoes the interrupt as ^C after the live line; the run's newline must follow it.
        expect(shown).toMatch(/ MB\/s {2}acked .* s(\^C)?\r?\n$/)
      })
  )

  it.effect("the live line ends at 100 % acked, ordered and read, at the summary's MB/s", () =>
    Effect.gen(function*() {
      const { code, stdout, stderr } = yield* runCli(["run", "--bytes", "16MiB", "--broker-count", "1"])
      expect(code, stderr).toBe(0)
      const live = [...stdout.matchAll(/^ *(\d+) MB\/s {2}acked +(\d+)% {2}ordered +(\d+)% {2}read +(\d+)% /gm)]
      const last = live.at(-1)!
      expect(last.slice(2).map(Number)).toEqual([100, 100, 100])
      const summary = Number(
        /^published \d+ messages \([\d.]+ MiB\) in [\d.]+ s: ([\d.]+) MB\/s(?:;|$)/m.exec(stdout)![1]
      )
      expect(Math.abs(Number(last[1]) - summary)).toBeLessThanOrEqual(0.5)
    }))
})

describe("cxlog --help", () => {
  it.effect("lists the commands a user runs, not the internal roles, without colour when piped", () =>
    Effect.gen(function*() {
      const { code, stdout } = yield* runCli(["--help"])
      expect(code).toBe(0)
      for (
        const command of [
          "serve",
          "run",
          "bench",
          "head",
          "broker",
          "publish",
          "subscribe",
          "create-topic",
          "topics",
          "regions",
          "config"
        ]
      ) {
        expect(stdout).toMatch(new RegExp(`^  ${command} `, "m"))
      }
      expect(stdout).not.toMatch(/loopback-(send|echo)|--peer/)
      expect(stdout).not.toContain("\u001b[")
    }))

  // Some 25 processes, each about a second of CPU for its help: a loaded runner needs more than the default bound.
  it.effect(
    "every command's flags show a meaning and a default; configuration flags their CXLOG_ variable; examples follow",
    () =>
      Effect.gen(function*() {
        const { stdout: top } = yield* runCli(["--help"])
        const commands = [...top.matchAll(/^ {2}([a-z-]+) {2,}/gm)].map((m) => m[1]!)
        expect(commands.length).toBeGreaterThan(8)
        const withoutVariable: Array<string> = []
        // Each help is its own process; a few at once, then read in the table's order.
        const helps = yield* Effect.forEach(commands, (command) => runCli([command, "--help"]), { concurrency: 4 })
        for (const [i, command] of commands.entries()) {
          const { code, stdout } = helps[i]!
          expect(code).toBe(0)
          // @effect/cli's layout: a flag's heading at the margin, then its paragraphs indented by two.
          const flags = (stdout.split("\nOPTIONS\n")[1] ?? "").split(/^(?=--)/m).slice(1)
          for (const flag of flags) {
            const [heading, ...rest] = flag.split("\n").filter((line) => line !== "")
            const facts = rest.findIndex((line) => /^ {2}\[default [^\]]+\]$/.test(line))
            expect(facts, `${command} ${heading}: [default …]`).toBeGreaterThan(0)
            expect(rest[facts - 1], `${command} ${heading}: its meaning`).toMatch(/^ {2}\S/)
            if (!rest[facts]!.includes(", env CXLOG_")) withoutVariable.push(`${command} ${heading!.split(" ")[0]}`)
          }
          expect(stdout, command).toMatch(/\nEXAMPLES\n\n {2}.*cxlog /)
          expect(stdout, command).toMatch(new RegExp(`\\n\\$ cxlog ${command}[ \\n]`))
          expect(stdout, command).not.toMatch(
            /A user-defined piece of text|This setting is optional|can be set from environment variables/
          )
        }
        // Only what says what to do this once has no variable (docs/configuration.md): a variable would leak into the roles run starts.
        const once =
          /^(\S+ --(json|count|from|from-time|limit|until|remove|prune|processes|kill-broker|kill-head|kill-member|by-key|standby|remote-subscribers|recover|detach|stop|memory|writers|max-message-bytes|max-age|max-messages|discard|if-not-exists)|publish --(key|header)|topics --(topic|order|ack|rf|keep|before|before-time)|consumers --to|selfcheck --dir|(consume|groups) --(group|topic|by-key|no-hold|dead-letter-topic|start|exec|nak-delay-ms|idle-exit-ms)|user --\S+)$/
        expect(withoutVariable.filter((flag) => !once.test(flag))).toEqual([])
        const { stdout: run } = yield* runCli(["run", "--help"])
        expect(run).toMatch(
          /^--bytes SIZE\n(\n {2}.+\n)*\n {2}payload to publish in all\n\n {2}\[default 1GiB, env CXLOG_BYTES\]\n/m
        )
        const { stdout: selfcheck } = yield* runCli(["selfcheck", "--help"])
        expect(selfcheck).not.toContain("--peer")
      }),
    180_000
  )

  it("colour only on a terminal, and never with NO_COLOR", () => {
    const tty = { isTTY: true } as NodeJS.WriteStream
    const pipe = { isTTY: false } as NodeJS.WriteStream
    expect(useColor(tty, {})).toBe(true)
    expect(useColor(tty, { NO_COLOR: "1" })).toBe(false)
    expect(useColor(pipe, {})).toBe(false)
  })
})
