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
  /** False if the slot was not a member. A named group left with no slot by it is deleted. */
  readonly remove: (slot: number) => boolean
}

/** A Map that counts its changes, so lists derived from it can be cached until the next one. */
class CountedMap<K, V> extends Map<K, V> {
  changes = 0
  override set(key: K, value: V) {
    this.changes++
    return super.set(key, value)
  }
  override delete(key: K) {
    this.changes++
    return super.delete(key)
  }
  override clear() {
    this.changes++
    super.clear()
  }
}

export const makeMembership = (): Membership => {
  const members = new CountedMap<number, Member>()
  const groups = new Map<string, Set<number>>()
  /** Group changes (members' changes are counted by `members`). */
  let groupChanges = 0
  const listOf = (group: string): ReadonlyArray<Member> | undefined => {
    if (group === GROUP_ALL) return [...members.values()]
    if (group === GROUP_BROKERS) return [...members.values()].filter((m) => m.role === "broker")
    const slots = groups.get(group)
    if (slots === undefined) return undefined
    const list: Array<Member> = []
    for (const slot of slots) {
      const member = members.get(slot)
      if (member !== undefined) list.push(member)
    }
    return list
  }
  // Every arrival at a barrier reads its group several times: lists are rebuilt only after a change.
  const cached = new Map<string, { readonly at: number; readonly list: ReadonlyArray<Member> | undefined }>()
  const groupMembers = (group: string): ReadonlyArray<Member> | undefined => {
    const at = members.changes + groupChanges
    const hit = cached.get(group)
    if (hit !== undefined && hit.at === at) return hit.list
    const list = listOf(group)
    if (cached.size > 1024) cached.clear()
    cached.set(group, { at, list })
    return list
  }
  return {
    members,
    groupMembers,
    list: (group) => {
      const list = groupMembers(group)
      return list === undefined ? Effect.fail(new UnknownGroup({ group })) : Effect.succeed(list)
    },
    createGroup: (name, slots) => {
      groupChanges++
      groups.set(name, new Set(slots))
    },
    joinGroup: (name, slot) => {
      groupChanges++
      const set = groups.get(name) ?? new Set<number>()
      set.add(slot)
      groups.set(name, set)
    },
    remove: (slot) => {
      if (!members.delete(slot)) return false
      groupChanges++
      // A group its last member left is gone (a later join makes it again): groups named per job
      // or per step would otherwise pile up, and every drop walks them all.
      for (const [name, set] of groups) if (set.delete(slot) && set.size === 0) groups.delete(name)
      return true
    }
  }
}
