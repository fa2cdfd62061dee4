/** The commands that administer a region's topics: `topics` (list, describe, create, delete, trim, purge), `create-topic` and `consumers`. */
import { Effect, Either } from "effect"
import type { TrimTarget } from "../../services/log/Topics.js"
import type { ResetTarget } from "../admin/Consumers.js"
import type { TopicsAt } from "../admin/TopicChanges.js"
import { failUsage, type UsageError } from "../cli/CliFailure.js"
import * as Cli from "../cli/CliKit.js"
import { adminBrokers, type AdminBrokersFlags, adminRemote } from "./AdminBrokers.js"
import { clientSecurityFlags, coherence, json, parsePosition, parseTime, region, topic } from "./SharedFlags.js"
import {
  diskRetentionFlags,
  ifNotExists,
  retentionFlags,
  specFlags,
  specWithFlags,
  topicNameMistake,
  topics,
  topicShapeFlags,
  unusedDiskRetention,
  withDiskRetention,
  withShapeFlags
} from "./TopicFlags.js"

/** `--brokers` of the topics commands: through these, else the region on this host. */
const topicsBrokers = adminBrokers("changes need its admin right")

/** Where a topics command works: the region named by --region on this host, or through --brokers (with the client flags). */
const topicsAt = (o: AdminBrokersFlags & { readonly coherence: "coherent" | "non-coherent" }) =>
  Effect.map(adminRemote(o), (remote): TopicsAt => ({
    region: { name: o.region, coherence: o.coherence },
    ...(remote === undefined ? {} : { remote })
  }))

export const createTopicCommand = Cli.command({
  name: "create-topic",
  summary: "Create topics (cxlog topics create, for several at once)",
  details:
    "On the region's host it asks the running head's coordinator; with --brokers it asks a broker over TCP, as a user " +
    "with the admin right on each topic (docs/topics.md).",
  flags: {
    region,
    coherence,
    topics,
    ...topicShapeFlags,
    ...retentionFlags,
    ...diskRetentionFlags,
    ifNotExists,
    brokers: topicsBrokers,
    ...clientSecurityFlags
  },
  examples: [
    "cxlog create-topic --topic orders:5:1",
    "cxlog create-topic --topic orders --topic audit --if-not-exists   # again and again: those there are left as they are",
    "cxlog create-topic --topic logs --memory 16MiB",
    "cxlog create-topic --topic sensor.42 --memory 64KiB --writers 1 --max-message-bytes 1KiB",
    "cxlog create-topic --topic clicks:0:0 --max-age 15m --max-messages 1000000 --discard old",
    "cxlog create-topic --region orders --topic audit:2:0 --topic clicks:0:0",
    "cxlog create-topic --topic payments:5:2:2:10GiB:7d   # a copy on disk, keeping 10 GiB and 7 days at most"
  ],
  run: (o) =>
    o.topics.length === 0
      ? failUsage("cxlog create-topic: name a topic with --topic NAME[:ORDER[:ACK[:RF[:DISK-BYTES[:DISK-AGE]]]]]")
      : Effect.gen(function*() {
        const unused = unusedDiskRetention(o.topics, o)
        if (unused !== undefined) return yield* failUsage(`cxlog create-topic: ${unused}`)
        const at = yield* topicsAt(o)
        const { createTopics } = yield* Cli.load(() => import("../admin/TopicChanges.js"))
        return yield* createTopics(at, withShapeFlags(withDiskRetention(o.topics, o), o), o.ifNotExists)
      })
})

/** What the words after `topics` ask for. */
type TopicsWords =
  | { readonly kind: "list" }
  | { readonly kind: "describe" | "purge"; readonly name: string }
  | { readonly kind: "delete"; readonly names: ReadonlyArray<string> }
  | { readonly kind: "trim"; readonly name: string; readonly target: TrimTarget }
  | { readonly kind: "create"; readonly spec: string }

const TOPICS_USAGE =
  "use cxlog topics to list them, or cxlog topics describe NAME | create NAME[:ORDER[:ACK[:RF]]] | delete NAME… | purge NAME | trim NAME (--keep N | --before OFFSET | --before-time TIME)"

const TOPICS_VERBS = ["describe", "create", "delete", "purge", "trim"] as const
const isTopicsVerb = (word: string): word is typeof TOPICS_VERBS[number] =>
  (TOPICS_VERBS as ReadonlyArray<string>).includes(word)

