/**
 * Who uses a channel or a service now: the live processes on its rings — each ring's writer
 * while it holds it, and the readers attached to it. A removal is refused while there is one: a
 * process holding the object would go on with memory no later open finds, apart from them.
 */
import { Effect } from "effect"
import type { InvalidRingAddress, RingAddress, RingsShape } from "../../services/control/Rings.js"
import { isProcessAlive } from "../region/ProcessInfo.js"

/** The pids of the live processes on `addresses`, in order. */
export const liveUsers = (
  rings: RingsShape,
  addresses: ReadonlyArray<RingAddress>
): Effect.Effect<ReadonlyArray<number>, InvalidRingAddress> =>
  Effect.map(Effect.forEach(addresses, (address) => rings.inspect(address)), (inspectors) => {
    const pids = new Set<number>()
    for (const ring of inspectors) {
      const writer = ring.writer()
      // A process is its pid and start tag: a dead user's pid taken by a later process uses nothing.
      if (writer.occurrence !== 0 && !writer.closed && isProcessAlive(writer.pid, writer.start)) pids.add(writer.pid)
      for (const reader of ring.readers()) {
        if ((reader.state === "attached" || reader.state === "attaching") && isProcessAlive(reader.pid, reader.start)) {
          pids.add(reader.pid)
        }
      }
    }
    return [...pids].sort((a, b) => a - b)
  })
