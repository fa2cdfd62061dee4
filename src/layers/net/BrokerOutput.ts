/**
 * What a broker sends a publisher's connection once its handshake is done — each session's ACK,
 * SESSION_OPENED, SESSION_FENCED and ENDED frames — gathered in one buffer and written together
 * at the end of the event loop's phase that made them (an immediate): a connection carrying a
 * thousand sessions gets one write for the ACKs of all of them, not one per session. Its sessions'
 * trackers wait for the next turn together too (`nextTurn`). An ACK is encoded in
 * place (fixed offsets, no header object, DataView or Buffer per ACK), byte for byte what
 * `Control.ackFrame` makes. The buffer is reused while the socket hands each write to the kernel
 * at once; bytes a socket still holds are never written over (a new buffer takes over).
 */
import { crc32c } from "../../native/Crc32c.js"
import { ACK_ORDER_BYTES, FRAME_HEADER_BYTES, FRAME_MAGIC, FrameType, WIRE_VERSION } from "./Frame.js"

/** The buffer's size: a turn's ACKs for about two thousand sessions before a write in between. */
const OUTPUT_BYTES = 64 << 10

const TWO_32 = 2 ** 32

export class ConnectionOutput {
  private buffer = Buffer.allocUnsafe(OUTPUT_BYTES)
  /** Frames not written yet are buffer[start, used). */
  private start = 0
  private used = 0
  private scheduled = false
  private readonly flushTask = () => {
    this.scheduled = false
    this.flush()
  }
  /** Callbacks for the next turn (`nextTurn`), and whether its immediate is set. */
  private turn: Array<() => void> = []
  private turnSet = false
  private readonly turnTask = () => {
    this.turnSet = false
    const due = this.turn
    this.turn = []
    for (const callback of due) callback()
    this.flush()
  }

  /**
   * `write` hands frames to the socket (false once the connection is being dropped); `held` says
   * how many bytes the socket still queues (the frames written last among them).
   */
  constructor(private readonly write: (frames: Buffer) => boolean, private readonly held: () => number) {}

  /**
   * The ACK of session `sessionId` (its batches 0..acked-1 at `level`), with `count` (batch seq,
   * total order) pairs of `orders` from pair `from`.
   */
  ack(
    sessionId: number,
    sessionEpoch: number,
    acked: number,
    level: number,
    orders: Float64Array,
    from: number,
    count: number
  ): void {
    const payloadBytes = count * ACK_ORDER_BYTES
    const at = this.room(FRAME_HEADER_BYTES + payloadBytes)
    const buffer = this.buffer
    let p = at + FRAME_HEADER_BYTES
    for (let i = from * 2; i < (from + count) * 2; i++, p += 8) buffer.writeDoubleLE(orders[i]!, p)
    buffer[at] = FrameType.ACK
    buffer[at + 1] = WIRE_VERSION
    buffer.writeUInt16LE(FRAME_MAGIC, at + 2)
    buffer.writeUInt32LE(sessionId, at + 4)
    buffer.writeUInt32LE(sessionEpoch, at + 8)
    buffer.writeUInt32LE(acked % TWO_32, at + 12)
    buffer.writeUInt32LE(Math.floor(acked / TWO_32), at + 16)
    buffer.writeUInt32LE(level, at + 20)
    buffer.writeUInt32LE(payloadBytes, at + 24)
    buffer.writeUInt32LE(count === 0 ? 0 : crc32c(buffer, at + FRAME_HEADER_BYTES, payloadBytes), at + 28)
    this.used = at + FRAME_HEADER_BYTES + payloadBytes
    this.soon()
  }

  /** A frame made elsewhere (SESSION_OPENED, SESSION_FENCED, ENDED), in order with the ACKs around it. */
  frame(bytes: Uint8Array): void {
    const at = this.room(bytes.length)
    this.buffer.set(bytes, at)
    this.used = at + bytes.length
    this.soon()
  }

  /**
   * Runs `callback` in the next event-loop turn, with the connection's other sessions' (one
   * immediate for all of them, their frames then written together).
   */
  nextTurn(callback: () => void): void {
    this.turn.push(callback)
    if (this.turnSet) return
    this.turnSet = true
    setImmediate(this.turnTask)
  }

  /** Writes what is gathered now (before an ERROR that ends the connection, say). */
  flush(): void {
    if (this.used === this.start) return
    const frames = this.buffer.subarray(this.start, this.used)
    this.start = this.used
    this.write(frames)
    // Handed to the kernel whole: the buffer is free again from its start.
    if (this.held() === 0) this.start = this.used = 0
  }

  /** Where `bytes` more go: after what is gathered, once what the socket may still hold is out of the way. */
  private room(bytes: number): number {
    if (this.used + bytes <= this.buffer.length) return this.used
    this.flush()
    if (this.used + bytes <= this.buffer.length) return this.used
    // The socket still holds bytes of this buffer (or the frame is larger than it): a new one.
    this.buffer = Buffer.allocUnsafe(Math.max(OUTPUT_BYTES, bytes))
    this.start = this.used = 0
    return 0
  }

  /** Written at the end of this phase of the event loop (its check phase): every callback's frames of it in one write. */
  private soon(): void {
    if (this.scheduled) return
    this.scheduled = true
    setImmediate(this.flushTask)
  }
}
