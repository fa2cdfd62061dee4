/** The commands that administer a region's topics: `create-topic`, `topics` (and `topics delete`) and `consumers`. */
import { Effect, Either } from "effect"
import type { TrimTarget } from "../../services/log/Topics.js"
import { consumersReport, type ResetTarget } from "../admin/Consumers.js"
import { topics as listTopics } from "../admin/TopicAdmin.js"
import { createTopic, deleteTopic, trimTopic } from "../admin/TopicChanges.js"
import { failUsage } from "../cli/CliFailure.js"
import * as Cli from "../cli/CliKit.js"
import { coherence, json, parseFrom, parseTime, region, topic } from "./SharedFlags.js"
import {
  diskRetentionFlags,
  parseCount,
  retentionFlags,
  topics,
  topicShapeFlags,
  withDiskRetention,
  withShapeFlags
} from "./TopicFlags.js"

export const createTopicCommand = Cli.command({
  name: "create-topic",
  summary: "Create topics through the running head's coordinator",
  flags: { region, coherence, topics, ...topicShapeFlags, ...retentionFlags, ...diskRetentionFlags },
  examples: [
    "cxlog create-topic --topic orders:5:1",
    "cxlog create-topic --topic logs --memory 16MiB",
    "cxlog create-topic --topic sensor.42 --memory 64KiB --writers 1 --max-message-bytes 1KiB",
    "cxlog create-topic --topic clicks:0:0 --max-age 15m --max-messages 1000000 --discard old",
    "cxlog create-topic --region orders --topic audit:2:0 --topic clicks:0:0",
    "cxlog create-topic --topic payments:5:2:2:10GiB:7d   # a copy on disk, keeping 10 GiB and 7 days at most"
  ],
  run: (o) =>
    o.topics.length === 0
      ? failUsage("cxlog create-topic: name a topic with --topic NAME[:ORDER[:ACK[:RF[:DISK-BYTES[:DISK-AGE]]]]]")
      : createTopic({ name: o.region, coherence: o.coherence }, withShapeFlags(withDiskRetention(o.topics, o), o))
})

/** A message offset: a whole number of 0 or more. */
const parseOffset = (t: string): Either.Either<number, string> =>
  /^\d+$/.test(t) && Number.isSafeInteger(Number(t))
    ? Either.right(Number(t))
    : Either.left(`${t} is not a message offset (0, 1, …)`)

/** Where `cxlog topics trim` cuts: exactly one of `--keep`, `--before`, `--before-time`. */
const trimTargetOf = (o: {
  readonly keep: number | undefined
  readonly before: number | undefined
  readonly beforeTime: number | undefined
}): TrimTarget | undefined => {
  const given = [
    ...(o.keep === undefined ? [] : [{ keepMessages: o.keep }]),
    ...(o.before === undefined ? [] : [{ beforeOffset: o.before }]),
    ...(o.beforeTime === undefined ? [] : [{ beforeTime: o.beforeTime }])
  ]
  return given.length === 1 ? given[0] : undefined
}

type TopicChange =
  | { readonly delete: string }
  | { readonly purge: string }
  | { readonly trim: string; readonly target: TrimTarget }

const CHANGES =
  "use cxlog topics to list them, cxlog topics delete NAME, cxlog topics purge NAME, or cxlog topics trim NAME with one of --keep N, --before OFFSET, --before-time TIME"

/** The words after `topics`: none (list), `delete NAME`, `purge NAME` or `trim NAME` (with its flag). */
const topicChangeOf = (args: ReadonlyArray<string>, target: TrimTarget | undefined) => {
  if (args.length === 0) return Effect.succeed(undefined)
  const [verb, name] = args
  if (args.length !== 2 || name === undefined) return failUsage(CHANGES)
  if (verb === "delete") return Effect.succeed<TopicChange>({ delete: name })
  if (verb === "purge") return Effect.succeed<TopicChange>({ purge: name })
  if (verb === "trim" && target !== undefined) return Effect.succeed<TopicChange>({ trim: name, target })
  return failUsage(CHANGES)
}

