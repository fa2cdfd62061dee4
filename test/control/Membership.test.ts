import { describe, expect, it } from "@effect/vitest"
import { makeMembership } from "../../src/layers/control/Membership.js"
import type { Member } from "../../src/services/control/Coordinator.js"

const member = (slot: number, role: Member["role"] = "worker", occurrence = 1): Member => ({
  slot,
  pid: 1000 + slot,
  occurrence,
  role
})

describe("Membership", () => {
  it("group lists are built once per change: repeated reads share one list, every change is seen", () => {
    const m = makeMembership()
    m.members.set(1, member(1))
    m.members.set(2, member(2, "broker"))
    m.createGroup("g", [1, 3])
    const first = m.groupMembers("g")
    expect(first).toEqual([member(1)])
    // No change in between: the same list (the barrier engine reads it several times per arrival).
    expect(m.groupMembers("g")).toBe(first)
    m.members.set(3, member(3))
    expect(m.groupMembers("g")).toEqual([member(1), member(3)])
    m.members.set(3, member(3, "worker", 2))
    expect(m.groupMembers("g")).toEqual([member(1), member(3, "worker", 2)])
    m.joinGroup("g", 2)
    expect(m.groupMembers("g")?.map((x) => x.slot)).toEqual([1, 3, 2])
    expect(m.remove(1)).toBe(true)
    expect(m.groupMembers("g")?.map((x) => x.slot)).toEqual([3, 2])
    expect(m.groupMembers("all")?.map((x) => x.slot)).toEqual([2, 3])
    expect(m.groupMembers("brokers")?.map((x) => x.slot)).toEqual([2])
    m.members.delete(2)
    expect(m.groupMembers("brokers")).toEqual([])
    expect(m.groupMembers("nope")).toBeUndefined()
    m.createGroup("nope", [])
    expect(m.groupMembers("nope")).toEqual([])
  })

  // Groups named per job: each one's last member leaving deletes it, so they do not pile up.
  it("a named group its last member left is gone, and a later join makes it again", () => {
    const m = makeMembership()
    m.createGroup("empty", [])
    for (let job = 0; job < 10_000; job++) {
      const slot = job % 8
      m.members.set(slot, member(slot))
      m.joinGroup(`job-${job}`, slot)
      expect(m.remove(slot)).toBe(true)
      expect(m.groupMembers(`job-${job}`)).toBeUndefined()
    }
    // A group still listing a slot stays; one created empty stays until someone leaves it.
    m.members.set(1, member(1))
    m.members.set(2, member(2))
    m.createGroup("pair", [1, 2])
    m.remove(1)
    expect(m.groupMembers("pair")?.map((x) => x.slot)).toEqual([2])
    expect(m.groupMembers("empty")).toEqual([])
    m.members.set(3, member(3))
    m.joinGroup("job-0", 3)
    expect(m.groupMembers("job-0")).toEqual([member(3)])
  })
})
