/**
 * Every millisecond flag of the roles' commands (`MS` in help, and its variable) is waited on by
 * a Node timer somewhere, which fires after 1 ms when given more than 2^31 − 1: such a value is
 * refused when the command reads it, as the settings' own `MS` variables are. The spans that are
 * only compared with a clock or stored in the region's 32 bits have a bound of their own.
 */
import { describe, expect, it } from "@effect/vitest"
import { Either } from "effect"
import type { Flag } from "../../src/programs/cli/CliFlags.js"
import { brokerCommand } from "../../src/programs/commands/BrokerCommand.js"
import { consumeCommand } from "../../src/programs/commands/ConsumeCommand.js"
import { dashboardCommand } from "../../src/programs/commands/DashboardCommand.js"
import { headCommand } from "../../src/programs/commands/HeadCommand.js"
import { mirrorCommand } from "../../src/programs/commands/MirrorCommand.js"
import { publishCommand } from "../../src/programs/commands/PublishCommand.js"
import { subscribeCommand } from "../../src/programs/commands/SubscribeCommand.js"
import { MAX_TIMER_MS } from "../../src/SettingText.js"

/** Compared with the clock, or held in 32 bits (a nak's delay, a group's ack wait), never armed as one timer. */
const NOT_TIMERS = new Set(["hold-timeout-ms", "session-idle-ms", "session-gap-idle-ms", "nak-delay-ms", "ack-wait-ms"])

describe("millisecond flags", () => {
  it("past the longest Node timer are refused; the longest is taken", () => {
    const commands = [
      headCommand,
      brokerCommand,
      publishCommand,
      subscribeCommand,
      consumeCommand,
      mirrorCommand,
      dashboardCommand
    ]
    const checked: Array<string> = []
    for (const command of commands) {
      for (const flag of Object.values(command.flags) as ReadonlyArray<Flag<unknown>>) {
        if (flag.placeholder !== "MS" || NOT_TIMERS.has(flag.name)) continue
        checked.push(`${command.name} --${flag.name}`)
        expect(Either.isLeft(flag.parse(`${MAX_TIMER_MS + 1}`)), `${command.name} --${flag.name}`).toBe(true)
        expect(Either.isRight(flag.parse(`${MAX_TIMER_MS}`)), `${command.name} --${flag.name}`).toBe(true)
      }
    }
    expect(checked).toEqual(expect.arrayContaining([
      "broker --stats-every-ms",
      "broker --idle-timeout-ms",
      "head --standby-check-ms",
      "subscribe --idle-timeout-ms",
      "dashboard --every-ms",
      "mirror --request-timeout-ms",
      "publish --flush-timeout-ms",
      "consume --idle-exit-ms"
    ]))
  })
})
