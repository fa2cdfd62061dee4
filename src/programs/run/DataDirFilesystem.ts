/**
 * The filesystem under an ACK 2 run's data directory (statfs). On a memory-backed one (tmpfs,
 * ramfs: what the OS's temporary directory often is) an fdatasync reaches no disk and costs
 * next to nothing, so the run's ACK 2 figures are not a disk's: the run says so when it starts.
 */
import { Console, Effect } from "effect"
import { statfsSync } from "node:fs"

/** statfs `f_type` magic numbers (linux/magic.h) by the names /proc/mounts gives them; ext2 and ext3 share ext4's. */
const FILESYSTEM_NAMES = new Map<number, string>([
  [0xef53, "ext4"],
  [0x01021994, "tmpfs"],
  [0x858458f6, "ramfs"],
  [0x58465342, "xfs"],
  [0x9123683e, "btrfs"],
  [0x2fc12fc1, "zfs"],
  [0xf2f52010, "f2fs"],
  [0x794c7630, "overlay"],
  [0x6969, "nfs"],
  [0xff534d42, "cifs"],
  [0x65735546, "fuse"],
  [0x4d44, "vfat"]
])

const MEMORY_BACKED = new Set(["tmpfs", "ramfs"])

/** The name of the filesystem `path` is on, or its magic number in hex when it has no name here. */
export const filesystemOf = (path: string): string => {
  const magic = statfsSync(path).type
  return FILESYSTEM_NAMES.get(magic) ?? `0x${magic.toString(16)}`
}

export const isMemoryBacked = (filesystem: string): boolean => MEMORY_BACKED.has(filesystem)

/** The filesystem of a run's data directory; a warning on stderr when it is memory-backed. */
export const dataDirFilesystem = (dir: string) =>
  Effect.gen(function*() {
    const filesystem = filesystemOf(dir)
    if (isMemoryBacked(filesystem)) {
      yield* Console.error(
        `cxlog: warning: the data directory ${dir} is on ${filesystem} (memory): its fdatasyncs reach no disk, so ACK 2 here costs ` +
          "what no disk would; set CXLOG_DATA_DIR to a directory on the disk to measure"
      )
    }
    return filesystem
  })
