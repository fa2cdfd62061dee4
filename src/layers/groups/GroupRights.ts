/**
 * Who may do what with a consumer group through a broker (docs/security.md, "Users and rights"):
 * every operation on a group needs the read right on its topic and the consume right on its name,
 * the consume right checked before the group is looked up; a group whose object does not read as
 * one names no topic, so it needs the admin right on every topic instead, checked before it is said
 * to be damaged. A create that names a dead-letter topic needs the publish right on it too. A
 * refusal is `TopicForbidden`, and names no topic but one the request named itself. GroupServer.ts
 * asks these for every request.
 */
import { Effect } from "effect"
import type {
  ConsumerGroupsShape,
  GroupCorrupt,
  GroupInfo,
  GroupRemoteError
} from "../../services/groups/ConsumerGroups.js"
import { TopicForbidden } from "../../services/log/Topics.js"
import { authorize, type UserRecord } from "../net/Auth.js"
import type { ListGroups } from "./GroupProtocol.js"

/** Why `user` (none: a broker without authentication) may not use group `group` of `topic`, or undefined. */
const refusal = (user: UserRecord | undefined, group: string, topic: string): string | undefined =>
  user === undefined ? undefined : authorize(user, "read", topic) ?? authorize(user, "consume", group)

/**
 * Why `user` (none: a broker without authentication) may not act on group `group`, which does not
 * read as a group, or undefined. The topic it is of cannot be read, so the right checked is the
 * admin right on every topic, with the consume right on its name (as the list's); `lacksAdmin`
 * says why to a user with the consume right.
 */
const unreadableRefusal = (
  user: UserRecord | undefined,
  group: string,
  lacksAdmin: (user: UserRecord) => string
): string | undefined =>
  user === undefined
    ? undefined
    : authorize(user, "consume", group) ?? (authorize(user, "admin", "*") === undefined ? undefined : lacksAdmin(user))

/**
 * Why `user` may not delete group `corrupt.group`, which does not read as a group, or undefined.
 * The refusal says what it needs (never a topic's name). The list names such a group to the users
 * who may delete it.
 */
export const deleteUnreadableRefusal = (user: UserRecord | undefined, corrupt: GroupCorrupt): string | undefined =>
  unreadableRefusal(
    user,
    corrupt.group,
    (user) =>
      `user ${user.name} may not delete consumer group ${corrupt.group}: it cannot be read (${corrupt.reason}), so the ` +
      `topic it is of is unknown, and deleting it needs the admin right on every topic ('*') (its admin rights: ${
        (user.admin ?? []).join(", ") || "none"
      })`
  )

/**
 * The refusal of a group `user` may consume as but not use: it names neither the group's topic,
 * which the user may not see (a topic's name is told only to those who may read or administer
 * it), nor whether the group reads as one.
 */
const mayNotUse = (user: UserRecord, group: string): string =>
  `user ${user.name} may not use consumer group ${group} (its read rights: ${user.read.join(", ") || "none"})`

/**
 * Why `user` may not describe, look at or join group `corrupt.group`, which does not read as a
 * group, or undefined. The refusal does not say the group is damaged: a user who may not use it
 * learns no more of it than of a sound group.
 */
const useUnreadableRefusal = (user: UserRecord | undefined, corrupt: GroupCorrupt): string | undefined =>
  unreadableRefusal(user, corrupt.group, (user) => mayNotUse(user, corrupt.group))

/** Fails `TopicForbidden` with the refusal `denied` of `user`; goes on when there is none. */
export const refusedBy = (
  user: UserRecord | undefined,
  denied: string | undefined
): Effect.Effect<void, TopicForbidden> =>
  denied === undefined ? Effect.void : Effect.fail(new TopicForbidden({ user: user!.name, reason: denied }))

/** Refused unless `user` may use group `group`, which exists and is of `topic`; the refusal does not name the topic. */
export const mayUse = (user: UserRecord | undefined, group: string, topic: string) =>
  refusedBy(
    user,
    user === undefined
      ? undefined
      : authorize(user, "consume", group) ??
        (authorize(user, "read", topic) === undefined ? undefined : mayNotUse(user, group))
  )

/**
 * Refused unless `user` may create the group `spec` asks for: use it, and publish to its
 * dead-letter topic, since the broker writes the group's dead letters there on its members' behalf
 * (with its own publisher, which no right holds back).
 */
export const mayCreate = (
  user: UserRecord | undefined,
  spec: { readonly name: string; readonly topic: string; readonly deadLetterTopic?: string | undefined }
) =>
  refusedBy(
    user,
    // The topic is the one the user names: its refusal may name it.
    refusal(user, spec.name, spec.topic) ??
      (user === undefined || spec.deadLetterTopic === undefined
        ? undefined
        : authorize(user, "publish", spec.deadLetterTopic))
  )

/** The list the user may see: the groups it may use, and (asked for) the unreadable ones it may delete. */
export const listFor = (
  groups: ConsumerGroupsShape,
  user: UserRecord | undefined,
  withUnreadable: boolean
): Effect.Effect<typeof ListGroups.success.Type, GroupRemoteError> => {
  const usable = (all: ReadonlyArray<GroupInfo>) => all.filter((g) => refusal(user, g.name, g.topic) === undefined)
  return withUnreadable
    ? Effect.map(groups.overview, (all) => ({
      groups: usable(all.groups),
      unreadable: all.unreadable.filter((corrupt) => deleteUnreadableRefusal(user, corrupt) === undefined)
    }))
    : Effect.map(groups.list, usable)
}

/**
 * Refused unless `user` may consume as `name`: checked before the group is looked up, so a user
 * without that right is refused alike whether a group of that name exists or not, and learns
 * neither (as `list` names it only the groups it may use).
 */
export const mayName = (user: UserRecord | undefined, name: string) =>
  refusedBy(user, user === undefined ? undefined : authorize(user, "consume", name))

/**
 * The group's description, once the user may use the group. One that does not read as one is
 * `GroupCorrupt` only to a user with the rights it needs (those its delete needs): another is
 * refused as for a group that reads, and does not learn it is damaged.
 */
export const authorized = (groups: ConsumerGroupsShape, user: UserRecord | undefined, name: string) =>
  Effect.zipRight(
    mayName(user, name),
    groups.describe(name).pipe(
      Effect.tapErrorTag("GroupCorrupt", (corrupt) => refusedBy(user, useUnreadableRefusal(user, corrupt))),
      Effect.tap((info) => mayUse(user, name, info.topic))
    )
  )
