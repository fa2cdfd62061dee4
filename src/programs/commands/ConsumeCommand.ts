/** `cxlog consume`: a member of a consumer group (roles/Consume.ts). */
import { Effect } from "effect"
import { parseAddresses } from "../../layers/net/BrokerAddress.js"
import { type GroupSpec, MAX_NAK_DELAY_MS } from "../../services/groups/ConsumerGroups.js"
import { GROUP_SETTINGS } from "../../services/groups/GroupSettings.js"
import { failUsage } from "../cli/CliFailure.js"
import * as Cli from "../cli/CliKit.js"
import { askedOf, groupSpecFlags, groupSpecOf } from "./GroupFlags.js"
import { clientSecurityFlags, coherence, readerBrokers, region } from "./SharedFlags.js"

/** The group `consume --topic` makes when there is none, and what of it the user asked for. */
const made = (spec: GroupSpec) => ({ make: spec, asked: askedOf(spec) })

export const consumeCommand = Cli.command({
  name: "consume",
  summary: "Join a consumer group: share its topic's messages with the other members, each acked once it is handled",
  details:
    "Runs on the region's host, or anywhere with --brokers (a broker holds the member for it). Each message goes to one member of the group at a time: this one prints it " +
    "and acks it, or with --exec runs the command with the message's value on stdin (and CONSUME_OFFSET, " +
    "CONSUME_DELIVERY_COUNT, CONSUME_GROUP, CONSUME_TOPIC in its environment, and a key's bytes in CONSUME_KEY_BASE64, " +
    "as text in CONSUME_KEY too when it is UTF-8 without NUL), acking it when the command exits 0 and delivering it again otherwise; " +
    "every message it holds runs at once, up to --max-in-flight commands (in a --by-key group a key's messages one after another). " +
    "A message this member holds when it dies goes to the other members at once, when it is stopped once its command is gone " +
    "(SIGTERM, then SIGKILL 2 s later); one held past " +
    "--ack-wait-ms goes to another. With --topic, the group is created if it does not exist (the other flags are its " +
    "spec). Start it in three terminals and kill one: the others take its messages over (docs/consumers.md).",
  flags: {
    region,
    coherence,
    brokers: readerBrokers(
      "join over TCP through the first of these brokers that takes the connection (the next ones if it goes)"
    ),
    ...clientSecurityFlags,
    group: Cli.optionalText("group", { placeholder: "NAME", shown: "none", description: "the consumer group to join" }),
    topic: Cli.optionalText("topic", {
      placeholder: "NAME",
      shown: "the group's",
      description: "the topic the group reads: creates the group if it does not exist"
    }),
    ...groupSpecFlags,
    maxInFlight: Cli.fromSetting("max-in-flight", GROUP_SETTINGS.settings.maxInFlight),
    exec: Cli.optionalText("exec", {
      placeholder: "CMD",
      shown: "print each message",
      description: "run `sh -c CMD` per message, its value on stdin: exit 0 acks it, anything else delivers it again"
    }),
    nakDelayMs: Cli.integer("nak-delay-ms", {
      default: 0,
      // A nak's own bound: past it every failed command's nak would be refused, failing the member.
      max: MAX_NAK_DELAY_MS,
      description: "with --exec: how long a message whose command failed waits before it is delivered again"
    }),
    limit: Cli.optionalInteger("limit", { min: 1, shown: "no limit", description: "stop after this many messages" }),
    idleExitMs: Cli.optionalMillis("idle-exit-ms", {
      min: 1,
      shown: "wait for messages for as long as it runs",
      description:
        "leave (exit 0) once the group has given nothing for this long with every message taken settled: take what is there, then stop"
    }),
    json: Cli.toggle("json", { description: "print each message as a JSON object" })
  },
  examples: [
    "cxlog consume --group mailer --topic emails",
    "cxlog consume --group mailer --exec 'xargs -0 ./send-mail' --max-in-flight 4",
    "cxlog consume --group billing --topic orders --by-key --dead-letter-topic orders.dead --max-deliver 3",
    "cxlog consume --group mailer --topic emails --brokers 10.0.0.5:7400,10.0.0.6:7400",
    "cxlog consume --group nightly --topic reports --exec ./render.sh --idle-exit-ms 5000"
  ],
  run: (o) => {
    const group = o.group
    if (group === undefined) return failUsage("cxlog consume: --group NAME is missing (the consumer group to join)")
    return Effect.gen(function*() {
      const { clientSecurity } = yield* Cli.load(() => import("../admin/Users.js"))
      const { consume } = yield* Cli.load(() => import("../roles/Consume.js"))
      const { untilOutputCloses } = yield* Cli.load(() => import("../cli/ClosedOutput.js"))
      const remote = o.brokers === undefined
        ? undefined
        : { brokers: parseAddresses(o.brokers), ...(yield* clientSecurity(o)) }
      return yield* untilOutputCloses(consume({
        region: { name: o.region, coherence: o.coherence },
        ...(remote === undefined ? {} : { remote }),
        group,
        spec: o.topic === undefined ? undefined : made(groupSpecOf(group, o.topic, o)),
        maxInFlight: o.maxInFlight,
        exec: o.exec,
        nakDelayMs: o.nakDelayMs,
        limit: o.limit,
        idleExitMs: o.idleExitMs,
        json: o.json
      }))
    })
  }
})
