/** `cxlog user`: adds, removes or lists the users of a region's credential file, with their rights and limits. */
import { Effect } from "effect"
import * as Cli from "../cli/CliKit.js"
import { credentials, json, region } from "./SharedFlags.js"

export const userCommand = Cli.command({
  name: "user",
  summary: "Add, remove or list the users of a credential file: who may publish to, read and administer which topics",
  details: "add NAME makes a random secret and prints NAME:SECRET once (or writes it to --secret-file, 0600): the " +
    "content of that user's secret file; for a user that exists it sets the rights and limits given, keeping the " +
    "others and its secret " +
    "(--new-secret replaces it). Brokers re-read the file on change: a removed user's next connection is refused. " +
    "Per-user limits hold per broker. See docs/security.md.",
  positional: "add NAME | remove NAME | list",
  flags: {
    region,
    credentials,
    publish: Cli.optionalText("publish", {
      blankAllowed: true,
      placeholder: "PATTERN,…",
      shown: "* (a user that exists: its own)",
      description:
        "add: topics the user may publish to, and name as a consumer group's dead-letter topic (* matches any characters; \"\" for none)"
    }),
    read: Cli.optionalText("read", {
      blankAllowed: true,
      placeholder: "PATTERN,…",
      shown: "* (a user that exists: its own)",
      description: "add: topics the user may read (* matches any characters; \"\" for none)"
    }),
    consume: Cli.optionalText("consume", {
      blankAllowed: true,
      placeholder: "PATTERN,…",
      shown: "* (a user that exists: its own)",
      description: "add: named consumers the user may join and commit for (\"\" for none)"
    }),
    admin: Cli.optionalText("admin", {
      blankAllowed: true,
      placeholder: "PATTERN,…",
      shown: "none (a user that exists: its own)",
      description:
        "add: topics the user may create, delete, trim and purge through a broker (cxlog topics --brokers; \"\" for none)"
    }),
    secretFile: Cli.optionalText("secret-file", {
      placeholder: "FILE",
      shown: "print it",
      description: "add: write the user's secret file here (0600)"
    }),
    newSecret: Cli.toggle("new-secret", {
      description:
        "add, for a user that exists: replace its secret too (its clients need the new secret file); without it the secret is kept"
    }),
    messagesPerS: Cli.optionalInteger("messages-per-s", {
      shown: "0 (a user that exists: its own)",
      description: "add: the user's messages a second per broker (0: no limit)"
    }),
    bytesPerS: Cli.optionalInteger("bytes-per-s", {
      placeholder: "BYTES",
      shown: "0 (a user that exists: its own)",
      description: "add: the user's bytes a second per broker (0: no limit)"
    }),
    connections: Cli.optionalInteger("connections", {
      shown: "0 (a user that exists: its own)",
      description: "add: the user's connections per broker (0: no limit)"
    }),
    json
  },
  examples: [
    "cxlog user add alice --publish 'orders.*' --read '*' --secret-file alice.secret",
    "cxlog user add metrics --publish metrics --read '' --messages-per-s 10000 --connections 4",
    "cxlog user add ops --publish '' --read '*' --admin 'orders.*' --secret-file ops.secret",
    "cxlog user list",
    "cxlog user remove alice"
  ],
  run: (o, args) =>
    Cli.load(() => import("../admin/Users.js")).pipe(
      Effect.flatMap(({ users }) => users({ ...o, action: args[0], name: args[1] }))
    )
})
