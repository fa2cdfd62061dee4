/** Consumer groups' settings, declared once (src/Settings.ts): a new group's defaults and how often members look around. */
import { setting, type SettingsTable } from "../../Settings.js"

/**
 * What a group's region layout holds at most: its member and pending tables, a member's deliveries
 * in flight, and the 32-bit ack wait and delivery count. The settings refuse more, naming their
 * variable, as the group's own check (layers/groups/GroupSpecs.ts) refuses it in code.
 */
export const GROUP_LIMITS = {
  memberSlots: 1024,
  pendingSlots: 1 << 20,
  maxInFlight: 1 << 20,
  u32: 2 ** 32 - 1
} as const

export const GROUP_SETTINGS = {
  usedBy: "consumer groups (cxlog consume, cxlog groups, the ConsumerGroups layers)",
  settings: {
    ackWaitMs: setting.millis({
      env: "CXLOG_GROUP_ACK_WAIT_MS",
      default: 30_000,
      min: 1,
      // Held in the group's 32 bits and compared with the clock, never armed as one timer.
      max: GROUP_LIMITS.u32,
      description:
        "how long a member may hold a message without acking it before any member may take it again (a new group's, when its create names none)"
    }),
    maxDeliver: setting.integer({
      env: "CXLOG_GROUP_MAX_DELIVER",
      default: 5,
      max: GROUP_LIMITS.u32,
      description:
        "deliveries a message gets before it goes to the group's dead letters (a new group's, when its create names none; 0: no limit)"
    }),
    maxInFlight: setting.integer({
      env: "CXLOG_GROUP_MAX_IN_FLIGHT",
      default: 64,
      min: 1,
      max: GROUP_LIMITS.maxInFlight,
      description: "messages a member holds at once, delivered and not yet acked, nak'd or terminated"
    }),
    memberSlots: setting.integer({
      env: "CXLOG_GROUP_MEMBER_SLOTS",
      default: 64,
      min: 1,
      max: GROUP_LIMITS.memberSlots,
      description: "the most members a new group has at once (its member table)"
    }),
    pendingSlots: setting.integer({
      env: "CXLOG_GROUP_PENDING_SLOTS",
      default: 4096,
      min: 1,
      max: GROUP_LIMITS.pendingSlots,
      description:
        "the most messages a new group has handed out and not settled at once, across its members (its pending table)"
    }),
    checkEveryMs: setting.millis({
      env: "CXLOG_GROUP_CHECK_MS",
      default: 100,
      min: 1,
      description:
        "how often a member looks for dead members and messages due again (a dead member's messages go to the others within about this); once a second while nothing of the group is in flight"
    })
  }
} as const satisfies SettingsTable
