/**
 * What one system call costs a process on this host, timed on the call cxlog's doorbells make to
 * wake a parked process: a futex wake, here of a word nobody waits on (so the kernel only looks).
 * On most hosts that is a fraction of a microsecond; under a hypervisor every system call passes
 * through (PVM runs the guest's kernel in user mode, so its switcher carries each call) it is
 * about a microsecond. Every wake of a parked process, every socket read and write and every turn of an
 * event loop that sleeps pays at least one, so `cxlog selfcheck` reports it beside the cost of a
 * first touch of a page (PageTouch.ts): the two prices a host sets that cxlog's code does not.
 */

/** Calls in one timed pass, and passes (the quickest counts: a pass the scheduler interrupted says nothing of the calls). */
const CALLS_PER_PASS = 20_000
const PASSES = 3

export interface SystemCallCost {
  readonly calls: number
  readonly passes: number
  readonly nsPerCall: number
  /** Waiters the calls woke: 0, or the word was not one nobody waits on and the figure is not a bare call's. */
  readonly woken: number
}

/** Times `wake` (one system call, waking nobody) in `passes` passes of `calls` calls after one untimed pass; the quickest pass's ns a call. */
export const systemCallCost = (
  wake: () => number,
  calls: number = CALLS_PER_PASS,
  passes: number = PASSES
): SystemCallCost => {
  let woken = 0
  // Untimed: V8 compiles the loop, and the kernel's path is warm.
  for (let i = 0; i < calls; i++) woken += wake()
  let quickestNs = Infinity
  for (let pass = 0; pass < passes; pass++) {
    const started = process.hrtime.bigint()
    for (let i = 0; i < calls; i++) woken += wake()
    quickestNs = Math.min(quickestNs, Number(process.hrtime.bigint() - started))
  }
  return { calls, passes, nsPerCall: quickestNs / calls, woken }
}

/** Past this a system call is worth pointing at: a hypervisor's price (or heavy mitigations'), not a bare entry and exit. */
const DEAR_NS = 500

/** One phrase for `cxlog selfcheck`: the figure, and what pays it when it is dear. */
export const describeSystemCalls = (cost: SystemCallCost): string => {
  const figure = `${
    (cost.nsPerCall / 1000).toFixed(2)
  } µs each (a futex wake nobody waits for, the quickest of ${cost.passes} passes of ${cost.calls})`
  if (cost.nsPerCall < DEAR_NS) return figure
  return `${figure}: every wake of a parked process, socket read and write pays at least one ` +
    `(docs/operations.md, "What a system call costs")`
}
