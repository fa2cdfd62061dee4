/**
 * What a group bench member does with each message, the same for every system: the trivial work
 * (read the message's index from its stamp and fold its bytes into a checksum), and the record of
 * what it acked, which the bench audits. In memory, sent to the bench when the run stops; or, when
 * the bench kills members (`--kill-member`), written to a file of its own per message — before
 * the ack ("held") and after it ("acked") — which outlives a SIGKILL.
 */
import { closeSync, openSync, writeSync } from "node:fs"
import { STAMP_BYTES } from "../peers/PeerReadBack.js"

/** The message's index (its stamp, u32 little-endian) and a fold of every byte of it: the work each member does per message. */
export const work = (payload: Uint8Array): { readonly index: number; readonly fold: number } => {
  let fold = 0
  for (let i = 0; i < payload.length; i++) fold = (fold * 31 + payload[i]!) | 0
  const index = payload.length < STAMP_BYTES
    ? -1
    : payload[0]! + (payload[1]! << 8) + (payload[2]! << 16) + payload[3]! * 2 ** 24
  return { index, fold }
}

/** A record file's entry: (index, deliveries) when held, (index, ACKED) once acked. */
export const ACKED = 0xffff_ffff
const ENTRY_BYTES = 8

export interface MemberRecord {
  /** The member got message `index` (delivered `deliveries` times) and is about to ack it. */
  readonly held: (index: number, deliveries: number) => void
  /** The system said the ack settled it. */
  readonly acked: (index: number) => void
  readonly ackedCount: () => number
  /** When the last ack settled (epoch ms, sub-millisecond); 0 before any. */
  readonly lastAckAtMs: () => number
  /** Every index acked, in order (in memory; empty for a file's record: the bench reads the file). */
  readonly ackedIndices: () => Uint32Array
  readonly close: () => void
}

/** Read once: `performance.timeOrigin` is a slow getter, and every system's member stamps every ack. */
const ORIGIN = performance.timeOrigin
const now = () => ORIGIN + performance.now()

/** The record kept in memory, handed over once the run stops. */
export const memoryRecord = (messages: number): MemberRecord => {
  let indices = new Uint32Array(Math.max(1_024, Math.ceil(messages / 2)))
  let count = 0
  let lastAt = 0
  return {
    held: () => {},
    acked: (index) => {
      if (count === indices.length) {
        const grown = new Uint32Array(indices.length * 2)
        grown.set(indices)
        indices = grown
      }
      indices[count++] = index
      lastAt = now()
    },
    ackedCount: () => count,
    lastAckAtMs: () => lastAt,
    ackedIndices: () => indices.slice(0, count),
    close: () => {}
  }
}

/** The record written to `path` as it goes (a SIGKILLed member's is read from there). */
export const fileRecord = (path: string): MemberRecord => {
  const fd = openSync(path, "a")
  const entry = new Uint32Array(2)
  const bytes = new Uint8Array(entry.buffer)
  const write = (index: number, second: number) => {
    entry[0] = index
    entry[1] = second
    writeSync(fd, bytes, 0, ENTRY_BYTES)
  }
  let count = 0
  let lastAt = 0
  return {
    held: (index, deliveries) => write(index, deliveries),
    acked: (index) => {
      write(index, ACKED)
      count++
      lastAt = now()
    },
    ackedCount: () => count,
    lastAckAtMs: () => lastAt,
    ackedIndices: () => new Uint32Array(0),
    close: () => closeSync(fd)
  }
}

/** A record file read back: what its member acked, and what it held and had not acked (when it was killed: maybe acked, maybe not). */
export const readRecord = (bytes: Uint8Array): { readonly acked: Array<number>; readonly unsettled: Set<number> } => {
  const whole = Math.floor(bytes.byteLength / ENTRY_BYTES) * 2
  const words = new Uint32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + whole * 4))
  const acked: Array<number> = []
  const unsettled = new Set<number>()
  for (let i = 0; i < words.length; i += 2) {
    const index = words[i]!
    if (words[i + 1] === ACKED) {
      acked.push(index)
      unsettled.delete(index)
    } else {
      unsettled.add(index)
    }
  }
  return { acked, unsettled }
}
