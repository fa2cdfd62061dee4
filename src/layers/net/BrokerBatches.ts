/**
 * A publisher connection's receive path past its handshake (`batchStream`): each frame read is
 * checked (its session, rate budgets, message framing) and its batch committed to its session's
 * topic in the read callback itself (`receive` → `append`), or, when the log has no room, by the
 * connection's fiber waiting for it (`appendWaiting`). A topic gone ends its session only.
 */
import { Effect } from "effect"
import type { Socket } from "node:net"
import { brokerBatches, brokerBytes } from "../../Metrics.js"
import { type AppendError, type AppendReceipt, type BatchHeader, BatchRejected } from "../../services/log/Appender.js"
import { TopicDeleted, TopicNotFound } from "../../services/log/Topics.js"
import { checkBatchWithin } from "./BatchPayload.js"
import { overLimit } from "./BrokerAdmission.js"
import type { Intake } from "./BrokerIntake.js"
import { type BrokerState, type ConnectionSession, endOpenSession, type PublisherConnection } from "./BrokerState.js"
import { topicDeleted, WireViolation } from "./Control.js"
import { type Frame, FrameType, frameTypeName } from "./Frame.js"
import type { InPlaceFrameReader } from "./FrameReader.js"

/** `receive` outcomes besides a batch waiting for room or a violation: every received byte is handled; the input is over. */
export const IDLE = "idle" as const
export const DONE = "done" as const

/** An append the log refused: a batch it rejects is one the broker should have refused itself (internal). */
export const appendFailed = (e: AppendError) =>
  new WireViolation({
    code: e._tag === "BatchRejected" ? "internal" : e._tag === "TopicDeleted" ? "topic-deleted" : "append-failed",
    detail: e.message
  })

/** Whether the log refused a batch for its topic's sake (too large for it, or no lane in it for want of heap): its session's end, not the connection's. */
export const topicRefusal = (e: BatchRejected): boolean => e.maxBatchBytes !== undefined || e.regionFull === true

/** The log's header for a BATCH frame of `session`. */
const headerOf = (session: ConnectionSession, frame: Frame): BatchHeader => ({
  clientId: session.clientId,
  sessionEpoch: frame.sessionEpoch,
  batchSeq: frame.seq,
  messageCount: frame.messageCount,
  payloadBytes: frame.payloadBytes,
  crc32c: frame.crc32c
})

/** Writes a frame's payload into the log's space for it, unless it was received right there. */
const fillFrom = (payload: Uint8Array) => (dst: Uint8Array): void => {
  if (dst.buffer !== payload.buffer || dst.byteOffset !== payload.byteOffset) dst.set(payload)
}

/**
 * The open session a BATCH or CLOSE frame names (its session id, in the client id field);
 * undefined for one of a session that ended (its frames still in flight are dropped: the client
 * was told with an ENDED or SESSION_FENCED, and replays or fails them); the violation for a
 * session the connection never opened, or the wrong epoch.
 */
export const sessionOf = (
  connection: PublisherConnection,
  frame: Frame
): ConnectionSession | undefined | WireViolation => {
  const id = frame.clientId
  const session = connection.sessions.get(id)
  if (session === undefined) {
    if (id > 0 && id <= connection.lastSessionId) return undefined
    return new WireViolation({
      code: "session-mismatch",
      detail: `${frameTypeName(frame.type)} of session id ${id}, which this connection did not open`
    })
  }
  if (frame.sessionEpoch === session.sessionEpoch) return session
  return new WireViolation({
    code: "session-mismatch",
    detail: `${
      frameTypeName(frame.type)
    } of epoch ${frame.sessionEpoch} on session id ${id} (${session.clientId}/${session.sessionEpoch})`
  })
}

/** A topic gone under a session ends that session; anything else the log refused is the connection's. */
const topicGone = (e: AppendError): e is TopicNotFound | TopicDeleted =>
  e._tag === "TopicNotFound" || e._tag === "TopicDeleted"

/**
 * The batch frames of one publisher's connection after its handshake. `receive` handles every
 * frame already received without waiting: it stops at the end of the input (`IDLE`), at the end
 * of the stream or of the connection (`DONE`), at a violation, at a SESSION_OPEN or CLOSE (the
 * connection's fiber handles those), or at a batch the log has no room for now (returned:
 * `appendWaiting` waits for room and appends it).
 */
