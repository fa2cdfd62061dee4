/**
 * A broker connection's input, read in place (`adopt`): the accepted socket's handle, TCP or a
 * TLS session, moves to a socket that reads with Node's `onread` into the buffer its frame
 * reader names for each read, so a payload's only copy is the kernel's (or the TLS session's),
 * into where it will live.
 */
import { Effect } from "effect"
import { Socket, type SocketConstructorOpts } from "node:net"
import type { InPlaceFrameReader } from "./FrameReader.js"

/** Node's TCP handle, as far as reading in place needs it (not in Node's typings). */
interface ReadHandle {
  useUserBuffer(buffer: Uint8Array): void
}
const handleOf = (socket: Socket): ReadHandle | null => (socket as unknown as { _handle: ReadHandle | null })._handle

/** Where input goes once a connection stops taking it (read and dropped). */
const DROPPED = new Uint8Array(4096)

/** A TLS socket's link to its TLS session (Node's TLSWrap, which is also its handle) and to its TCP socket; absent on plain sockets. */
export interface TlsLink {
  ssl?: unknown
  _parent?: Socket
}

/**
 * A connection's input, read in place: the accepted socket's handle is taken over by a socket
 * that reads with Node's `onread` into the buffer `reader.buffer()` names for each read (no
 * Buffer per read, no stream machinery). Reading runs only while someone consumes: a direct
 * consumer called from the read callback itself (it returns false to stop reading), or the
 * connection's fiber waiting in `read`; otherwise it is stopped, and the kernel holds the rest.
 *
 * A TLS connection is taken over once its handshake is done: its handle is the TLS session
 * (a stream like the TCP one), which decrypts each record into the buffer named for it, split
 * across buffers where a record straddles frames, so a payload still reaches the log in one
 * copy, made by Node's C++, and no Buffer is made per record. Unlike TCP, a TLS read that
 * stops reading still delivers the rest of the records already received: they land where
 * `reader.buffer()` says (its stash once a frame waits for `next()`).
 */
export const adopt = (raw: Socket, reader: InPlaceFrameReader) => {
  let ended = false
  let dropping = false
  let waiting: (() => void) | undefined
  let direct: (() => boolean) | undefined
  const onRead = (n: number): boolean => {
    if (dropping) return true
    reader.filled(n)
    if (direct !== undefined) return direct()
    if (waiting !== undefined) {
      const wake = waiting
      waiting = undefined
      wake()
    }
    // The fiber takes it from here and asks for more with `read`.
    return false
  }
  // A plain connection was accepted paused (`pauseOnConnect`): nothing was read yet. A TLS one,
  // past its handshake, may hold decrypted input already: that goes to the reader first. Then the
  // handle moves to a socket made with `onread` (Node offers that option only to sockets it constructs).
  const tls = (raw as TlsLink).ssl !== undefined
  for (let chunk: Buffer | null = tls ? raw.read() : null; chunk !== null; chunk = raw.read()) {
    for (let at = 0; at < chunk.length;) {
      const into = reader.buffer()
      const n = Math.min(into.length, chunk.length - at)
      into.set(chunk.subarray(at, at + n))
      reader.filled(n)
      at += n
    }
  }
  const handle = handleOf(raw)
  ;(raw as unknown as { _handle: ReadHandle | null })._handle = null
  // The TLS session goes with the handle: closing the old socket must not end it, closing the new one does.
  if (tls) (raw as TlsLink).ssl = null
  raw.destroy()
  const socket = new Socket({
    handle,
    allowHalfOpen: true,
    onread: { buffer: () => (dropping ? DROPPED : reader.buffer()), callback: onRead }
  } as SocketConstructorOpts)
  if (tls) (socket as TlsLink).ssl = handle
  const onEnd = () => {
    ended = true
    if (waiting !== undefined) {
      const wake = waiting
      waiting = undefined
      wake()
    } else if (direct !== undefined) {
      direct()
    }
  }
  socket.on("end", onEnd)
  socket.on("close", onEnd)
  // A read that resumes into a buffer the reader has since moved on from lands in its stash (its own memory).
  const resume = () => {
    if (ended || socket.destroyed) return
    socket.resume()
  }
  return {
    socket,
    /** Whether the peer has finished (or the input was stopped). */
    ended: () => ended,
    /** Whether the consumer is waiting for input (the broker holds up nothing of this client's). */
    starved: () => waiting !== undefined || direct !== undefined,
    /**
     * The reader's payload was evicted from the log's space outside a read callback: the next
     * read must not go there. (Node keeps each buffer set this way until the socket closes, so
     * a connection does this at most once: see `revoked`.)
     */
    aim: () => handleOf(socket)?.useUserBuffer(dropping ? DROPPED : reader.buffer()),
    /** Resumes once more input was read (or the input ended). */
    read: Effect.async<void>((wake) => {
      if (ended) return wake(Effect.void)
      waiting = () => wake(Effect.void)
      resume()
      return Effect.sync(() => {
        waiting = undefined
      })
    }),
    /** While set, `consume` is called from the read callback after each read and at the end; unset, reading stops. */
    setDirect: (consume: (() => boolean) | undefined) => {
      direct = consume
      if (consume !== undefined) resume()
      else socket.pause()
    },
    /**
     * Stops taking input: later data is read and dropped, so a rejected socket goes as soon as
     * its client closes its side, and leaves no unread input behind (whose reset could discard
     * the ERROR frame before the client reads it).
     */
    stop: () => {
      const wasEnded = ended
      dropping = true
      direct = undefined
      // The read already aimed goes to the reader (its own memory, or log space it still holds: anyone taking that revokes it first).
      if (!wasEnded && !socket.destroyed) socket.resume()
      onEnd()
    }
  }
}

export type Intake = ReturnType<typeof adopt>
