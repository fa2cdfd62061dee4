/**
 * A second SIGINT or SIGTERM while the command stops. NodeRuntime.runMain takes the first (it
 * interrupts the command, whose scopes then close: a head unlinks its region, a role frees its
 * slot) and removes its listeners, so a second would take Node's default and kill the process
 * mid-cleanup — two Ctrl-C's or a supervisor's TERM sent twice left a region behind that the next
 * head refused. The second is taken here and said; a third kills at once, as a user pressing
 * Ctrl-C again means it.
 *
 * Only while the command runs: the function returned takes the listeners off once it has ended.
 * A role forked by `cxlog run` that finished its work stays up (its IPC channel holds it) until the
 * run SIGTERMs it; with the listeners left on, that SIGTERM was taken as a first one and ignored,
 * and every run waited out its stop's 3 s before the SIGKILL, for the publisher and the subscriber.
 */
const STOP_SIGNALS = ["SIGINT", "SIGTERM"] as const

export const patientStop = (command: () => string): () => void => {
  let received = 0
  const onSignal = (signal: NodeJS.Signals) => {
    received++
    if (received < 2) return
    for (const s of STOP_SIGNALS) process.removeListener(s, onSignal)
    process.stderr.write(
      `${command()}: ${signal} while stopping: still cleaning up what it holds; one more signal stops it at once, leaving that behind\n`
    )
  }
  for (const s of STOP_SIGNALS) process.on(s, onSignal)
  return () => {
    for (const s of STOP_SIGNALS) process.removeListener(s, onSignal)
  }
}
