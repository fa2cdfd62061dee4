/**
 * `cxlog consume` and `cxlog groups` tests run the bundled CLI against a real head on a region of
 * their own, as a user on the region's host does.
 */
import { expect } from "@effect/vitest"
import { Effect } from "effect"
import { groupsRegionEnv } from "../fixtures/groups-harness.js"
import { forkCli, runCliWithin } from "./CliRoles.js"
import { uniqueRegion } from "./Processes.js"

/** A head of `topics` on a region named after `prefix`, ready; the environment that names it. */
export const groupsHead = (prefix: string, topics: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const env = groupsRegionEnv(yield* uniqueRegion(prefix))
    const role = yield* forkCli(["head", ...topics.flatMap((topic) => ["--topic", topic])], env)
    yield* role.event("ready")
    return env
  })

/** Runs `cxlog ARGS` to the end (at most 30 s), exit 0; its stdout. */
export const cliOk = (args: ReadonlyArray<string>, env: Record<string, string>) =>
  Effect.gen(function*() {
    const run = yield* runCliWithin(args, env, 30_000)
    expect(run.code, `cxlog ${args.join(" ")}: ${run.stderr}`).toBe(0)
    return run.stdout
  })
