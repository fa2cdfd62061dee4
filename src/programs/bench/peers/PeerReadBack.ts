/**
 * The read-back audit of a peer's e2e run, as its consumer process keeps it: every message
 * arrives once, in order (by the sequence number stamped in its first bytes), at its size and
 * with the workload's bytes after the stamp; and when the last of them arrived, on the clock
 * every system's e2e MB/s ends at (epoch ms, sub-millisecond).
 */

/** Bytes of the sequence number (u32, little-endian) each message starts with. */
export const STAMP_BYTES = 4

/** Each message's bytes after its stamp: the same for every system and every run. */
export const payloadTemplate = (payloadBytes: number): Buffer => {
  const template = Buffer.alloc(payloadBytes)
  for (let i = STAMP_BYTES; i < payloadBytes; i++) template[i] = (i * 31) & 0xff
  return template
}

export interface ReadBackResult {
  /** Messages read, duplicates and malformed ones included. */
  readonly read: number
  /** Bytes read (payloads). */
  readonly bytes: number
  /** Messages read out of place, of the wrong size or with other bytes. */
  readonly misread: number
  /** When `messages` had been read (epoch ms); undefined while fewer have been. */
  readonly completeAtMs: number | undefined
}

export const makeReadBack = (messages: number, payloadBytes: number) => {
  const template = payloadTemplate(payloadBytes)
  let read = 0
  let bytes = 0
  let misread = 0
  let completeAtMs: number | undefined
  return {
    received: (payload: Uint8Array): void => {
      const index = payload.length < STAMP_BYTES
        ? -1
        : payload[0]! + (payload[1]! << 8) + (payload[2]! << 16) + payload[3]! * 2 ** 24
      if (
        index !== read || payload.length !== payloadBytes ||
        template.compare(payload, STAMP_BYTES, payloadBytes, STAMP_BYTES, payloadBytes) !== 0
      ) misread++
      read++
      bytes += payload.length
      if (read === messages) completeAtMs = performance.timeOrigin + performance.now()
    },
    done: (): boolean => read >= messages,
    result: (): ReadBackResult => ({ read, bytes, misread, completeAtMs })
  }
}
