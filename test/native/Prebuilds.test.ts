/**
 * The prebuilt addons the package ships (prebuilds/, scripts/prebuilds.mjs): built from the
 * sources in the tree, each loading on its own architecture (arm64 under emulation) and doing
 * the addon's work there; and npm's install step, which uses them and builds from source only
 * where none loads, without failing an install that has neither.
 */
import { describe, expect, it } from "@effect/vitest"
import { execFileSync, spawnSync } from "node:child_process"
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { crc32cSoftware } from "../../src/native/Crc32cSoftware.js"
import { armNode } from "../helpers/ArmNode.js"

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..")
const prebuilt = (platform: string) => join(root, "prebuilds", platform, "cxlog_native.node")

/** A program that loads the addon at `path`, maps a small region, and prints what it saw. */
const probe = (path: string, region: string) => `
  const addon = require(${JSON.stringify(path)})
  const mapped = addon.open("shm", ${JSON.stringify(region)}, "create", 65536)
  new Uint8Array(mapped.buffer)[0] = 7
  addon.close(mapped.buffer)
  addon.unlink("shm", ${JSON.stringify(region)})
  const bytes = Buffer.from("123456789")
  console.log(JSON.stringify({ arch: process.arch, size: mapped.size, crc32c: addon.crc32c(bytes, 0, bytes.length, 0), features: addon.features() }))`

const regionName = (tag: string) => `cxlog-test-${process.env["CXLOG_TEST_RUN"]}-prebuild-${tag}-${process.pid}`
const check = crc32cSoftware(Buffer.from("123456789"), 0, 9)
const arm = armNode()

describe("prebuilt addons", () => {
  it("were built from the sources in the tree (else: npm run prebuilds)", () => {
    const manifest = JSON.parse(readFileSync(join(root, "prebuilds", "manifest.json"), "utf8")) as {
      sources: string
      binaries: Array<string>
    }
    const digest = execFileSync(process.execPath, [
      "--input-type=module",
      "-e",
      "console.log((await import('./scripts/addon-sources.mjs')).addonSourceDigest())"
    ], {
      cwd: root,
      encoding: "utf8"
    }).trim()
    expect(
      manifest.sources,
      "src/native/cxlog_native.cc, binding.gyp or node-addon-api changed since the prebuilds were made: run `npm run prebuilds`"
    ).toBe(digest)
    expect(manifest.binaries).toEqual([
      "prebuilds/linux-x64/cxlog_native.node",
      "prebuilds/linux-arm64/cxlog_native.node"
    ])
  })

  it.skipIf(process.arch !== "x64")(
    "linux-x64 loads, maps a region and computes crc32c as the software path does",
    () => {
      const seen = JSON.parse(
        execFileSync(process.execPath, ["-e", probe(prebuilt("linux-x64"), regionName("x64"))], { encoding: "utf8" })
      ) as {
        arch: string
        size: number
        crc32c: number
      }
      expect(seen).toMatchObject({ arch: "x64", size: 65536, crc32c: check })
    }
  )

  it.skipIf("skip" in arm)(
    `linux-arm64 does the same on an arm64 Node under qemu${"skip" in arm ? ` (skipped: ${arm.skip})` : ""}`,
    () => {
      const [emulator, ...args] = (arm as { command: ReadonlyArray<string> }).command
      const seen = JSON.parse(
        execFileSync(emulator!, [...args, "-e", probe(prebuilt("linux-arm64"), regionName("arm64"))], {
          encoding: "utf8",
          timeout: 120_000
        })
      ) as {
        arch: string
        size: number
        crc32c: number
        features: { crc32c: string }
      }
      expect(seen).toMatchObject({ arch: "arm64", size: 65536, crc32c: check })
      expect(seen.features.crc32c).toBe("armv8-crc")
    }
  )
})

describe("npm's install step (scripts/install-addon.mjs)", () => {
  /** An installed copy of the package's install step: no .git, `prebuilds` as given, and a PATH with node only (no node-gyp, no compiler). */
  const installedPackage = (withPrebuild: boolean, env: Record<string, string> = {}) => {
    const dir = mkdtempSync(join(tmpdir(), "cxlog-install-"))
    mkdirSync(join(dir, "scripts"))
    copyFileSync(join(root, "scripts", "install-addon.mjs"), join(dir, "scripts", "install-addon.mjs"))
    if (withPrebuild) {
      const platform = `${process.platform}-${process.arch}`
      mkdirSync(join(dir, "prebuilds", platform), { recursive: true })
      copyFileSync(prebuilt(platform), join(dir, "prebuilds", platform, "cxlog_native.node"))
    }
    const bin = join(dir, "bin")
    mkdirSync(bin)
    symlinkSync(process.execPath, join(bin, "node"))
    const run = spawnSync(join(bin, "node"), [join(dir, "scripts", "install-addon.mjs")], {
      encoding: "utf8",
      env: { PATH: bin, HOME: dir, ...env }
    })
    rmSync(dir, { recursive: true, force: true })
    return run
  }

  it.skipIf(process.arch !== "x64" && process.arch !== "arm64")(
    "takes the prebuilt addon that loads and builds nothing (there is no node-gyp to run)",
    () => {
      const run = installedPackage(true)
      expect(run.status).toBe(0)
      expect(run.stderr).toBe("")
    }
  )

  it.skipIf(process.arch !== "x64" && process.arch !== "arm64")(
    "CXLOG_BUILD_FROM_SOURCE takes a switch's every spelling of on, and refuses what is no switch",
    () => {
      // On, a build is attempted even beside a prebuilt addon that loads: with no node-gyp, it fails the install.
      for (const on of ["true", "1", "YES", "on"]) {
        expect(installedPackage(true, { CXLOG_BUILD_FROM_SOURCE: on }).status, on).not.toBe(0)
      }
      expect(installedPackage(true, { CXLOG_BUILD_FROM_SOURCE: "off" }).status).toBe(0)
      const refused = installedPackage(true, { CXLOG_BUILD_FROM_SOURCE: "treu" })
      expect(refused.status).toBe(2)
      expect(refused.stderr).toContain("CXLOG_BUILD_FROM_SOURCE: treu is not true or false")
    }
  )

  it("with no prebuilt addon and no way to build one, succeeds and says what works without it and how to build it", () => {
    const run = installedPackage(false)
    expect(run.status).toBe(0)
    expect(run.stderr).toContain("native addon unavailable")
    expect(run.stderr).toContain("the TCP publisher and subscriber")
    expect(run.stderr).toContain("npm rebuild cxlog")
  })
})
