/**
 * A broker connection's receive path past its handshake (`batchStream`): each frame read is
 * checked (session, rate budgets, message framing) and its batch committed to the log in the
 * read callback itself (`receive` → `append`), or, when the log has no room, by the
 * connection's fiber waiting for it (`appendWaiting`).
 */
import { Effect } from "effect"
import type { Socket } from "node:net"
import { brokerBatches, brokerBytes } from "../../Metrics.js"
import { type AppendError, type AppendReceipt, type BatchHeader, BatchRejected } from "../../services/log/Appender.js"
import { TopicDeleted, TopicNotFound } from "../../services/log/Topics.js"
import { checkBatchPayload } from "./BatchPayload.js"
import { overLimit } from "./BrokerAdmission.js"
import type { Carried } from "./BrokerCarried.js"
import type { Intake } from "./BrokerIntake.js"
import type { BrokerState, ConnectionSession } from "./BrokerState.js"
import { WireViolation } from "./Control.js"
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

/** The log's header for a BATCH frame. */
const headerOf = (frame: Frame): BatchHeader => ({
  clientId: frame.clientId,
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

/** Why a frame past the handshake is not one of this session's BATCH or CLOSE frames (undefined when it is). */
const sessionViolation = (frame: Frame, session: ConnectionSession): WireViolation | undefined => {
  if (frame.type === FrameType.HELLO) {
    return new WireViolation({ code: "unexpected-frame", detail: "only BATCH and CLOSE frames follow the handshake" })
  }
  if (frame.clientId === session.clientId && frame.sessionEpoch === session.sessionEpoch) return undefined
  return new WireViolation({
    code: "session-mismatch",
    detail: `${
      frameTypeName(frame.type)
    } of session ${frame.clientId}/${frame.sessionEpoch} on a connection of ${session.clientId}/${session.sessionEpoch}`
  })
}

/**
 * The batch frames of one connection after its handshake. `receive` handles every frame
 * already received without waiting: it stops at the end of the input (`IDLE`), at the end
 * of the stream or of the connection (`DONE`), at a violation, at a CLOSE, or at a batch
 * the log has no room for now (returned: `appendWaiting` waits for room and appends it).
 */
export const batchStream = (
  broker: BrokerState,
  socket: Socket,
  intake: Intake,
  reader: InPlaceFrameReader,
  session: ConnectionSession,
  carried: Carried
) => {
  const { appender, counts } = broker
  const counted = (frame: Frame, receipt: AppendReceipt) => {
    // Level 0 gets no ACKs, so nothing would ever take what it carried.
    if (session.ackLevel > 0) carried.add(frame.seq, receipt.pbrSeq)
    counts.batches++
    counts.messages += frame.messageCount
    counts.bytes += frame.payloadBytes
    brokerBatches.unsafeUpdate(1, [])
    brokerBytes.unsafeUpdate(frame.payloadBytes, [])
  }

  /** Append: a checked batch into the log without waiting (usually already in place); "wait" when the log has no room now. */
  const append = (frame: Frame): "wait" | WireViolation | undefined => {
    if (session.budgets.length > 0) {
      const limited = overLimit(session, frame)
      if (limited !== undefined) return limited
    }
    const malformed = checkBatchPayload(frame.payload, frame.messageCount)
    if (malformed !== undefined) return new WireViolation({ code: "bad-batch", detail: malformed })
    const appended = appender.tryAppendWith(session.topic, headerOf(frame), fillFrom(frame.payload))
    if (appended === "wait") return appended
    if (appended instanceof TopicNotFound || appended instanceof TopicDeleted || appended instanceof BatchRejected) {
      return appendFailed(appended)
    }
    counted(frame, appended)
    return undefined
  }

  /** Receive: the frames read so far → `append`, until something stops it. */
  const receive = (): Frame | typeof IDLE | typeof DONE | WireViolation => {
    for (;;) {
      // The ACK tracker dropped the connection (slow consumer): append nothing more.
      if (socket.writableEnded) return DONE
      const frame = reader.next()
      if (frame === undefined) {
        if (!intake.ended()) return IDLE
        return reader.midFrame
          ? new WireViolation({ code: "truncated", detail: "the connection ended inside a frame" })
          : DONE
      }
      if (frame instanceof WireViolation) return frame
      const wrong = sessionViolation(frame, session)
      if (wrong !== undefined) return wrong
      if (frame.type === FrameType.CLOSE) return frame
      const appended = append(frame)
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
      appender.appendWith(session.topic, headerOf(frame), fillFrom(frame.payload)).pipe(
        Effect.mapError(appendFailed),
        Effect.map((receipt) => counted(frame, receipt))
      )
  }
}
