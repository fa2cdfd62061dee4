/**
 * `--topic NAME[:ORDER[:ACK[:RF[:DISK-BYTES[:DISK-AGE]]]]]` and the disk retention flags of
 * replication factor 2 topics: how `cxlog head` and `cxlog create-topic` name the topics they create.
 */
import { Either, Schema } from "effect"
import {
  AckLevel,
  type Discard,
  MAX_TOPIC_WRITERS,
  OrderMode,
  REPLICATION_FACTORS,
  TOPIC_SPEC_DEFAULTS,
  TopicName,
  type TopicSpec,
  topicSpecConflict
} from "../../services/log/Topics.js"
import { parseSize, processEnvironment } from "../../Settings.js"
import * as Cli from "../cli/CliKit.js"
import { parseAge } from "./SharedFlags.js"

const ORDERS = OrderMode.literals
const ACKS = AckLevel.literals
const isTopicName = Schema.is(TopicName)

/** Why `name` cannot be a topic's name, or undefined when it can. */
export const topicNameMistake = (name: string): string | undefined =>
  isTopicName(name) ? undefined : `the name ${JSON.stringify(name)} is not 1 to 100 of A-Z a-z 0-9 . _ -`

/**
 * `name[:order[:ack[:rf[:disk-bytes[:disk-age]]]]]` → a topic spec, or the field that is wrong.
 * The last two bound what the disk keeps of a replication factor 2 topic (empty: no bound).
 */
export const parseTopicSpec = (spec: string): Either.Either<TopicSpec, string> => {
  const [name = "", orderText = "5", ackText = "1", rfText = "1", bytesText = "", ageText = "", ...extra] = spec.split(
    ":"
  )
  if (extra.length > 0) {
    return Either.left(`${spec}: a topic is name[:order[:ack[:rf[:disk-bytes[:disk-age]]]]], 6 fields at most`)
  }
  const nameMistake = topicNameMistake(name)
  if (nameMistake !== undefined) return Either.left(`${spec}: ${nameMistake}`)
  const orderMode = ORDERS.find((o) => `${o}` === orderText)
  if (orderMode === undefined) return Either.left(`${spec}: the order ${orderText} is not one of ${ORDERS.join(", ")}`)
  const ackLevel = ACKS.find((a) => `${a}` === ackText)
  if (ackLevel === undefined) return Either.left(`${spec}: the ack level ${ackText} is not one of ${ACKS.join(", ")}`)
  const rf = REPLICATION_FACTORS.find((r) => `${r}` === rfText)
  if (rf === undefined) {
    return Either.left(
      `${spec}: the replication factor ${rfText} is not one of ${
        REPLICATION_FACTORS.join(", ")
      } (1: the region; 2: the region and a copy on disk)`
    )
  }
  const maxBytes = bytesText === "" ? undefined : parseSize(bytesText)
  if (maxBytes !== undefined && Either.isLeft(maxBytes)) {
    return Either.left(`${spec}: the disk retention size ${maxBytes.left}`)
  }
  const maxAgeMs = ageText === "" ? undefined : parseAge(ageText)
  if (maxAgeMs !== undefined && Either.isLeft(maxAgeMs)) {
    return Either.left(`${spec}: the disk retention age ${maxAgeMs.left}`)
  }
  const topic: TopicSpec = maxBytes === undefined && maxAgeMs === undefined
    ? { name, order: orderMode, ackLevel, replicationFactor: rf }
    : {
      name,
      order: orderMode,
      ackLevel,
      replicationFactor: rf,
      diskRetention: {
        ...(maxBytes === undefined ? {} : { maxBytes: maxBytes.right }),
        ...(maxAgeMs === undefined ? {} : { maxAgeMs: maxAgeMs.right })
      }
    }
  const conflict = topicSpecConflict(topic)
  return conflict === undefined ? Either.right(topic) : Either.left(`${spec}: ${conflict}`)
}

export const topics = Cli.repeated(
  Cli.custom<TopicSpec>("topic", "NAME[:ORDER[:ACK[:RF[:DISK-BYTES[:DISK-AGE]]]]]", parseTopicSpec, {
    default: { name: "", ...TOPIC_SPEC_DEFAULTS },
    shown: "",
    env: "CXLOG_TOPICS",
    description:
      "a topic to create, e.g. orders:5:1 (order 5, ack 1, RF 1; those are the defaults), or orders:5:2:2:10GiB:7d " +
      "(a copy on disk, which keeps at most 10 GiB and 7 days of it); repeat for more"
  })
)

/** A positive whole number, as `--writers` takes it. */
export const parseCount = (text: string): Either.Either<number, string> => {
  const n = Number(text)
  return /^[0-9]+$/.test(text) && Number.isSafeInteger(n) && n >= 1
    ? Either.right(n)
    : Either.left(`${text} is not a whole number of 1 or more`)
}