/** A message offset: a whole number of 0 or more. */
const parseOffset = (t: string): Either.Either<number, string> =>
  /^\d+$/.test(t) && Number.isSafeInteger(Number(t))
    ? Either.right(Number(t))
    : Either.left(`${t} is not a message offset (0, 1, …)`)

/** How many messages a trim keeps: a whole number of 0 or more (0: as a purge). */
const parseKept = (t: string): Either.Either<number, string> =>
  /^\d+$/.test(t) && Number.isSafeInteger(Number(t))
    ? Either.right(Number(t))
    : Either.left(`${t} is not a whole number of 0 or more`)

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

const topicsWordsOf = (
  args: ReadonlyArray<string>,
  target: TrimTarget | undefined
): Effect.Effect<TopicsWords, UsageError> => {
  const [word, name, ...rest] = args
  if (word === undefined) return Effect.succeed({ kind: "list" })
  if (!isTopicsVerb(word)) return failUsage(`cxlog topics: ${word}? ${TOPICS_USAGE}`)
  if (name === undefined) return failUsage(`cxlog topics ${word}: name the topic (cxlog topics ${word} NAME)`)
  // A name no topic can have is the command line's mistake, said before the head's coordinator (which
  // refuses it as an invalid request) or a broker is asked; create checks its spec's the same way.
  if (word === "delete" || word === "purge" || word === "trim") {
    const mistake = (word === "delete" ? [name, ...rest] : [name]).map(topicNameMistake).find((m) => m !== undefined)
    if (mistake !== undefined) return failUsage(`cxlog topics ${word}: ${mistake}`)
  }
  if (word === "delete") return Effect.succeed({ kind: "delete", names: [name, ...rest] })
  if (rest.length > 0) return failUsage(`cxlog topics ${word} ${name}: ${rest.join(" ")}? one topic at a time`)
  switch (word) {
    case "describe":
    case "purge":
      return Effect.succeed({ kind: word, name })
    case "trim":
      return target === undefined
        ? failUsage(`cxlog topics trim ${name}: say where with one of --keep N, --before OFFSET, --before-time TIME`)
        : Effect.succeed({ kind: "trim", name, target })
    case "create":
      return Effect.succeed({ kind: "create", spec: name })
  }
}

