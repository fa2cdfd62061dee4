/**
 * SIGHUP — the terminal a command runs in closed, or an ssh session dropped — stops a command as
 * SIGTERM does, through its cleanup. Node's default for it ends the process on the spot (Node
 * resets it to the default at start, so even `nohup` does not keep it off): a head left its region
 * and credential files behind, which the next head refused. It is sent on as SIGTERM, so a second
 * and a third count as repeated stops (RepeatedStop.ts) and `serve` stops its roles in order.
 */
export const hangupStops = (): void => {
  process.on("SIGHUP", () => process.kill(process.pid, "SIGTERM"))
}
