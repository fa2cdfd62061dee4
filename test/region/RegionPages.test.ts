/**
 * Which pages a region's file gets (layers/region/RegionPages.ts): read from the mount holding it
 * and the host's `shmem_enabled`, as the kernel decides them.
 */
import { describe, expect, it } from "@effect/vitest"
import { readFileSync } from "node:fs"
import { pagesOf, regionPages } from "../../src/layers/region/RegionPages.js"

const SHMEM_DEFAULT = "always within_size advise [never] deny force"
const mounts = (shmOptions: string) =>
  [
    "/dev/root / ext4 rw,relatime 0 0",
    // Listed before /dev, which holds it: order does not decide, the longest mount point does.
    `tmpfs /dev/shm tmpfs ${shmOptions} 0 0`,
    "devtmpfs /dev devtmpfs rw,relatime,size=4096k 0 0",
    "none /mnt/huge hugetlbfs rw,relatime,pagesize=2M 0 0",
    "tmpfs /mnt/cx\\040log tmpfs rw,relatime,huge=always 0 0"
  ].join("\n")

describe("RegionPages", () => {
  it("a tmpfs maps in huge pages with huge=always or within_size, not with never (the default) or advise", () => {
    expect(pagesOf("/dev/shm/r", mounts("rw,relatime,size=100k"), SHMEM_DEFAULT)).toEqual({
      huge: false,
      why: "/dev/shm is a tmpfs with huge=never"
    })
    expect(pagesOf("/dev/shm/r", mounts("rw,huge=within_size"), SHMEM_DEFAULT).huge).toBe(true)
    expect(pagesOf("/dev/shm/r", mounts("rw,huge=always"), SHMEM_DEFAULT).huge).toBe(true)
    expect(pagesOf("/dev/shm/r", mounts("rw,huge=advise"), SHMEM_DEFAULT).huge).toBe(false)
  })

  it("the host's shmem_enabled force or deny overrides every tmpfs; an absent file leaves the mount to decide", () => {
    expect(pagesOf("/dev/shm/r", mounts("rw"), "always within_size advise never deny [force]")).toEqual({
      huge: true,
      why: "the host's shmem_enabled is force"
    })
    expect(pagesOf("/dev/shm/r", mounts("rw,huge=always"), "always within_size advise never [deny] force").huge)
      .toBe(false)
    expect(pagesOf("/dev/shm/r", mounts("rw,huge=always"), "").huge).toBe(true)
  })

  it("the longest mount point holding the path decides, matched on whole path components and unescaped", () => {
    // /dev/shm, not /dev (devtmpfs) nor / (ext4).
    expect(pagesOf("/dev/shm/r", mounts("rw,huge=always"), SHMEM_DEFAULT).why).toBe(
      "/dev/shm is a tmpfs with huge=always"
    )
    // /dev/shmx is not under /dev/shm.
    expect(pagesOf("/dev/shmx/r", mounts("rw,huge=always"), SHMEM_DEFAULT)).toEqual({
      huge: undefined,
      why: "/dev is a devtmpfs"
    })
    expect(pagesOf("/mnt/cx log/r", mounts("rw"), SHMEM_DEFAULT)).toEqual({
      huge: true,
      why: "/mnt/cx log is a tmpfs with huge=always"
    })
  })

  it("a file on another filesystem is not known here; hugetlbfs always maps huge pages", () => {
    expect(pagesOf("/var/lib/cxl/r", mounts("rw"), SHMEM_DEFAULT)).toEqual({ huge: undefined, why: "/ is a ext4" })
    expect(pagesOf("/mnt/huge/r", mounts("rw"), SHMEM_DEFAULT).huge).toBe(true)
    expect(pagesOf("/r", "", SHMEM_DEFAULT)).toEqual({ huge: undefined, why: "no mount holds /r" })
  })

  it("on this host: a region in /dev/shm is judged from the mount /proc/mounts lists for it", () => {
    const shm = readFileSync("/proc/mounts", "utf8").split("\n").find((l) => l.split(" ")[1] === "/dev/shm")
    const pages = regionPages("cxlog-pages-test")
    if (shm?.split(" ")[2] === "tmpfs") {
      expect(typeof pages.huge).toBe("boolean")
      expect(pages.why).toMatch(/^\/dev\/shm is a tmpfs with huge=\w+$|^the host's shmem_enabled is (force|deny)$/)
    } else {
      expect(pages.huge).not.toBe(false)
    }
  })
})
