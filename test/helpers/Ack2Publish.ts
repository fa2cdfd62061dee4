/** `cxlog publish` at ACK 2 for the durable tier's process tests. */
import { runCliWithin } from "./CliRoles.js"

/**
 * `cxlog publish` of topic d at ACK 2 through the broker at `port`, its ACK timeout far past
 * `withinMs`: only a refusal (or every ACK) can end it in time.
 */
export const publishWithoutTimeout = (
  port: number,
  env: Record<string, string>,
  args: ReadonlyArray<string>,
  withinMs: number
) =>
  runCliWithin(
    [
      "publish",
      "--brokers",
      `127.0.0.1:${port}`,
      "--topic",
      "d",
      ...args,
      "--ack",
      "2",
      "--flush-timeout-ms",
      "600000"
    ],
    env,
    withinMs
  )
