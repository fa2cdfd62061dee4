/**
 * What the roles of `cxlog run` and `cxlog bench` tell their orchestrator (Report.ts `report`),
 * as a Schema per event kind: a role's vocabulary. `spawnRole` decodes each event of a kind its
 * role's vocabulary names once, where it arrives, so a malformed one fails that role naming the
 * field instead of reaching a figure. A kind names only the fields the orchestrator reads; the
 * rest of an event passes through as sent.
 */
import { Schema } from "effect"
import type { AuditResult } from "../run/Audit.js"

/** The typed error a role reported before it failed (`reportFailure`): its tag, message and fields. */
export const ReportedError = Schema.Struct(
  { _tag: Schema.String, message: Schema.String },
  Schema.Record({ key: Schema.String, value: Schema.Unknown })
)
export type ReportedError = typeof ReportedError.Type

/** Every role's last word when it fails (its own typed error, or the CLI's line for it). */
export const FailedEvent = Schema.Struct({ event: Schema.Literal("failed"), error: ReportedError })

/** `cxlog head`, active or standby. */
export const HeadEvents = {
  /** It leads: its sequencer's epoch. */
  ready: Schema.Struct({ event: Schema.Literal("ready"), epoch: Schema.Number }),
  /** Each topic's ordered messages so far, by name. */
  ordered: Schema.Struct({
    event: Schema.Literal("ordered"),
    ordered: Schema.Record({ key: Schema.String, value: Schema.Number })
  }),
  /** Its durable tier's fdatasyncs and the bytes they covered, since it started. */
  durable: Schema.Struct({ event: Schema.Literal("durable"), fsyncs: Schema.Number, bytes: Schema.Number }),
  /** When (epoch ms) it wrote its first GOI entry, as a head that took over. */
  firstOrdered: Schema.Struct({ event: Schema.Literal("firstOrdered"), atMs: Schema.Number })
}

/** `cxlog broker`. */
export const BrokerEvents = {
  listening: Schema.Struct({ event: Schema.Literal("listening"), port: Schema.Number })
}

/** `cxlog mirror`. */
export const MirrorEvents = {
  /** Connected to JetStream and resumed: it mirrors from `offset` on (each time it gets there after an outage too). */
  mirroring: Schema.Struct({ event: Schema.Literal("mirroring"), offset: Schema.Number })
}

/** `cxlog publish --count`: its own clock (`elapsedMs`) is the one a run's MB/s divides by. */
export const PublisherEvents = {
  /** The warm-up is acknowledged. */
  warm: Schema.Struct({ event: Schema.Literal("warm"), elapsedMs: Schema.Number }),
  progress: Schema.Struct({
    event: Schema.Literal("progress"),
    elapsedMs: Schema.Number,
    ackedMessages: Schema.Number
  }),
  /** With `--report-acks`: a batch acknowledged as it comes, its messages `from` … `from + count - 1` (publisher numbers). */
  acked: Schema.Struct({ event: Schema.Literal("acked"), from: Schema.Number, count: Schema.Number }),
  /** Everything published is acknowledged (the run's CPU meter stops here; `done` follows with the figures). */
  acknowledged: Schema.Struct({ event: Schema.Literal("acknowledged"), elapsedMs: Schema.Number }),
  done: Schema.Struct({
    event: Schema.Literal("done"),
    elapsedMs: Schema.Number,
    /** When its measured part began (epoch ms, sub-millisecond): the clock point every system's MB/s starts from. */
    startedAtMs: Schema.Number,
    /** ACK latency: each stamped message's from its publish call (each batch's from its seal when publishing lines). */
    ackLatencyP50Us: Schema.Number,
    ackLatencyP99Us: Schema.Number,
    /** The ACK latency at each percentile 0 … 100 (empty without an ACK). */
    ackLatencyQuantilesUs: Schema.Array(Schema.Number),
    resends: Schema.Number,
    batches: Schema.Number,
    /** The send window as the publisher finished, in batches: where the adaptive window settled, or `--window`. */
    window: Schema.Number
  })
}

const Audit: Schema.Schema<AuditResult> = Schema.Struct({
  expected: Schema.Number,
  received: Schema.Number,
  lost: Schema.Number,
  notDelivered: Schema.Number,
  duplicated: Schema.Number,
  outOfOrder: Schema.Number,
  publishOrder: Schema.Boolean,
  crcMismatches: Schema.Number,
  malformed: Schema.Number,
  passed: Schema.Boolean
})

/** `cxlog subscribe --audit-publishers N`, in the region or over TCP (RemoteAudit.ts). */
export const AuditingSubscriberEvents = {
  progress: Schema.Struct({ event: Schema.Literal("progress"), messages: Schema.Number }),
  done: Schema.Struct({
    event: Schema.Literal("done"),
    messages: Schema.Number,
    bytes: Schema.Number,
    elapsedMs: Schema.Number,
    audit: Audit,
    /** When it had read every message once (epoch ms, sub-millisecond): where an e2e MB/s ends; absent if it never did. */
    completeAtMs: Schema.optional(Schema.Number)
  })
}
