/**
 * `cxlog peer-consume PEER ADDRESS STREAM MESSAGES PAYLOAD_BYTES` (hidden): a bench peer's e2e
 * consumer in a process of its own. It reads the stream from its start with the peer's reader,
 * says `ready` once reading, audits each message (PeerReadBack.ts) and says `done` with the
 * audit, the moment the last message arrived and its own CPU since `ready`, once it has read
 * MESSAGES. Nothing read for STALL_MS fails it, naming how far it got.
 */
import { Effect } from "effect"
import { report } from "../../roles/Report.js"
import { makeReadBack } from "./PeerReadBack.js"
import { PeerFailed } from "./PeerServer.js"
import { PEER_SPECS } from "./PeerSpecs.js"

const STALL_MS = 30_000
const WATCH_MS = 500

const readerFor = (peer: string, address: string, stream: string) =>
  peer in PEER_SPECS
    ? Effect.succeed(PEER_SPECS[peer as keyof typeof PEER_SPECS].reader(address, stream))
    : Effect.fail(new PeerFailed({ peer, detail: "no such peer: its consumer cannot start" }))

export const peerConsume = (peer: string, address: string, stream: string, messages: number, payloadBytes: number) =>
  Effect.gen(function*() {
    const read = yield* readerFor(peer, address, stream)
    const readBack = makeReadBack(messages, payloadBytes)
    let settle: (failure: string | undefined) => void = () => {}
    let failure: string | undefined
    yield* read((payload) => {
      readBack.received(payload)
      if (readBack.done()) settle(undefined)
    }, (reason) => {
      failure ??= reason
      settle(reason)
    })
    const cpuAtReady = process.cpuUsage()
    report({ event: "ready", pid: process.pid })
    yield* Effect.async<void, PeerFailed>((resume) => {
      let progress = -1
      let quietMs = 0
      const watch = setInterval(() => {
        const { read: count } = readBack.result()
        quietMs = count === progress ? quietMs + WATCH_MS : 0
        progress = count
        if (quietMs >= STALL_MS) settle(`read ${count} of ${messages} messages, then nothing for ${STALL_MS} ms`)
      }, WATCH_MS)
      settle = (reason) => {
        clearInterval(watch)
        settle = () => {}
        resume(
          reason === undefined ? Effect.void : Effect.fail(new PeerFailed({ peer, detail: `its consumer: ${reason}` }))
        )
      }
      if (failure !== undefined) settle(failure)
      else if (readBack.done()) settle(undefined)
      return Effect.sync(() => clearInterval(watch))
    })
    const cpu = process.cpuUsage(cpuAtReady)
    const result = readBack.result()
    report({
      event: "done",
      read: result.read,
      bytes: result.bytes,
      misread: result.misread,
      ...(result.completeAtMs === undefined ? {} : { completeAtMs: result.completeAtMs }),
      cpuSeconds: (cpu.user + cpu.system) / 1e6
    })
  }).pipe(Effect.scoped)
