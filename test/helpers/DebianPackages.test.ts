/**
 * The test packages' helper (DebianPackages.ts) against a fake `apt-get` first on PATH, which
 * writes down every call: a test file's `ensureDebianBinary` never runs apt-get (test files side
 * by side collided on the dpkg lock), it finds the binary or gives the global setup's reason; the
 * global setup's `installDebianPackages` runs one update and an install per missing package, and
 * notes a failed one without throwing.
 */
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterEach, beforeEach, describe, expect, it } from "vitest"
import { ensureDebianBinary, installDebianPackages } from "./DebianPackages.js"

const NOTES_ENV = "CXLOG_TEST_DEBIAN_NOTES"

let dir = ""
let calls = ""
const saved = { path: process.env["PATH"], notes: process.env[NOTES_ENV] }

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "cxlog-apt-"))
  calls = join(dir, "calls")
  // Writes down its arguments; `install … cxlog-test-good` puts cxlog-test-good-bin beside it, `install … cxlog-test-bad` fails.
  writeFileSync(
    join(dir, "apt-get"),
    [
      "#!/bin/sh",
      `echo "$*" >> ${calls}`,
      `case "$*" in`,
      `  *"install -y -qq cxlog-test-good") printf '#!/bin/sh\\n' > ${join(dir, "cxlog-test-good-bin")}; chmod +x ${
        join(dir, "cxlog-test-good-bin")
      } ;;`,
      `  *"install -y -qq cxlog-test-bad") exit 100 ;;`,
      "esac",
      ""
    ].join("\n")
  )
  chmodSync(join(dir, "apt-get"), 0o755)
  process.env["PATH"] = `${dir}:${saved.path}`
  delete process.env[NOTES_ENV]
})

afterEach(() => {
  process.env["PATH"] = saved.path
  if (saved.notes === undefined) delete process.env[NOTES_ENV]
  else process.env[NOTES_ENV] = saved.notes
  rmSync(dir, { recursive: true, force: true })
})

const aptCalls = () => (existsSync(calls) ? readFileSync(calls, "utf8").trim().split("\n") : [])

describe("Debian packages for the tests", () => {
  it("the suite's global setup ran the install before this file: its notes (none when all is there) reach the test files' processes", () => {
    expect(saved.notes).toBeDefined()
    expect(JSON.parse(saved.notes!)).toBeTypeOf("object")
  })

  it("a test file's ensureDebianBinary runs no apt-get: a missing binary is a skip, with the global setup's reason when it noted one", () => {
    const absent = ensureDebianBinary("cxlog-test-absent", "cxlog-test-absent-bin")
    expect(aptCalls()).toEqual([])
    expect(absent).toMatchObject({ skip: expect.stringContaining("cxlog-test-absent-bin is not installed") })
    process.env[NOTES_ENV] = JSON.stringify({
      "cxlog-test-absent": "apt-get install cxlog-test-absent failed: no such package"
    })
    expect(ensureDebianBinary("cxlog-test-absent", "cxlog-test-absent-bin")).toEqual({
      skip: "apt-get install cxlog-test-absent failed: no such package"
    })
    expect(aptCalls()).toEqual([])
    // A binary that is there is found.
    expect(ensureDebianBinary("coreutils", "ls")).toMatchObject({ path: expect.stringMatching(/\/ls$/) })
  })

  it.skipIf(process.getuid?.() !== 0)(
    "the global setup installs each missing package (one update first) and notes one that fails, without throwing; a test file then finds or skips",
    () => {
      const notes = installDebianPackages([
        { pkg: "cxlog-test-good", binary: "cxlog-test-good-bin" },
        { pkg: "cxlog-test-bad", binary: "cxlog-test-bad-bin" },
        { pkg: "coreutils", binary: "ls" }
      ])
      expect(notes).toEqual({ "cxlog-test-bad": expect.stringContaining("apt-get install cxlog-test-bad failed") })
      // ls is there already: no install for it.
      expect(aptCalls()).toEqual([
        "-o DPkg::Lock::Timeout=300 update -qq",
        "-o DPkg::Lock::Timeout=300 install -y -qq cxlog-test-good",
        "-o DPkg::Lock::Timeout=300 install -y -qq cxlog-test-bad"
      ])
      expect(ensureDebianBinary("cxlog-test-good", "cxlog-test-good-bin")).toEqual({
        path: join(dir, "cxlog-test-good-bin")
      })
      expect(ensureDebianBinary("cxlog-test-bad", "cxlog-test-bad-bin")).toEqual({ skip: notes["cxlog-test-bad"] })
      // Nothing missing: no apt-get at all.
      expect(installDebianPackages([{ pkg: "cxlog-test-good", binary: "cxlog-test-good-bin" }])).toEqual({})
      expect(aptCalls()).toHaveLength(3)
    }
  )
})