export const topicsCommand = Cli.command({
  name: "topics",
  summary:
    "List and describe a region's topics (order, ACK, RF, memory, offsets held, sessions, subscribers); delete one",
  details:
    "Listing reads the region in place without joining it, so it works next to a running cluster and on a region whose head is gone. " +
    "`cxlog topics delete NAME` asks the running head to delete a topic: its name is free at once, its publishers and readers get " +
    "TopicDeleted, and its memory comes back once no live process holds it.",
  positional: "delete|purge|trim NAME",
  flags: {
    region,
    coherence,
    topic: Cli.optionalText("topic", {
      placeholder: "NAME",
      shown: "every topic",
      description: "describe only this topic"
    }),
    json: Cli.toggle("json", { description: "print the description as JSON" }),
    keep: Cli.custom<number | undefined>("keep", "N", parseCount, {
      default: undefined,
      shown: "none",
      description: "with trim NAME: keep the last N messages, drop the rest"
    }),
    before: Cli.custom<number | undefined>("before", "OFFSET", parseOffset, {
      default: undefined,
      shown: "none",
      description: "with trim NAME: drop the messages before this offset"
    }),
    beforeTime: Cli.custom<number | undefined>("before-time", "TIME", parseTime, {
      default: undefined,
      shown: "none",
      description:
        "with trim NAME: drop the messages stamped before this time (an ISO time, or an age such as 2h: that long ago)"
    })
  },
  examples: [
    "cxlog topics",
    "cxlog topics --region orders --topic orders --json",
    "cxlog topics delete clicks",
    "cxlog topics purge clicks",
    "cxlog topics trim clicks --keep 1000",
    "cxlog topics trim clicks --before-time 2h"
  ],
  run: (o, args) =>
    Effect.flatMap(topicChangeOf(args, trimTargetOf(o)), (change): Effect.Effect<void, unknown> => {
      const region = { name: o.region, coherence: o.coherence }
      return change === undefined
        ? listTopics({ region, ...(o.topic === undefined ? {} : { topic: o.topic }), json: o.json })
        : "delete" in change
        ? deleteTopic(region, change.delete)
        : "purge" in change
        ? trimTopic(region, change.purge, undefined)
        : trimTopic(region, change.trim, change.target)
    })
})

/** `--to`: a position as `--from` takes it (earliest, latest, an offset), else a time as `--from-time` does. */
const parseResetTarget = (t: string): Either.Either<ResetTarget | undefined, string> =>
  Either.orElse(
    Either.map(parseFrom(t), (from): ResetTarget => (typeof from === "number" ? { offset: from } : from)),
    () =>
      Either.mapBoth(parseTime(t), {
        onLeft: () =>
          `${t} is not a position: use earliest, latest, a message offset, an ISO time or an age (15m, 2h, 1d)`,
        onRight: (time) => ({ time })
      })
  )

/** The words after `consumers`: none, or `reset NAME` with `--to`. */
const resetOf = (args: ReadonlyArray<string>, to: ResetTarget | undefined) => {
  if (args.length === 0 && to === undefined) return Effect.succeed(undefined)
  if (args.length === 2 && args[0] === "reset" && to !== undefined) return Effect.succeed({ name: args[1]!, to })
  return failUsage("use cxlog consumers reset NAME --topic T --to earliest|latest|OFFSET|TIME")
}

export const consumersCommand = Cli.command({
  name: "consumers",
  summary:
    "List a topic's named consumers with their committed offset, lag and active member; --remove one; reset one to a position",
  details:
    "Runs on the region's host. A consumer holds retention from its committed offset on, with or without a member: " +
    "delete one that is no longer read (refused while a member is active). `cxlog consumers reset NAME --topic T --to " +
    "earliest|latest|OFFSET|TIME` moves its committed offset (creating it there if need be; refused while a member is " +
    "active): TIME is an ISO time or an age (15m, 2h, 1d ago), and the consumer resumes at the first message stamped at " +
    "or after it.",
  positional: "reset NAME",
  flags: {
    region,
    coherence,
    topic: topic("the topic whose consumers to list"),
    remove: Cli.optionalText("remove", {
      placeholder: "NAME",
      shown: "none",
      description: "delete this consumer (its retention is released)"
    }),
    to: Cli.custom<ResetTarget | undefined>("to", "earliest|latest|OFFSET|TIME", parseResetTarget, {
      default: undefined,
      shown: "none",
      description: "with reset NAME: where the consumer goes (TIME: an ISO time, or an age such as 15m: that long ago)"
    }),
    json
  },
  examples: [
    "cxlog consumers --topic events",
    "cxlog consumers --topic events --remove billing",
    "cxlog consumers reset billing --topic events --to 2h"
  ],
  run: (o, args) =>
    Effect.gen(function*() {
      const reset = yield* resetOf(args, o.to)
      return yield* consumersReport({
        region: { name: o.region, coherence: o.coherence },
        topic: o.topic,
        ...(o.remove === undefined ? {} : { remove: o.remove }),
        ...(reset === undefined ? {} : { reset }),
        json: o.json
      })
    })
})