/** `--writers`: a whole number from 1 to the most a topic takes, refused as a usage mistake (exit 2) beyond. */
const parseWriters = (text: string): Either.Either<number, string> =>
  Either.flatMap(
    parseCount(text),
    (n) =>
      n <= MAX_TOPIC_WRITERS
        ? Either.right(n)
        : Either.left(`${text} is more writers than a topic takes (${MAX_TOPIC_WRITERS})`)
  )

/** How the topics created here are sized: `--memory`, `--writers`, `--max-message-bytes` (else the region's defaults). */
export const topicShapeFlags = {
  memory: Cli.custom<number | undefined>("memory", "SIZE", parseSize, {
    default: undefined,
    shown: "the region's (CXLOG_TOPIC_MEMORY)",
    description:
      "the memory each topic created here gives its writers' lanes (each writer's lane takes memory / writers, down to a power of two, when it first writes; what a topic retains is bounded by it)"
  }),
  writers: Cli.custom<number | undefined>("writers", "N", parseWriters, {
    default: undefined,
    shown: "the region's (CXLOG_TOPIC_WRITERS)",
    description:
      "the writers (brokers, local publishers) each topic's memory is sized for; a writer beyond them adds a lane of the same size while the region has room"
  }),
  maxMessageBytes: Cli.custom<number | undefined>("max-message-bytes", "SIZE", parseSize, {
    default: undefined,
    shown: "what its lanes allow",
    description:
      "the largest message (key and headers included) each topic created here takes; a larger one is refused naming the limit. Its lanes must hold two batches of it"
  })
}

/** What the topics created here keep in the region: `--max-age`, `--max-messages`, `--discard`. */
export const retentionFlags = {
  maxAge: Cli.custom<number | undefined>("max-age", "AGE", parseAge, {
    default: undefined,
    shown: "no bound",
    description:
      "each topic created here keeps messages younger than this (e.g. 15m, 12h, 7d) by their publishers' stamps; the head trims it every second"
  }),
  maxMessages: Cli.custom<number | undefined>("max-messages", "N", parseCount, {
    default: undefined,
    shown: "no bound",
    description: "each topic created here keeps its last N messages (whole batches: a batch holding one of them stays)"
  }),
  discard: Cli.custom<Discard | undefined>(
    "discard",
    "old|new",
    (t) => (t === "old" || t === "new" ? Either.right(t) : Either.left(`${t} is not old or new`)),
    {
      default: undefined,
      shown: "new",
      description:
        "when a topic's memory is full: old lets the oldest messages go whatever reads them (a reader behind gets out-of-range), new makes publishers wait for the named consumers that hold them"
    }
  )
}

/** `specs`, each with the shape and retention flags that were given. */
export const withShapeFlags = (
  specs: ReadonlyArray<TopicSpec>,
  o: {
    readonly memory: number | undefined
    readonly writers: number | undefined
    readonly maxMessageBytes: number | undefined
    readonly maxAge: number | undefined
    readonly maxMessages: number | undefined
    readonly discard: Discard | undefined
  }
) =>
  specs.map((spec): TopicSpec => {
    const retention = {
      ...(o.maxAge === undefined ? {} : { maxAgeMs: o.maxAge }),
      ...(o.maxMessages === undefined ? {} : { maxMessages: o.maxMessages }),
      ...(o.discard === undefined ? {} : { discard: o.discard })
    }
    return {
      ...spec,
      ...(o.memory === undefined ? {} : { memory: o.memory }),
      ...(o.writers === undefined ? {} : { writers: o.writers }),
      ...(o.maxMessageBytes === undefined ? {} : { maxMessageBytes: o.maxMessageBytes }),
      ...(Object.keys(retention).length === 0 ? {} : { retention })
    }
  })

/** The disk retention of replication factor 2 topics whose spec gives none. */
export const diskRetentionFlags = {
  diskRetentionBytes: Cli.custom<number | undefined>("disk-retention-bytes", "SIZE", parseSize, {
    default: undefined,
    shown: "no bound",
    env: "CXLOG_DISK_RETENTION_BYTES",
    description:
      "replication factor 2 topics created here whose --topic gives no disk size: the disk keeps at most this much of each (whole old segments are deleted)"
  }),
  diskRetentionAge: Cli.custom<number | undefined>("disk-retention-age", "AGE", parseAge, {
    default: undefined,
    shown: "no bound",
    env: "CXLOG_DISK_RETENTION_AGE",
    description: "likewise for age: segments whose last write is older than this (e.g. 7d, 12h) are deleted"
  })
}

/** `specs` with the flags' disk retention filled in where a replication factor 2 topic gives none. */
export const withDiskRetention = (
  specs: ReadonlyArray<TopicSpec>,
  o: { readonly diskRetentionBytes: number | undefined; readonly diskRetentionAge: number | undefined }
) =>
  specs.map((spec): TopicSpec => {
    if (spec.replicationFactor < 2) return spec
    const maxBytes = spec.diskRetention?.maxBytes ?? o.diskRetentionBytes
    const maxAgeMs = spec.diskRetention?.maxAgeMs ?? o.diskRetentionAge
    if (maxBytes === undefined && maxAgeMs === undefined) return spec
    return {
      ...spec,
      diskRetention: {
        ...(maxBytes === undefined ? {} : { maxBytes }),
        ...(maxAgeMs === undefined ? {} : { maxAgeMs })
      }
    }
  })

