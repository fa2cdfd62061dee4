/**
 * Following a `cxlog run`: what its roles have said so far (RunProgress: the messages acked,
 * ordered and read, the publisher's clock, the warm-up's time, CPU per role), and the live line
 * drawn from it, rewritten in place on a terminal or printed every 2 s otherwise.
 */
import { Console, Effect, Fiber, Schedule } from "effect"
import { makeCpuMeter } from "./Cluster.js"
import type { RunRoles } from "./RunCluster.js"
import type { RunOutcome } from "./RunOutcome.js"
import type { RunPlan } from "./RunPlan.js"

export interface RunProgress {
  /** Measured messages acknowledged (the publisher's count), ordered (the heads') and read (the subscriber's). */
  acked: number
  ordered: number
  read: number
  /** The publisher's own clock, the one the summary's MB/s divides by. */
  elapsedMs: number
  /** How long the warm-up took, once the publisher says it is done (`warm`). */
  warmupMs: number | null
  /** The broker SIGKILLed mid-run (`--kill-broker`), once it is. */
  killedBroker: number | null
  /** CPU seconds of each role from the publisher's first progress report to the role's end. */
  readonly cpu: ReturnType<typeof makeCpuMeter>
}

/** A count of the whole log as one of the measured messages (the warm-up's come first). */
const measured = (
  plan: RunPlan,
  count: number | undefined,
  otherwise: number
) => (count === undefined ? otherwise : Math.max(0, count - plan.warmup))

/** The progress record, kept by the roles' events from now on. */
export const followProgress = (
  plan: RunPlan,
  { brokers, head, publisher, remotes, standbys, subscriber }: RunRoles
): RunProgress => {
  const progress: RunProgress = {
    acked: 0,
    ordered: 0,
    read: 0,
    elapsedMs: 0,
    warmupMs: null,
    killedBroker: null,
    cpu: makeCpuMeter([
      head,
      ...standbys,
      ...brokers,
      publisher,
      ...(subscriber === undefined ? [] : [subscriber]),
      ...remotes
    ])
  }
  const { cpu } = progress
  publisher.onEvent("warm", (e) => {
    progress.warmupMs = Math.round(e.elapsedMs)
  })
  publisher.onEvent("progress", (e) => {
    cpu.start()
    progress.acked = e.ackedMessages
    progress.elapsedMs = e.elapsedMs
  })
  // Its last ACK: what it spends after (its latency percentiles) is the bench's arithmetic, not the log's.
  publisher.onEvent("acknowledged", () => cpu.stop(publisher))
  publisher.onEvent("done", () => cpu.stop(publisher))
  for (const h of [head, ...standbys]) {
    h.onEvent("ordered", (e) => {
      progress.ordered = measured(plan, e.ordered["run"], progress.ordered)
    })
  }
  subscriber?.onEvent("progress", (e) => {
    progress.read = measured(plan, e.messages, progress.read)
  })
  subscriber?.onEvent("done", () => cpu.stop(subscriber))
  for (const r of remotes) r.onEvent("done", () => cpu.stop(r))
  return progress
}

/** The live line: MB/s so far, the share of the messages acked, ordered and read, and the publisher's time. */
const liveLine = (plan: RunPlan, progress: RunProgress) => {
  if (!plan.withSubscriber) progress.read = 0
  const seconds = progress.elapsedMs / 1000
  const pct = (n: number) => `${((100 * Math.min(n, plan.messages)) / plan.messages).toFixed(0).padStart(3)}%`
  return `${
    (progress.acked * plan.options.messageBytes / 1e6 / Math.max(seconds, 1e-3)).toFixed(0).padStart(5)
  } MB/s  acked ${pct(progress.acked)}  ordered ${pct(progress.ordered)}  read ${pct(progress.read)}  ${
    seconds.toFixed(1)
  } s`
}

export interface LiveLine {
  readonly ticker: Fiber.Fiber<unknown>
  /** On a terminal: whether a line stands without its newline. */
  readonly drawn: { open: boolean }
}

/** Draws the live line from 250 ms on: every 250 ms on a terminal, every 2 s for other human output. */
export const startLiveLine = (plan: RunPlan, progress: RunProgress) =>
  Effect.gen(function*() {
    // On a terminal the live line is rewritten in place, without its newline: a run that stops
    // before its summary (a role failed, Ctrl-C) ends it, or the failure's line would go onto it.
    const drawn = { open: false }
    yield* Effect.addFinalizer(() => Effect.sync(() => drawn.open && process.stdout.write("\n")))
    const ticker = yield* Effect.sync(() => {
      if (!plan.interactive) return
      process.stdout.write(`\r${liveLine(plan, progress)}`)
      drawn.open = true
    }).pipe(
      Effect.zipRight(
        !plan.human || plan.interactive ? Effect.void : Effect.suspend(() => Console.log(liveLine(plan, progress)))
      ),
      Effect.repeat(Schedule.spaced(plan.interactive ? "250 millis" : "2 seconds")),
      Effect.delay("250 millis"),
      Effect.fork
    )
    const live: LiveLine = { ticker, drawn }
    return live
  })

/** Stops the live line and draws its last one: the summary's own numbers. */
export const endLiveLine = (plan: RunPlan, progress: RunProgress, { audited, published }: RunOutcome, live: LiveLine) =>
  Effect.gen(function*() {
    yield* Fiber.interrupt(live.ticker)
    // Every message acked (else the publisher failed), what the subscriber read, in the publisher's time.
    progress.acked = plan.messages
    progress.elapsedMs = published.elapsedMs
    if (audited !== undefined) progress.read = measured(plan, audited.messages, progress.read)
    progress.ordered = Math.max(progress.ordered, progress.read, plan.options.ackLevel >= 1 ? plan.messages : 0)
    if (plan.interactive) {
      process.stdout.write(`\r${liveLine(plan, progress)}\n`)
      live.drawn.open = false
    } else yield* plan.say(liveLine(plan, progress))
  })
