#!/usr/bin/env node
/**
 * The `cxlog` command line: the table of commands (each in its own file under commands/, its
 * flags declared with CliKit: meaning, default and `CXLOG_*` variable), run by NodeRuntime.runMain.
 * A mistake of the user's is one line on stderr and exit code 2 (usage) or 1 (runtime);
 * `--verbose` adds the full cause.
 */
// By module, not from the package's index: the index's other modules (its HTTP client's undici,
// the cluster's RPC) would be evaluated at every start.
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Cause, Effect, Either, Exit, Logger } from "effect"
import { processEnvironment, retiredVariableProblem, setButEmptyProblem } from "../Settings.js"
import { configuration } from "./admin/Configuration.js"
import { describeFailure, failUsage } from "./cli/CliFailure.js"
import * as Cli from "./cli/CliKit.js"
import { hangupStops } from "./cli/Hangup.js"
import { patientStop } from "./cli/RepeatedStop.js"
import { appCommand } from "./commands/AppCommand.js"
import {
  benchCommand,
  benchGroupMemberCommand,
  channelBenchPeerCommand,
  loopbackEchoCommand,
  loopbackSendCommand,
  peerConsumeCommand,
  serviceBenchServerCommand
} from "./commands/BenchCommand.js"
import { brokerCommand } from "./commands/BrokerCommand.js"
import { consumeCommand } from "./commands/ConsumeCommand.js"
import { dashboardCommand } from "./commands/DashboardCommand.js"
import { groupsCommand } from "./commands/GroupsCommand.js"
import { headCommand } from "./commands/HeadCommand.js"
import { regionsCommand, selfcheckCommand } from "./commands/HostCommands.js"
import { mirrorCommand } from "./commands/MirrorCommand.js"
import { publishCommand } from "./commands/PublishCommand.js"
import { runCommand } from "./commands/RunCommand.js"
import { serveCommand } from "./commands/ServeCommand.js"
import { json } from "./commands/SharedFlags.js"
import { subscribeCommand } from "./commands/SubscribeCommand.js"
import { consumersCommand, createTopicCommand, topicsCommand } from "./commands/TopicCommands.js"
import { userCommand } from "./commands/UserCommand.js"
import { SETTINGS_READ_OUTSIDE_CONFIG } from "./ProgramSettings.js"
import { report, tolerateClosedOutput } from "./roles/Report.js"

const VERSION = "0.1.0"

const configCommand = Cli.command({
  name: "config",
  summary: "Print every CXLOG_* variable's value as cxlog resolves it here, and where it came from",
  details: "Flags fall back to their variable, then to their default. The region, ring and coordinator variables " +
    "have no flag: the head reads them when it creates the region, and a layout it would refuse stops config too (exit 2). " +
    "docs/configuration.md describes each.",
  flags: { json },
  examples: ["cxlog config", "CXLOG_TOPIC_MEMORY=128MiB cxlog config --json"],
  run: (o) => configuration(commands, globals, o.json)
})

const commands: ReadonlyArray<Cli.Command<NodeContext.NodeContext>> = [
  serveCommand,
  runCommand,
  benchCommand,
  headCommand,
  brokerCommand,
  publishCommand,
  subscribeCommand,
  consumeCommand,
  mirrorCommand,
  consumersCommand,
  groupsCommand,
  appCommand,
  createTopicCommand,
  topicsCommand,
  dashboardCommand,
  regionsCommand,
  userCommand,
  configCommand,
  selfcheckCommand,
  loopbackSendCommand,
  loopbackEchoCommand,
  channelBenchPeerCommand,
  serviceBenchServerCommand,
  peerConsumeCommand,
  benchGroupMemberCommand
]

const verbose = Cli.toggle("verbose", { env: "CXLOG_VERBOSE", description: "on an error, print its full cause too" })
const globals = [
  Cli.toggle("help", { description: "show help (also: cxlog help COMMAND)" }),
  verbose,
  Cli.toggle("version", { description: "print the version" })
]

