/**
 * The coordinator's membership, kept by the live coordinator and by its fake alike: members
 * by slot and named process groups; the groups `all` and `brokers` are derived.
 */
import { Effect } from "effect"
import { GROUP_ALL, GROUP_BROKERS, type Member, UnknownGroup } from "../../services/control/Coordinator.js"

export interface Membership {
  readonly members: Map<number, Member>
  /** Live members of a group, or undefined if there is no such group. */
  readonly groupMembers: (group: string) => ReadonlyArray<Member> | undefined
  /** Live members of a group, or `UnknownGroup`. */
  readonly list: (group: string) => Effect.Effect<ReadonlyArray<Member>, UnknownGroup>
  readonly createGroup: (name: string, slots: ReadonlyArray<number>) => void
  readonly joinGroup: (name: string, slot: number) => void
  /** False if the slot was not a member. */
  readonly remove: (slot: number) => boolean
}

export const makeMembership = (): Membership => {
  const members = new Map<number, Member>()
  const groups = new Map<string, Set<number>>()
  const groupMembers = (group: string): ReadonlyArray<Member> | undefined => {
    if (group === GROUP_ALL) return [...members.values()]
    if (group === GROUP_BROKERS) return [...members.values()].filter((m) => m.role === "broker")
    const slots = groups.get(group)
    return slots === undefined ? undefined : [...slots].flatMap((s) => members.get(s) ?? [])
  }
  return {
    members,
    groupMembers,
    list: (group) => {
      const list = groupMembers(group)
      return list === undefined ? Effect.fail(new UnknownGroup({ group })) : Effect.succeed(list)
    },
    createGroup: (name, slots) => {
      groups.set(name, new Set(slots))
    },
    joinGroup: (name, slot) => {
      const set = groups.get(name) ?? new Set<number>()
      set.add(slot)
      groups.set(name, set)
    },
    remove: (slot) => {
      if (!members.delete(slot)) return false
      for (const set of groups.values()) set.delete(slot)
      return true
    }
  }
}
