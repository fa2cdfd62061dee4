/** `cxlog app start FILE`: runs an app file's processes under a supervisor until SIGINT or SIGTERM (app/RunApp.ts). */
import { Effect } from "effect"
import { failUsage } from "../cli/CliFailure.js"
import * as Cli from "../cli/CliKit.js"

const USAGE = "cxlog app: use cxlog app start FILE.json"

export const appCommand = Cli.command({
  name: "app",
  summary: "Run an app file's processes under a supervisor, restarting them by policy, until Ctrl-C",
  details:
    "FILE is JSON: { \"region\"?, \"drain\"?: { \"group\" }, \"processes\": [{ \"name\", \"script\" | \"command\", \"args\"?, \"count\"?, " +
    "\"restart\"?: never | on-failure | always, \"backoffMs\"?, \"restartLimit\"?, … }] } (docs/ipc.md, \"An app file\"). " +
    "Each supervisor event is printed as a line (--json: a JSON object). SIGINT or SIGTERM stops every child " +
    "together (SIGTERM; with drain, a processing fence over the group; then SIGKILL after " +
    "CXLOG_SUPERVISOR_STOP_TIMEOUT_MS) and exits 0. A file that does not " +
    "decode is an error naming the field, exit code 2.",
  positional: "start FILE",
  flags: { json: Cli.toggle("json", { description: "print each event as a JSON line" }) },
  examples: ["cxlog app start examples/prices/app.json", "cxlog app start app.json --json"],
  run: (o, args) => {
    const [verb, file, ...rest] = args
    return verb !== "start" || file === undefined || rest.length > 0
      ? failUsage(USAGE)
      : Effect.zip(Cli.load(() => import("../app/RunApp.js")), Cli.load(() => import("../cli/ClosedOutput.js"))).pipe(
        Effect.flatMap(([app, output]) => output.untilOutputCloses(app.runApp(file, o.json)))
      )
  }
})
