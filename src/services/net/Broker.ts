/**
 * Broker: a TCP server that takes publishers' batches into the log and acknowledges them.
 *
 * Per connection: a HELLO (Schema-validated: protocol version, topic, client id, session
 * epoch, ack level), a WELCOME, then BATCH frames, each checked (session, message framing,
 * crc32c) and appended through its `Appender`; the broker's own ACK tracker sends cumulative
 * ACK frames for the session as its frontier moves (coalesced: at most one per event-loop turn or
 * `ackIntervalMs` while it keeps moving) and a SESSION_FENCED frame if the sequencer fences it. Any bad input gets an
 * ERROR frame and closes that connection only; see src/wire/ for the byte layout.
 */
import { Context, Data, type Duration } from "effect"
import type { WireErrorCode } from "../../layers/net/Control.js"
import type { AckTracker } from "../log/AckTracker.js"
import type { Appender } from "../log/Appender.js"
import type { Topics } from "../log/Topics.js"

/** What a broker needs of the log: its broker slot's Appender, the AckTracker and the topic table. */
export type BrokerLog = Appender | AckTracker | Topics

export interface BrokerOptions {
  /** Interface to listen on (default 127.0.0.1). */
  readonly host?: string
  /** TCP port; 0 picks a free one (see `BrokerShape.port`). Default 0. */
  readonly port?: number
  /** Largest batch payload accepted; a larger length is refused before anything is allocated. Default 1 MiB. */
  readonly maxBatchBytes?: number
  /**
   * Minimum gap between two ACK frames of one connection while its frontier keeps moving;
   * 0 (default) sends at most one per event-loop turn (all batches read in that turn).
   */
  readonly ackIntervalMs?: number
  /** `ackIntervalMs` as a duration (`"5 seconds"`, `Duration.seconds(5)`); given both, this one counts. */
  readonly ackInterval?: Duration.DurationInput
  /**
   * A connection must complete its HELLO within this. Default 5 s. Until then it may queue one
   * HELLO (32 + 4 KiB) before its socket is paused, and any other frame is refused from its header.
   */
  readonly handshakeTimeoutMs?: number
  /** `handshakeTimeoutMs` as a duration (`"5 seconds"`, `Duration.seconds(5)`); given both, this one counts. */
  readonly handshakeTimeout?: Duration.DurationInput
  /**
   * A session past its handshake that sends and receives nothing for this long gets ERROR
   * `idle-timeout` and is closed (batches still awaiting their ACK do not keep it open; a batch
   * waiting for log room does). A subscription gets it when it holds the broker up that long —
   * no credit left, or writes the kernel does not take — with no byte moving either way (one
   * waiting for new messages never does). Default 10 minutes; 0: never.
   */
  readonly idleTimeoutMs?: number
  /** `idleTimeoutMs` as a duration (`"5 seconds"`, `Duration.seconds(5)`); given both, this one counts. */
  readonly idleTimeout?: Duration.DurationInput
  /**
   * Connections served at once; the next one gets ERROR `too-many-connections`. Default 1024,
   * lowered (with a warning) to 64 below the process's open-file limit so that refusal can still be sent.
   */
  readonly maxConnections?: number
  /** Sessions one publisher connection may hold open (one per topic it publishes to); one more is refused `too-many-sessions`. Default 4096. */
  readonly maxSessions?: number
  /** Outgoing bytes queued to a client that does not read before it is dropped as `slow-consumer`. Default 1 MiB. */
  readonly writeBufferBytes?: number
  /**
   * A credential file (docs/security.md): every session authenticates as one of its users
   * (challenge–response) and may use only the topics its rights name. Required, as `cxlog
   * broker` requires it, unless `insecure`: a broker given neither refuses to start.
   */
  readonly credentials?: string
  /** TLS: the broker's certificate and key (PEM files); with `clientCa`, clients must present a certificate it signed. */
  readonly tls?: { readonly cert: string; readonly key: string; readonly clientCa?: string }
  /**
   * Serve without authentication when no `credentials` are given (every client is let in, and a
   * client holding credentials refuses the broker unless it opted in too), and listen beyond
   * loopback without TLS and authentication (refused otherwise). `cxlog broker --insecure`.
   */
  readonly insecure?: boolean
  /** Per connection: past this many messages or bytes a second (about a second's burst) a batch gets ERROR `rate-limited`. 0: unlimited. */
  readonly limits?: { readonly messagesPerSecond?: number; readonly bytesPerSecond?: number }
}

export interface BrokerStats {
  readonly connections: number
  readonly accepted: number
  /** Publisher sessions opened on its connections (one per topic a connection publishes to). */
  readonly sessions: number
  readonly batches: number
  readonly messages: number
  readonly bytes: number
  readonly ackFrames: number
  readonly fencedFrames: number
  /**
   * Received bytes the broker holds, over all connections: the part of a frame received so far
   * (per connection at most 32 + `maxBatchBytes`; before the handshake 32 + 4 KiB). Reading
   * stops while a batch waits for log room, so the kernel's socket buffers hold the rest.
   */
  readonly queuedBytes: number
  /** Connections closed with an ERROR frame, and sessions ended with an ENDED one, by code. */
  readonly rejected: Readonly<Partial<Record<WireErrorCode, number>>>
}

export interface BrokerShape {
  readonly brokerId: number
  readonly host: string
  /** The port actually bound. */
  readonly port: number
  readonly stats: () => BrokerStats
}

export class Broker extends Context.Tag("cxlog/Broker")<Broker, BrokerShape>() {}

/** What a broker asked to listen beyond loopback lacks of what it needs there (docs/security.md, "Beyond loopback"). */
export type BeyondLoopbackLack = "TLS" | "authentication" | "TLS and authentication"

/** Options a broker cannot serve with (a timeout past Node's timers, a limit that is no number, a span that is no duration), naming the option. */
export class InvalidBrokerOptions extends Data.TaggedError("InvalidBrokerOptions")<{ readonly reason: string }> {
  override get message() {
    return `invalid broker options: ${this.reason}`
  }
}

export class BrokerListenFailed extends Data.TaggedError("BrokerListenFailed")<{
  readonly host: string
  readonly port: number
  readonly reason: string
  /**
   * Set when it refused to listen beyond loopback: what it lacked. `reason` names the options a
   * caller from code gives; `cxlog broker` says its flags instead.
   */
  readonly beyondLoopback?: BeyondLoopbackLack
}> {
  override get message() {
    return `broker cannot listen on ${this.host}:${this.port}: ${this.reason}`
  }
}