export const batchStream = (
  broker: BrokerState,
  socket: Socket,
  intake: Intake,
  reader: InPlaceFrameReader,
  connection: PublisherConnection
) => {
  const { appender, counts } = broker
  const counted = (session: ConnectionSession, frame: Frame, receipt: AppendReceipt) => {
    // Level 0 gets no ACKs, so nothing would ever take what it carried.
    if (session.ackLevel > 0) session.carried.add(frame.seq, receipt.pbrSeq)
    counts.batches++
    counts.messages += frame.messageCount
    counts.bytes += frame.payloadBytes
    brokerBatches.unsafeUpdate(1, [])
    brokerBytes.unsafeUpdate(frame.payloadBytes, [])
  }
  /**
   * The session's topic is gone: the session ends (ENDED), the connection and its other sessions
   * go on. Its topic was there when the session opened, so a name no longer found was deleted.
   */
  const gone = (session: ConnectionSession, e: TopicNotFound | TopicDeleted) =>
    endOpenSession(broker, connection, session, topicDeleted(e.name))

  /**
   * A batch the topic refuses for itself, not the connection's fault: over the topic's limit
   * (`oversized`, naming the limit and what raises it: resending it could not help), or for a topic
   * this broker has no lane in because the region's heap is full (`region-full`, naming what holds
   * it: another broker with a lane takes the session's batches). That session ends; the others go on.
   */
  const refusedByTopic = (session: ConnectionSession, e: BatchRejected) =>
    endOpenSession(
      broker,
      connection,
      session,
      new WireViolation({ code: e.regionFull === true ? "region-full" : "oversized", detail: e.message })
    )

  /** Append: a checked batch into the log without waiting (usually already in place); "wait" when the log has no room now. */
  const append = (session: ConnectionSession, frame: Frame): "wait" | WireViolation | undefined => {
    if (connection.budgets.length > 0) {
      const limited = overLimit(connection, frame)
      if (limited !== undefined) return limited
    }
    const checked = checkBatchWithin(frame.payload, frame.messageCount, session.maxMessageBytes)
    if (typeof checked === "string") return new WireViolation({ code: "bad-batch", detail: checked })
    if (checked !== undefined) {
      // The topic's own limit (a client that did not keep it): that session ends, as for a batch over its limit.
      endOpenSession(
        broker,
        connection,
        session,
        new WireViolation({
          code: "oversized",
          detail:
            `topic ${session.topic}: message ${checked.index} of the batch is ${checked.bytes} bytes, over the topic's largest message of ${session.maxMessageBytes} bytes (key and headers included)`
        })
      )
      return undefined
    }
    const appended = appender.tryAppendWith(session.topic, headerOf(session, frame), fillFrom(frame.payload))
    if (appended === "wait") return appended
    if (appended instanceof TopicNotFound || appended instanceof TopicDeleted) {
      gone(session, appended)
      return undefined
    }
    if (appended instanceof BatchRejected) {
      if (!topicRefusal(appended)) return appendFailed(appended)
      refusedByTopic(session, appended)
      return undefined
    }
    counted(session, frame, appended)
    return undefined
  }

  /** Receive: the frames read so far → `append`, until something stops it. */
  const receive = (): Frame | typeof IDLE | typeof DONE | WireViolation => {
    for (;;) {
      // The connection was dropped (a slow consumer of its ACKs): append nothing more.
      if (socket.writableEnded) return DONE
      const frame = reader.next()
      if (frame === undefined) {
        if (!intake.ended()) return IDLE
        return reader.midFrame
          ? new WireViolation({ code: "truncated", detail: "the connection ended inside a frame" })
          : DONE
      }
      if (frame instanceof WireViolation) return frame
      if (frame.type === FrameType.SESSION_OPEN) return frame
      if (frame.type === FrameType.HELLO) {
        return new WireViolation({
          code: "unexpected-frame",
          detail: "only SESSION_OPEN, BATCH and CLOSE frames follow the handshake"
        })
      }
      const session = sessionOf(connection, frame)
      if (session instanceof WireViolation) return session
      // Of a session that ended: dropped.
      if (session === undefined) continue
      if (frame.type === FrameType.CLOSE) return frame
      const appended = append(session, frame)
      // Waiting for room, a payload received in the log's space is copied out: that space is anyone's until then.
      if (appended === "wait") return reader.inPlace ? { ...frame, payload: frame.payload.slice() } : frame
      if (appended !== undefined) return appended
    }
  }

  return {
    receive,
    /** Lets the read callback `receive` after each read; resumes with the first stop that is not `IDLE` (reading stopped). */
    direct: Effect.async<Frame | typeof DONE | WireViolation>((resume) => {
      let stopped = false
      const onInput = (): boolean => {
        if (stopped) return false
        let stop: ReturnType<typeof receive>
        try {
          stop = receive()
        } catch (error) {
          stop = new WireViolation({ code: "internal", detail: `receiving a batch failed: ${String(error)}` })
        }
        if (stop === IDLE) return true
        stopped = true
        intake.setDirect(undefined)
        resume(Effect.succeed(stop))
        return false
      }
      // Frames the last read completed first; then each read as it comes.
      if (onInput()) intake.setDirect(onInput)
      return Effect.sync(() => {
        stopped = true
        intake.setDirect(undefined)
      })
    }),
    /** Appends a batch the log had no room for, waiting for room (reading stopped meanwhile). */
    appendWaiting: (frame: Frame) =>
      Effect.suspend(() => {
        const session = connection.sessions.get(frame.clientId)
        // Its session ended while it waited its turn: dropped with it.
        if (session === undefined) return Effect.void
        return appender.appendWith(session.topic, headerOf(session, frame), fillFrom(frame.payload)).pipe(
          Effect.matchEffect({
            onFailure: (e) =>
              topicGone(e)
                ? Effect.sync(() => gone(session, e))
                : e._tag === "BatchRejected" && topicRefusal(e)
                ? Effect.sync(() => refusedByTopic(session, e))
                : Effect.fail(appendFailed(e)),
            onSuccess: (receipt) => Effect.sync(() => counted(session, frame, receipt))
          })
        )
      })
  }
}
