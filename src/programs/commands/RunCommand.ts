/** `cxlog run`: a whole local cluster on a fresh region, its load audited end to end, and a summary. */
import { Effect } from "effect"
import * as Cli from "../cli/CliKit.js"
import { withLogFormat } from "../roles/Observe.js"
import { clusterFlags, clusterObserveFlags, clusterShape } from "./ClusterFlags.js"

export const runCommand = Cli.command({
  name: "run",
  summary: "Run a whole cluster on a fresh region: head, brokers, a publisher and an auditing subscriber",
  details: "Everything in one command: it starts the processes, publishes --bytes of stamped messages, checks that " +
    "the subscriber read each one once and in order, prints the throughput and ACK latency, and removes its region.",
  flags: {
    ...clusterFlags("1GiB"),
    json: Cli.toggle("json", { description: "print the summary as one JSON line" }),
    killBroker: Cli.optionalInteger("kill-broker", {
      shown: "none",
      placeholder: "INDEX",
      description: "SIGKILL this broker 30 % into the run (the publisher must fail over)"
    }),
    killHead: Cli.toggle("kill-head", {
      description: "run standby heads and SIGKILL the active head 30 % into the run; reports takeoverMs"
    }),
    standby: Cli.integer("standby", { default: 1, min: 1, description: "--kill-head: how many standby heads to run" }),
    ...clusterObserveFlags
  },
  examples: [
    "cxlog run",
    "cxlog run --bytes 64MiB --broker-count 2 --order 2 --ack 1",
    "cxlog run --bytes 256MiB --kill-broker 1"
  ],
  run: (o) =>
    Cli.load(() => import("../run/Run.js")).pipe(
      Effect.flatMap(({ run }) =>
        run({
          ...clusterShape(o),
          output: o.json ? "json" : "human",
          ...(o.killBroker === undefined ? {} : { killBroker: { index: o.killBroker, atFraction: 0.3 } }),
          ...(o.killHead ? { killHead: { standbys: o.standby, atFraction: 0.3 } } : {}),
          metricsPort: o.metricsPort,
          remoteSubscribers: o.remoteSubscribers,
          ...(o.report === undefined ? {} : { report: { path: o.report, title: "cxlog run" } })
        })
      ),
      Effect.asVoid,
      withLogFormat(o.logFormat)
    )
})
