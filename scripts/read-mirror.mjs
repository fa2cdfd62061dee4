#!/usr/bin/env node
/**
 * Reads a stream `cxlog mirror` wrote, as a reader at another site would, with nothing but the
 * NATS client: one line per message, `offset<TAB>value` (as `cxlog subscribe` prints it: text,
 * or base64 when the value is not UTF-8), in stream order,
 * until it has read everything the stream holds now. docs/mirror.md, "Reading the mirror".
 *
 *   node scripts/read-mirror.mjs nats://127.0.0.1:4222[,…] STREAM
 */
import { jetstream, jetstreamManager } from "@nats-io/jetstream"
import { connect } from "@nats-io/transport-node"

const [servers, stream] = process.argv.slice(2)
if (servers === undefined || stream === undefined) {
  process.stderr.write("usage: node scripts/read-mirror.mjs nats://HOST:PORT[,…] STREAM\n")
  process.exit(2)
}
// A reader that stops early (`| head -3`) closes the pipe: that ends the read, it is no failure.
process.stdout.on("error", (error) => {
  if (error.code === "EPIPE") process.exit(0)
  throw error
})
const nc = await connect({ servers: servers.split(",") })
try {
  const total = (await (await jetstreamManager(nc)).streams.info(stream)).state.messages
  // An ordered consumer: this client's own, ephemeral, delivering the stream in sequence order.
  const messages = await (await jetstream(nc).consumers.get(stream)).consume()
  const decoder = new TextDecoder("utf-8", { fatal: true })
  const text = (bytes) => {
    try {
      return decoder.decode(bytes)
    } catch {
      return Buffer.from(bytes).toString("base64")
    }
  }
  let read = 0
  for await (const m of total === 0 ? [] : messages) {
    process.stdout.write(`${m.headers?.get("Cxlog-Offset")}\t${text(m.data)}\n`)
    if (++read === total) break
  }
  await messages.close()
} finally {
  await nc.close()
}