/**
 * The disk retention flags given to a command whose topics all lack a copy on disk (replication
 * factor 1), as the mistake the same bound in a spec is (`topicSpecConflict`): applied to none of
 * them, they were silently dropped. A value its variable gives is the environment's default for
 * replication factor 2 topics, which others leave unused, so it is no mistake; a flag given the
 * very value its variable holds cannot be told from it, and is not refused either.
 */
export const unusedDiskRetention = (
  specs: ReadonlyArray<TopicSpec>,
  o: { readonly diskRetentionBytes: number | undefined; readonly diskRetentionAge: number | undefined },
  env: Readonly<Record<string, string | undefined>> = processEnvironment()
): string | undefined => {
  if (specs.some((spec) => spec.replicationFactor >= 2)) return undefined
  const given = [
    [diskRetentionFlags.diskRetentionBytes, o.diskRetentionBytes],
    [diskRetentionFlags.diskRetentionAge, o.diskRetentionAge]
  ] as const
  const variableGives = (flag: Cli.Flag<number | undefined>, value: number) => {
    const text = flag.env === undefined ? undefined : env[flag.env]
    return text !== undefined && Either.getOrUndefined(flag.parse(text)) === value
  }
  const flags = given
    .filter(([flag, value]) => value !== undefined && !variableGives(flag, value))
    .map(([flag]) => `--${flag.name}`)
  const which = specs.length === 0
    ? "no topic named here has"
    : specs.length === 1
    ? `topic ${specs[0]?.name} does not have`
    : "none of these topics has"
  return flags.length === 0
    ? undefined
    : `${flags.join(" and ")}: a disk retention needs replication factor 2 (a copy on disk), which ${which}: ` +
      "give it rf 2, or leave the disk retention out"
}

/** A choice among `values` that is unset unless given (the spec's own field, or its default, counts then). */
const optionalChoice = (name: string, values: ReadonlyArray<number>, description: string) =>
  Cli.custom<string | undefined>(
    name,
    values.join("|"),
    (t) => values.some((v) => `${v}` === t) ? Either.right(t) : Either.left(`${t} is not one of ${values.join(", ")}`),
    { default: undefined, shown: "as NAME:ORDER:ACK:RF says, else 5, 1, 1", description }
  )

/** `cxlog topics create`'s spec fields as flags, for where `NAME:ORDER:ACK:RF` leaves them out. */
/** `--if-not-exists` of the creating commands: a name taken already is left as it is, for scripts that may run again. */
export const ifNotExists = Cli.toggle("if-not-exists", {
  description:
    "a topic of the name that exists already is left as it is (its spec not compared) and the command goes on, instead of failing TopicExists"
})

export const specFlags = {
  specOrder: optionalChoice("order", ORDERS, "the topic's order mode"),
  specAck: optionalChoice("ack", ACKS, "the topic's ACK level"),
  specRf: optionalChoice("rf", REPLICATION_FACTORS, "the topic's replication factor (2: a copy on the head's disk)")
}

/**
 * The spec `NAME[:ORDER[:ACK[:RF[:DISK-BYTES[:DISK-AGE]]]]]` with `--order`, `--ack`, `--rf` filling
 * the fields it leaves out (a flag that contradicts a field it gives is refused), or why not.
 */
export const specWithFlags = (
  text: string,
  flags: {
    readonly specOrder: string | undefined
    readonly specAck: string | undefined
    readonly specRf: string | undefined
  }
): Either.Either<TopicSpec, string> => {
  const fields = text.split(":")
  const given: ReadonlyArray<readonly [number, string | undefined, string, string]> = [
    [1, flags.specOrder, "order", "5"],
    [2, flags.specAck, "ack", "1"],
    [3, flags.specRf, "rf", "1"]
  ]
  for (const [at, flag, name] of given) {
    const field = fields[at]
    if (field !== undefined && field !== "" && flag !== undefined && field !== flag) {
      return Either.left(`${text} gives ${name} ${field}, --${name} ${flag}: give it once`)
    }
  }
  const merged = [
    fields[0] ?? "",
    ...given.map(([at, flag, , fallback]) =>
      fields[at] === undefined || fields[at] === "" ? flag ?? fallback : fields[at]!
    ),
    ...fields.slice(4)
  ]
  const spec = merged.join(":")
  // A refusal names the spec as the user typed it, not the one filled in from the flags and defaults.
  return Either.mapLeft(
    parseTopicSpec(spec),
    (problem) =>
      problem.startsWith(`${spec}: `) ? `${text === "" ? `""` : text}: ${problem.slice(spec.length + 2)}` : problem
  )
}