/** `cxlog topics trim`'s flags: where it cuts. */
const trimFlags = {
  keep: Cli.custom<number | undefined>("keep", "N", parseKept, {
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
}

/** The flags of one verb of `cxlog topics` (every verb takes where it works besides: --region, --brokers, …). */
const verbFlags = {
  list: {
    topic: Cli.optionalText("topic", {
      placeholder: "NAME",
      shown: "every topic",
      description: "list only this topic"
    }),
    json: Cli.toggle("json", { description: "print the list or the description as JSON" })
  },
  create: { ...specFlags, ...topicShapeFlags, ...retentionFlags, ...diskRetentionFlags, ifNotExists },
  trim: trimFlags
}
type VerbFlag = keyof typeof verbFlags.list | keyof typeof verbFlags.create | keyof typeof verbFlags.trim

/** Which of the verb flags each verb takes. */
const takes: Record<TopicsWords["kind"], ReadonlyArray<VerbFlag>> = {
  list: ["topic", "json"],
  describe: ["json"],
  create: Object.keys(verbFlags.create) as Array<keyof typeof verbFlags.create>,
  delete: [],
  purge: [],
  trim: Object.keys(verbFlags.trim) as Array<keyof typeof verbFlags.trim>
}

/**
 * A flag given that the verb does not take is refused, naming the verbs that do: `purge NAME
 * --before 1` would otherwise drop every message where the user meant a trim. A flag set by its
 * variable (the disk retention's) is the environment's, not the command's: not checked.
 */
const checkVerbFlags = (kind: TopicsWords["kind"], o: Readonly<Record<VerbFlag, unknown>>) => {
  const all = { ...verbFlags.list, ...verbFlags.create, ...verbFlags.trim }
  for (const key of Object.keys(all) as Array<VerbFlag>) {
    const flag = all[key]
    const given = o[key] !== undefined && o[key] !== false
    if (!given || flag.env !== undefined || takes[kind].includes(key)) continue
    const owners = (Object.keys(takes) as Array<TopicsWords["kind"]>).filter((k) => takes[k].includes(key))
    const verb = kind === "list" ? "cxlog topics" : `cxlog topics ${kind}`
    return failUsage(
      `${verb}: --${flag.name} does not apply here (it is for ${
        owners.map((k) => k === "list" ? "the list" : k).join(", ")
      })`
    )
  }
  return Effect.void
}

export const topicsCommand = Cli.command({
  name: "topics",
  summary:
    "List and describe a region's topics (order, ACK, RF, memory, offsets held, sessions, readers); create, delete, trim and purge them",
  details:
    "On the region's host, listing and describing read the region in place without joining it, so they work next to a " +
    "running cluster and on a region whose head is gone, and create and delete ask the running head's coordinator. With " +
    "--brokers every one of them goes through a broker over TCP, from any host, as the user of --secret-file: a change " +
    "needs its admin right on the topic, a description its read or admin right (docs/topics.md). A deleted topic's name " +
    "is free at once, its publishers and readers get TopicDeleted, and its memory comes back once no live process holds it. " +
    "A trim drops a topic's oldest messages (purge: all of them): readers behind get out-of-range, offsets go on.",
  positional:
    "describe NAME | create NAME[:ORDER[:ACK[:RF[:DISK-BYTES[:DISK-AGE]]]]] | delete NAME… | purge NAME | trim NAME",
  flags: {
    region,
    coherence,
    ...verbFlags.list,
    ...verbFlags.create,
    ...verbFlags.trim,
    brokers: topicsBrokers,
    ...clientSecurityFlags
  },
  examples: [
    "cxlog topics",
    "cxlog topics describe orders",
    "cxlog topics create orders.eu:5:1 --memory 16MiB",
    "cxlog topics create payments --rf 2 --ack 2 --disk-retention-age 7d",
    "cxlog topics delete clicks",
    "cxlog topics trim clicks --keep 1000",
    "cxlog topics trim clicks --before-time 2h",
    "cxlog topics purge clicks",
    "cxlog topics --brokers 10.0.0.5:7400 --secret-file ops.secret create audit --memory 8MiB"
  ],
  run: (o, args) =>
    Effect.gen(function*() {
      const words = yield* topicsWordsOf(args, trimTargetOf(o))
      yield* checkVerbFlags(words.kind, o)
      const at = yield* topicsAt(o)
      const { topics: listTopics } = yield* Cli.load(() => import("../admin/TopicAdmin.js"))
      const { createTopics, deleteTopics, trimTopic } = yield* Cli.load(() => import("../admin/TopicChanges.js"))
      switch (words.kind) {
        case "list":
          return yield* listTopics({
            at,
            ...(o.topic === undefined ? {} : { topic: o.topic }),
            detailed: false,
            json: o.json
          })
        case "describe":
          return yield* listTopics({ at, topic: words.name, detailed: true, json: o.json })
        case "create": {
          const spec = specWithFlags(words.spec, o)
          if (Either.isLeft(spec)) return yield* failUsage(`cxlog topics create: ${spec.left}`)
          const unused = unusedDiskRetention([spec.right], o)
          if (unused !== undefined) return yield* failUsage(`cxlog topics create: ${unused}`)
          return yield* createTopics(at, withShapeFlags(withDiskRetention([spec.right], o), o), o.ifNotExists)
        }
        case "delete":
          return yield* deleteTopics(at, words.names)
        case "purge":
          return yield* trimTopic(at, words.name, undefined)
        case "trim":
          return yield* trimTopic(at, words.name, words.target)
      }
    })
})

/** The words after `consumers`: none, or `reset NAME` with `--to`. */
const resetOf = (args: ReadonlyArray<string>, to: ResetTarget | undefined) => {
  if (args.length === 0 && to === undefined) return Effect.succeed(undefined)
  if (args.length === 2 && args[0] === "reset" && to !== undefined) return Effect.succeed({ name: args[1]!, to })
  return failUsage("cxlog consumers: use cxlog consumers reset NAME --topic T --to earliest|latest|OFFSET|TIME")
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
    to: Cli.custom<ResetTarget | undefined>("to", "earliest|latest|OFFSET|TIME", parsePosition, {
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
      const { consumersReport } = yield* Cli.load(() => import("../admin/Consumers.js"))
      return yield* consumersReport({
        region: { name: o.region, coherence: o.coherence },
        topic: o.topic,
        ...(o.remove === undefined ? {} : { remove: o.remove }),
        ...(reset === undefined ? {} : { reset }),
        json: o.json
      })
    })
})
