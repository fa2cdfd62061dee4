#!/usr/bin/env node
/** The `cxlog` command line. */
import { Command, Options } from "@effect/cli"
import { NodeContext, NodeRuntime } from "@effect/platform-node"
import { Effect, Option } from "effect"
import { fileURLToPath } from "node:url"
import { selfCheck, selfCheckPeer } from "./SelfCheck.js"

const cliPath = fileURLToPath(import.meta.url)

const selfcheck = Command.make(
  "selfcheck",
  { peer: Options.text("peer").pipe(Options.optional, Options.withDescription("internal: run as the attaching peer")) },
  ({ peer }) => Option.match(peer, { onNone: () => selfCheck(cliPath), onSome: selfCheckPeer })
).pipe(Command.withDescription("Create a region, attach it from a second process, exchange a value and doorbell wakes"))

const run = Command.make("run", {}, () => selfCheck(cliPath)).pipe(
  Command.withDescription("Run the main job on the embedded default (a fresh region under /dev/shm)")
)

const cxlog = Command.make("cxlog").pipe(Command.withSubcommands([run, selfcheck]))

const cli = Command.run(cxlog, { name: "cxlog", version: "0.1.0" })

cli(process.argv).pipe(Effect.provide(NodeContext.layer), NodeRuntime.runMain)
