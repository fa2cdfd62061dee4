/**
 * A second SIGINT or SIGTERM while the command stops. NodeRuntime.runMain takes the first (it
 * interrupts the command, whose scopes then close: a head unlinks its region, a role frees its
 * slot) and removes its listeners, so a second would take Node's default and kill the process
 * mid-cleanup — two Ctrl-C's or a supervisor's TERM sent twice left a region behind that the next
 * head refused. The second is taken here and said; a third kills at once, as a user pressing
 * Ctrl-C again means it.
 *
 * Only while the command runs: once the function returned is called (the command has ended), a
 * signal ends the process as Node's default would, by that signal. A role forked by `cxlog run`
 * that finished its work stays up (its IPC channel holds it) until the run SIGTERMs it; taken as a
 * first one and ignored, that SIGTERM cost every run its stop's 3 s before the SIGKILL.
 *
 * The listeners stay on to do so rather than being taken off: Node dispatches a signal on a later
 * turn of its loop than the one it arrived in, and drops it if its last listener has gone in
 * between. A SIGTERM sent at a publisher's "done", arriving while its scope closed, was so lost
 * once the command ended (runMain takes its own listeners off then) and the role stayed up for good.
 */
const STOP_SIGNALS = ["SIGINT", "SIGTERM"] as const

export const patientStop = (command: () => string): () => void => {
  let received = 0
  let ended = false
  const stopListening = () => {
    for (const s of STOP_SIGNALS) process.removeListener(s, onSignal)
  }
  const onSignal = (signal: NodeJS.Signals) => {
    if (ended) {
      // With no listener left the signal has Node's default action again: raised anew, it ends the process.
      stopListening()
      process.kill(process.pid, signal)
      return
    }
    received++
    if (received < 2) return
    stopListening()
    process.stderr.write(
      `${command()}: ${signal} while stopping: still cleaning up what it holds; one more signal stops it at once, leaving that behind\n`
    )
  }
  for (const s of STOP_SIGNALS) process.on(s, onSignal)
  return () => {
    ended = true
  }
}
