/**
 * The client side of one broker connection: connects, sends HELLO, waits for WELCOME, then
 * sends batches (header and payload written separately, never copied together) and reports
 * the broker's ACK, SESSION_FENCED and ERROR frames. Any failure ends in exactly one
 * `onClosed`.
 */
import { Either } from "effect"
import { connect, type Socket } from "node:net"
import { ErrorBody, type Hello, helloFrame, decodeControl, Welcome, WireViolation } from "./Control.js"
import { encodeHeader, type FrameHeader, FrameType } from "./Frame.js"
import { FrameReader } from "./FrameReader.js"

export interface BrokerAddress {
  readonly host: string
  readonly port: number
}

export const formatAddress = (address: BrokerAddress): string => `${address.host}:${address.port}`

/** `host:port,host:port` (host defaults to 127.0.0.1, so `7400,7401` works). */
export const parseAddresses = (text: string): ReadonlyArray<BrokerAddress> =>
  text.split(",").map((part) => part.trim()).filter((part) => part.length > 0).map((part) => {
    const colon = part.lastIndexOf(":")
    const host = colon < 0 ? "127.0.0.1" : part.slice(0, colon)
    const port = Number(colon < 0 ? part : part.slice(colon + 1))
    if (!Number.isInteger(port) || port <= 0 || port > 65535) throw new Error(`not a broker address: ${JSON.stringify(part)}`)
    return { host, port }
  })

export interface ConnectionEvents {
  readonly onWelcome: (welcome: Welcome) => void
  readonly onAck: (sessionEpoch: number, acked: number) => void
  readonly onFenced: (sessionEpoch: number, committed: number) => void
  /** The broker's ERROR frame; the connection closes right after. */
  readonly onBrokerError: (error: ErrorBody) => void
  readonly onClosed: (reason: string) => void
}

export interface ClientConnection {
  /**
   * Sends a batch frame; `onWritten` runs once its bytes are handed to the kernel, or with
   * an error once the connection dropped them (exactly once either way).
   */
  readonly sendBatch: (header: FrameHeader, payload: Uint8Array, onWritten: (error: Error | null | undefined) => void) => void
  readonly close: () => void
}

export const openConnection = (
  address: BrokerAddress,
  hello: Hello,
  events: ConnectionEvents,
  connectTimeoutMs: number
): ClientConnection => {
  let closed = false
  const socket: Socket = connect({ host: address.host, port: address.port, noDelay: true })
  const finish = (reason: string) => {
    if (closed) return
    closed = true
    clearTimeout(welcomeTimer)
    socket.destroy()
    events.onClosed(reason)
  }
  const welcomeTimer = setTimeout(() => finish(`no WELCOME within ${connectTimeoutMs} ms`), connectTimeoutMs)
  welcomeTimer.unref()
  const reader = new FrameReader({ accept: [FrameType.WELCOME, FrameType.ACK, FrameType.SESSION_FENCED, FrameType.ERROR], maxBatchBytes: 0 })
  let welcomed = false

  socket.on("connect", () => socket.write(helloFrame(hello)))
  socket.on("error", (error) => finish(error.message))
  socket.on("close", () => finish("connection closed"))
  socket.on("data", (chunk: Buffer) => {
    reader.push(chunk)
    for (let frame = reader.next(); frame !== undefined && !closed; frame = reader.next()) {
      if (frame instanceof WireViolation) return finish(`broker sent a bad frame: ${frame.message}`)
      switch (frame.type) {
        case FrameType.WELCOME: {
          const welcome = decodeControl(Welcome, frame.payload, "bad-handshake")
          if (Either.isLeft(welcome)) return finish(`bad WELCOME: ${welcome.left.message}`)
          welcomed = true
          clearTimeout(welcomeTimer)
          events.onWelcome(welcome.right)
          break
        }
        case FrameType.ACK:
          if (welcomed && frame.clientId === hello.clientId) events.onAck(frame.sessionEpoch, frame.seq)
          break
        case FrameType.SESSION_FENCED:
          if (welcomed && frame.clientId === hello.clientId) events.onFenced(frame.sessionEpoch, frame.seq)
          break
        case FrameType.ERROR: {
          const error = decodeControl(ErrorBody, frame.payload, "internal")
          if (Either.isRight(error)) events.onBrokerError(error.right)
          return finish(Either.isRight(error) ? `broker error ${error.right.code}: ${error.right.message}` : "broker error")
        }
      }
    }
  })

  return {
    sendBatch: (header, payload, onWritten) => {
      if (closed) return queueMicrotask(() => onWritten(new Error("connection closed")))
      socket.cork()
      socket.write(encodeHeader(header))
      socket.write(payload, onWritten)
      socket.uncork()
    },
    close: () => {
      if (closed) return
      closed = true
      clearTimeout(welcomeTimer)
      socket.destroy()
    }
  }
}
