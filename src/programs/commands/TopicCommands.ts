/** The commands that administer a region's topics: `create-topic`, `topics` (and `topics delete`) and `consumers`. */
import { Effect, Either } from "effect"
import { consumersReport, type ResetTarget } from "../admin/Consumers.js"
import { topics as listTopics } from "../admin/TopicAdmin.js"
import { createTopic, deleteTopic } from "../admin/TopicChanges.js"
import { failUsage } from "../cli/CliFailure.js"
import * as Cli from "../cli/CliKit.js"
import { coherence, json, parseFrom, parseTime, region, topic } from "./SharedFlags.js"
import { diskRetentionFlags, topics, topicShapeFlags, withDiskRetention, withShapeFlags } from "./TopicFlags.js"

export const createTopicCommand = Cli.command({
  name: "create-topic",
  summary: "Create topics through the running head's coordinator",
  flags: { region, coherence, topics, ...topicShapeFlags, ...diskRetentionFlags },
  examples: [
    "cxlog create-topic --topic orders:5:1",
    "cxlog create-topic --topic logs --memory 16MiB",
    "cxlog create-topic --topic sensor.42 --memory 64KiB --writers 1 --max-message-bytes 1KiB",
    "cxlog create-topic --region orders --topic audit:2:0 --topic clicks:0:0",
    "cxlog create-topic --topic payments:5:2:2:10GiB:7d   # a copy on disk, keeping 10 GiB and 7 days at most"
  ],
  run: (o) =>
    o.topics.length === 0
      ? failUsage("cxlog create-topic: name a topic with --topic NAME[:ORDER[:ACK[:RF[:DISK-BYTES[:DISK-AGE]]]]]")
      : createTopic({ name: o.region, coherence: o.coherence }, withShapeFlags(withDiskRetention(o.topics, o), o))
})

/** The words after `topics`: none (list), or `delete NAME`. */
const topicChangeOf = (args: ReadonlyArray<string>) => {
  if (args.length === 0) return Effect.succeed(undefined)
  if (args.length === 2 && args[0] === "delete") return Effect.succeed({ delete: args[1]! })
  return failUsage("use cxlog topics to list them, or cxlog topics delete NAME")
}

export const topicsCommand = Cli.command({
  name: "topics",
  summary:
    "List and describe a region's topics (order, ACK, RF, memory, offsets held, sessions, subscribers); delete one",
  details:
    "Listing reads the region in place without joining it, so it works next to a running cluster and on a region whose head is gone. " +
    "`cxlog topics delete NAME` asks the running head to delete a topic: its name is free at once, its publishers and readers get " +
    "TopicDeleted, and its memory comes back once no live process holds it.",
  positional: "delete NAME",
  flags: {
    region,
    coherence,
    topic: Cli.optionalText("topic", {
      placeholder: "NAME",
      shown: "every topic",
      description: "describe only this topic"
    }),
    json: Cli.toggle("json", { description: "print the description as JSON" })
  },
  examples: ["cxlog topics", "cxlog topics --region orders --topic orders --json", "cxlog topics delete clicks"],
  run: (o, args) =>
    Effect.flatMap(topicChangeOf(args), (change) =>
      change === undefined
        ? listTopics({
          region: { name: o.region, coherence: o.coherence },
          ...(o.topic === undefined ? {} : { topic: o.topic }),
          json: o.json
        })
        : deleteTopic({ name: o.region, coherence: o.coherence }, change.delete))
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
