/**
 * Runs chosen roles of `cxlog bench` / `cxlog run` under extra Node or V8 flags (profiling:
 * `--trace-opt --trace-deopt`, `--perf-basic-prof`, ...), which NODE_OPTIONS refuses or would
 * give every process. Point CXLOG_CLI at this file; each role it starts forks the real CLI:
 *
 *   CXLOG_CLI=scripts/role-flags.mjs ROLE_FLAGS_CLI=$PWD/dist/cxlog.mjs ROLE_FLAGS="--trace-deopt" \
 *     ROLE_FLAGS_ROLES=broker,head ROLE_FLAGS_OUT=/tmp/roles node dist/cxlog.mjs bench --bytes 1GiB
 *
 * A listed role runs as a child with the flags, its stdout and stderr in ROLE_FLAGS_OUT/ROLE.PID.log
 * (PID is the child's, for `perf record -p`); the IPC messages and signals pass both ways. Other
 * roles run in this process as usual. The CPU figures `bench` reports for a listed role are this
 * relay's, not the child's. A role with extra V8 flags refuses the code cache written without them
 * (docs/performance.md, "Profiling the roles").
 */
import { fork } from "node:child_process"
import { createWriteStream } from "node:fs"
import { join } from "node:path"

const cli = process.env["ROLE_FLAGS_CLI"]
if (cli === undefined || cli === "") {
  process.stderr.write("role-flags: set ROLE_FLAGS_CLI to the real CLI (dist/cxlog.mjs)\n")
  process.exit(2)
}
const args = process.argv.slice(2)
const roles = (process.env["ROLE_FLAGS_ROLES"] ?? "broker,head").split(",")

if (!roles.includes(args[0] ?? "")) {
  await import(cli)
} else {
  const flags = (process.env["ROLE_FLAGS"] ?? "").split(" ").filter((flag) => flag !== "")
  const child = fork(cli, args, {
    stdio: ["ignore", "pipe", "pipe", "ipc"],
    serialization: "advanced",
    execArgv: flags,
    // Whatever the role starts in turn is the real CLI, without the flags.
    env: { ...process.env, CXLOG_CLI: cli }
  })
  const brokerId = args.indexOf("--broker-id")
  const tag = args[0] === "broker" && brokerId >= 0 ? `broker${args[brokerId + 1]}` : args[0]
  const log = createWriteStream(join(process.env["ROLE_FLAGS_OUT"] ?? ".", `${tag}.${child.pid}.log`))
  child.stdout.pipe(log)
  child.stderr.pipe(log)
  child.on("message", (message) => process.send?.(message))
  process.on("message", (message) => {
    if (child.connected) child.send(message)
  })
  for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => child.kill(signal))
  child.on("exit", (code, signal) => process.exit(code ?? (signal === null ? 1 : 128)))
}
