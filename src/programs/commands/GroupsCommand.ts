/** `cxlog groups`: list, describe, create and delete consumer groups, and list one's pending messages (admin/Groups.ts). */
import { Effect } from "effect"
import type { GroupsWords } from "../admin/Groups.js"
import { failUsage } from "../cli/CliFailure.js"
import * as Cli from "../cli/CliKit.js"
import { adminBrokers, adminRemote } from "./AdminBrokers.js"
import { groupSpecFlags, groupSpecOf } from "./GroupFlags.js"
import { clientSecurityFlags, coherence, json, region } from "./SharedFlags.js"

const USAGE = "use cxlog groups [describe NAME | pending NAME | create NAME --topic T | delete NAME]"
const VERBS = ["describe", "pending", "create", "delete"] as const
const isVerb = (word: string): word is typeof VERBS[number] => (VERBS as ReadonlyArray<string>).includes(word)

const wordsOf = (
  args: ReadonlyArray<string>,
  o: Parameters<typeof groupSpecOf>[2] & { readonly topic: string | undefined }
) => {
  const [verb, name, ...rest] = args
  if (verb === undefined) return Effect.succeed<GroupsWords>({ kind: "list" })
  if (!isVerb(verb)) return failUsage(`cxlog groups: ${verb}? ${USAGE}`)
  if (name === undefined) return failUsage(`cxlog groups ${verb}: name the group (cxlog groups ${verb} NAME)`)
  if (rest.length > 0) return failUsage(`cxlog groups ${verb} ${name}: ${rest.join(" ")}? one group at a time`)
  switch (verb) {
    case "describe":
    case "pending":
    case "delete":
      return Effect.succeed<GroupsWords>({ kind: verb, name })
    case "create":
      return o.topic === undefined
        ? failUsage("cxlog groups create NAME needs --topic T")
        : Effect.succeed<GroupsWords>({ kind: "create", spec: groupSpecOf(name, o.topic, o) })
  }
}

export const groupsCommand = Cli.command({
  name: "groups",
  summary:
    "List the region's consumer groups (members, pending, oldest pending, redeliveries, dead letters); describe, create and delete one; list its pending messages",
  details: "On the region's host it joins the region's groups (the head's coordinator answers); with --brokers every " +
    "word goes through a broker over TCP, from any host, as the user of --secret-file: a group needs the read right " +
    "on its topic and the consume right on its name, a group that cannot be read the admin right on every topic to " +
    "be deleted (docs/consumers.md). `pending NAME` lists each message handed out and not settled: its offset, " +
    "the member holding it (or waiting to be delivered again), its deliveries and when it is due. A deleted " +
    "group's members stop at their next look (GroupDeleted); its name is free at once.",
  positional: "describe NAME | pending NAME | create NAME | delete NAME",
  flags: {
    region,
    coherence,
    topic: Cli.optionalText("topic", {
      placeholder: "NAME",
      shown: "none",
      description: "with create: the group's topic"
    }),
    ...groupSpecFlags,
    json,
    brokers: adminBrokers("a group needs the read right on its topic and the consume right on its name"),
    ...clientSecurityFlags
  },
  examples: [
    "cxlog groups",
    "cxlog groups pending mailer",
    "cxlog groups create billing --topic orders --by-key --dead-letter-topic orders.dead",
    "cxlog groups delete billing",
    "cxlog groups --brokers 10.0.0.5:7400 --secret-file ops.secret describe billing"
  ],
  run: (o, args) =>
    Effect.gen(function*() {
      const words = yield* wordsOf(args, o)
      const remote = yield* adminRemote(o)
      const { groupsReport } = yield* Cli.load(() => import("../admin/Groups.js"))
      return yield* groupsReport(
        { region: { name: o.region, coherence: o.coherence }, ...(remote === undefined ? {} : { remote }) },
        words,
        o.json
      )
    })
})
