#!/usr/bin/env node
/**
 * `npm run stress:failover`: `cxlog run --kill-head --json` N times (default 10), each a fresh
 * cluster whose active head is SIGKILLed 30 % into the run while standby heads watch. Prints
 * one line per run (takeoverMs, the epoch that took over, the audit), then a JSON summary as its
 * last line. Exits 1 if a run failed or its audit did not pass, or (unless --no-goal) if a
 * takeover took longer than the goal (--goal-ms, 1000).
 *
 *   node scripts/stress-failover.mjs [--runs 10] [--standby 1] [--bytes 64MiB] [--broker-count 2] [--goal-ms 1000] [--no-goal]
 */
import { spawnSync } from "node:child_process"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

const cli = join(dirname(fileURLToPath(import.meta.url)), "..", "dist", "cxlog.mjs")
const args = process.argv.slice(2)
const flag = (name, fallback) => {
  const at = args.indexOf(`--${name}`)
  return at >= 0 && at + 1 < args.length ? args[at + 1] : fallback
}
const runs = Number(flag("runs", "10"))
const goalMs = Number(flag("goal-ms", "1000"))
const withGoal = !args.includes("--no-goal")
const runArgs = [
  "run",
  "--kill-head",
  "--json",
  "--standby",
  flag("standby", "1"),
  "--bytes",
  flag("bytes", "64MiB"),
  "--broker-count",
  flag("broker-count", "2")
]

const results = []
for (let i = 1; i <= runs; i++) {
  const child = spawnSync(process.execPath, [cli, ...runArgs], { encoding: "utf8", maxBuffer: 64 << 20 })
  const last = child.stdout.trim().split("\n").at(-1) ?? ""
  let summary
  try {
    summary = JSON.parse(last)
  } catch {
    summary = undefined
  }
  const ok = child.status === 0 && summary?.auditPassed === true && typeof summary.takeoverMs === "number"
  const result = ok
    ? {
      run: i,
      ok,
      takeoverMs: summary.takeoverMs,
      takeoverEpoch: summary.takeoverEpoch,
      lost: summary.lost,
      duplicated: summary.duplicated,
      outOfOrder: summary.outOfOrder,
      auditPassed: summary.auditPassed
    }
    : { run: i, ok, exit: child.status, output: (child.stdout + child.stderr).trim().split("\n").slice(-5).join("\n") }
  results.push(result)
  console.log(
    ok
      ? `run ${i}/${runs}: takeoverMs ${result.takeoverMs} (epoch ${result.takeoverEpoch}), lost ${result.lost}, duplicated ${result.duplicated}, out of order ${result.outOfOrder}, audit passed`
      : `run ${i}/${runs}: FAILED (exit ${child.status})\n${result.output}`
  )
}

const times = results.filter((r) => r.ok).map((r) => r.takeoverMs).sort((a, b) => a - b)
const quantile = (q) => (times.length === 0 ? null : times[Math.min(times.length - 1, Math.floor(q * times.length))])
const failed = results.filter((r) => !r.ok).length
const overGoal = times.filter((t) => t > goalMs).length
console.log(JSON.stringify({
  stress: "failover",
  runs,
  failed,
  auditsPassed: results.filter((r) => r.ok).length,
  takeoverMs: {
    min: times[0] ?? null,
    p50: quantile(0.5),
    max: times.at(-1) ?? null,
    all: results.map((r) => (r.ok ? r.takeoverMs : null))
  },
  goalMs,
  overGoal
}))
process.exit(failed > 0 || (withGoal && overGoal > 0) ? 1 : 0)