const ABOUT = "a totally ordered shared log whose hot tier lives in shared (CXL) memory"
const FOOTER =
  "Start a server with `cxlog serve` (a head and brokers in one command), measure one with `cxlog run`, or start the roles by hand: `cxlog head --topic events`, " +
  "`cxlog broker`, then `cxlog publish` and `cxlog subscribe`. Every flag can also be set by the CXLOG_* variable " +
  "its help names; `cxlog config` shows the resolved configuration (docs/configuration.md)."

const app: Cli.App<NodeContext.NodeContext> = {
  name: "cxlog",
  version: VERSION,
  about: ABOUT,
  commands,
  globals,
  footer: FOOTER
}

const main = Effect.suspend(() => {
  tolerateClosedOutput()
  const words = process.argv.slice(2)
  const named = commands.find((c) => c.name === words[0])
  const prefix = named === undefined ? "cxlog" : `cxlog ${named.name}`
  // Read before parsing: it says how a command line that does not parse is reported. The flag
  // wins over the variable; without it, a variable that is no switch stops the command (below).
  const verboseVariable = words.includes("--verbose")
    ? Either.right({ value: true, source: "flag" as const })
    : Cli.resolveFlag(prefix, verbose, processEnvironment())
  const isVerbose = Either.isRight(verboseVariable) && verboseVariable.right.value === true
  const color = Cli.useColor(process.stdout, processEnvironment())
  hangupStops()
  const endPatience = patientStop(() => prefix)
  const retired = retiredVariableProblem(processEnvironment()) ??
    setButEmptyProblem(SETTINGS_READ_OUTSIDE_CONFIG, processEnvironment())
  const run = retired !== undefined
    ? failUsage(`${prefix}: ${retired}`)
    : Either.isLeft(verboseVariable)
    ? failUsage(verboseVariable.left.message)
    : Cli.runApp(app, words.filter((w) => w !== "--verbose"), color)
  return run.pipe(
    Effect.catchAllCause((cause) => {
      if (Cause.isInterruptedOnly(cause)) return Effect.failCause(cause)
      const failure = describeFailure(cause, named === undefined ? "cxlog" : `cxlog ${named.name}`)
      return Effect.sync(() => {
        process.stderr.write(`${failure.line}\n`)
        // A role forked by `cxlog run`/`bench` tells it why too, whatever the command (a role that
        // reported its typed error already keeps that one: the orchestrator keeps the first).
        const tag = Cause.failureOption(cause).pipe((
          o
        ) => (o._tag === "Some" ? (o.value as { _tag?: unknown } | null)?._tag : undefined))
        report({ event: "failed", error: { _tag: typeof tag === "string" ? tag : "Error", message: failure.line } })
        if (isVerbose) process.stderr.write(`${Cause.pretty(cause, { renderErrorCause: true })}\n`)
        process.exitCode = failure.exitCode
      })
    }),
    // On stderr, as the JSON ones are: stdout carries a command's own output (subscribe's messages, bench's JSON).
    Effect.provide(Logger.replace(
      Logger.defaultLogger,
      Logger.prettyLogger({ colors: Cli.useColor(process.stderr, processEnvironment()), stderr: true })
    )),
    // Ended, with its scopes closed: a SIGINT or SIGTERM now ends the process, by that signal.
    Effect.ensuring(Effect.sync(endPatience))
  )
})

// The exit code main chose (2 usage, 1 runtime) ends the process even with an IPC channel to a parent holding the loop open.
main.pipe(Effect.provide(NodeContext.layer), (effect) =>
  NodeRuntime.runMain(effect, {
    disablePrettyLogger: true,
    teardown: (exit, onExit) =>
      onExit(Exit.isFailure(exit) && !Cause.isInterruptedOnly(exit.cause) ? 1 : Number(process.exitCode ?? 0))
  }))
