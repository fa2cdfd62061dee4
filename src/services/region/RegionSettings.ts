/** The region's settings, declared once (src/Settings.ts): which region, its size, how it is opened and kept. */
import { nonBlank, setting, type SettingsTable } from "../../Settings.js"

export const REGION_SETTINGS = {
  usedBy: "library (CxlMemory.layerConfig)",
  settings: {
    name: setting.custom({
      env: "CXLOG_REGION",
      default: "cxlog",
      shown: "cxlog",
      parse: nonBlank("a region name (cxlog, or a path)"),
      placeholder: "NAME",
      description:
        "the region: a POSIX shared-memory name (under /dev/shm), or a path (a DAX device or a file on the CXL node)"
    }),
    size: setting.optionalSize({
      env: "CXLOG_REGION_BYTES",
      shown: "what the layout needs",
      description: "the region's size when it is created"
    }),
    mode: setting.choice({
      env: "CXLOG_REGION_MODE",
      values: ["create", "attach", "create-or-attach"],
      default: "create-or-attach",
      description: "create a new region, attach an existing one, or either"
    }),
    coherence: setting.choice({
      env: "CXLOG_COHERENCE",
      values: ["coherent", "non-coherent"],
      default: "coherent",
      description:
        "non-coherent: flush every line written and invalidate before reading (multi-host CXL without coherence)"
    }),
    keep: setting.toggle({
      env: "CXLOG_REGION_KEEP",
      description: "leave the region in /dev/shm when its creator stops"
    }),
    spinMicros: setting.optionalInteger({
      env: "CXLOG_SPIN_MICROS",
      shown: "50 (0 on one CPU)",
      description:
        "longest spin of a waiting process on its JS thread before it parks on its doorbell; spins only while recent waits say it pays and the machine has a core free"
    })
  }
} as const satisfies SettingsTable

/** The directory's part of the region's layout (docs/region.md): read by the head that creates the region, read back by every other process. */
export const DIRECTORY_LAYOUT_SETTINGS = {
  usedBy: "head (region layout)",
  settings: {
    entrySlots: setting.integer({
      env: "CXLOG_DIRECTORY_ENTRIES",
      default: 16384,
      min: 16,
      description: "entry slots of the region's directory, a power of two: named objects it holds (7/8 of them)"
    }),
    holderLines: setting.integer({
      env: "CXLOG_DIRECTORY_HOLDERS",
      default: 256,
      min: 1,
      description: "processes that can pin directory objects at once"
    }),
    heapBytes: setting.size({
      env: "CXLOG_HEAP_BYTES",
      default: 2 ** 31,
      description:
        "the region's heap: the space named objects' extents (topics among them) are allocated from; an extent takes memory when allocated and gives it back when freed"
    })
  }
} as const satisfies SettingsTable
