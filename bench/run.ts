/** `npm run bench -- NAME [flags]`: runs one benchmark. */
import { Effect } from "effect"

const benches: Record<string, () => Promise<{ run: (args: ReadonlyArray<string>) => Effect.Effect<void, unknown> }>> = {
  doorbell: () => import("./doorbell.js"),
  barrier: () => import("./barrier.js"),
  rings: () => import("./rings.js"),
  loopback: () => import("./loopback.js"),
  append: () => import("./append.js"),
  sequencer: () => import("./sequencer.js"),
  idle: () => import("./idle.js"),
  crc: () => import("./crc.js"),
  durable: () => import("./durable.js"),
  directory: () => import("./directory.js")
}

const [name, ...args] = process.argv.slice(2)
const load = name === undefined ? undefined : benches[name]
if (load === undefined) {
  process.stderr.write(`usage: npm run bench -- <${Object.keys(benches).join(" | ")}> [flags]\n`)
  process.exit(2)
}
load().then((m) => Effect.runPromise(m.run(args))).then(() => process.exit(0), (error) => {
  process.stderr.write(`${String(error)}\n`)
  process.exit(1)
})
