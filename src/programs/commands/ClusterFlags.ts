/**
 * The flags of the local cluster `cxlog run` and `cxlog bench` start (its size, load and shape),
 * how its roles are watched, and the `ClusterShape` they describe.
 */
import { Either } from "effect"
import type { OrderMode } from "../../services/log/OrderModes.js"
import { parseSize } from "../../Settings.js"
import * as Cli from "../cli/CliKit.js"
import { reportPathProblem } from "../report/ReportPath.js"
import { logFormatFlag, metricsPortFlag } from "../roles/Observe.js"
import type { ClusterShape } from "../run/ClusterShape.js"
import { ack, batchBytes, brokerCount, fixedWindow, messageBytes, order, orderModeOf, window } from "./SharedFlags.js"

/** What `run` and `bench` give their roles for being watched, and where their report goes. */
export const clusterObserveFlags = {
  metricsPort: {
    ...metricsPortFlag,
    description:
      "give every role a Prometheus endpoint: the head on PORT, broker i on PORT+1+i, then the publisher and the subscriber (0: none)"
  },
  logFormat: logFormatFlag,
  // Checked as it is read: the report is written once the run is over.
  report: Cli.custom<string | undefined>(
    "report",
    "FILE.html",
    (path) => {
      const problem = reportPathProblem(path)
      return problem === undefined ? Either.right(path) : Either.left(problem)
    },
    {
      default: undefined,
      shown: "none",
      env: "CXLOG_REPORT",
      description:
        "write a self-contained HTML report: throughput per role over time, ACK latency CDF, CPU per role, configuration, audit"
    }
  )
}

/** The local cluster `run` and `bench` start; `bytes` defaults differ. */
export const clusterFlags = (defaultBytes: string) => ({
  bytes: Cli.size("bytes", { default: defaultBytes, env: "CXLOG_BYTES", description: "payload to publish in all" }),
  messageBytes,
  brokerCount,
  order,
  ack,
  batchBytes,
  window,
  fixedWindow,
  remoteSubscribers: Cli.integer("remote-subscribers", {
    default: 0,
    min: 0,
    placeholder: "N",
    description:
      "also run N subscribers reading over TCP from the brokers (round-robin), each auditing the whole total order"
  }),
  local: Cli.toggle("local", {
    env: "CXLOG_LOCAL_PUBLISHER",
    description:
      "the publisher is local: on the region's host, appending into the region itself through no broker (rtt and topics: in the bench's process)"
  }),
  discard: Cli.custom<"old" | "new" | undefined>(
    "discard",
    "old|new",
    (t) => (t === "old" || t === "new" ? Either.right(t) : Either.left(`${t} is not old or new`)),
    {
      default: undefined,
      shown: "new",
      description:
        "the run topic's discard policy: old lets the oldest go whatever reads them, new makes publishers wait for the readers that hold them (bench --type latency: measured without and with a reader that never reads)"
    }
  ),
  warmup: Cli.custom("warmup", "SIZE", (t) => (t.trim() === "0" ? Either.right(0) : parseSize(t)), {
    default: 0,
    shown: "0",
    env: "CXLOG_WARMUP",
    description:
      "publish this much first, through the same publisher and subscriber, and measure only what follows: a warm cluster's figures (0: a cold one's)"
  })
})

/** The cluster `clusterFlags`' values describe. */
export const clusterShape = (o: {
  bytes: number
  messageBytes: number
  brokerCount: number
  order: `${OrderMode}`
  ack: "0" | "1" | "2"
  batchBytes: number
  window: number
  fixedWindow: boolean
  warmup: number
  local: boolean
  discard: "old" | "new" | undefined
}): ClusterShape => ({
  totalBytes: o.bytes,
  messageBytes: o.messageBytes,
  brokers: o.brokerCount,
  order: orderModeOf(o.order),
  ackLevel: Number(o.ack) as 0 | 1 | 2,
  batchBytes: o.batchBytes,
  window: o.window,
  ...(o.fixedWindow ? { fixedWindow: true } : {}),
  ...(o.warmup > 0 ? { warmupBytes: o.warmup } : {}),
  ...(o.local ? { local: true } : {}),
  ...(o.discard === undefined ? {} : { discard: o.discard })
})
