/**
 * Where `--report FILE.html` is to be written, checked when the flag is read: the report is
 * written at the end of the run, so a path it cannot be written to (a directory not there, one
 * this user may not write in) would otherwise be found out only after the whole run, its report lost.
 */
import { accessSync, constants, statSync } from "node:fs"
import { dirname, resolve } from "node:path"

/** Why a report cannot be written to `path`, or undefined when it can (as far as can be told before writing). */
export const reportPathProblem = (path: string): string | undefined => {
  if (path.trim() === "") return "give the file to write"
  const target = resolve(path)
  const directory = dirname(target)
  if (statSync(target, { throwIfNoEntry: false })?.isDirectory() === true) {
    return `${path} is a directory: name the file to write`
  }
  if (statSync(directory, { throwIfNoEntry: false })?.isDirectory() !== true) {
    return `there is no directory ${directory} to write ${path} in`
  }
  try {
    accessSync(statSync(target, { throwIfNoEntry: false }) === undefined ? directory : target, constants.W_OK)
    return undefined
  } catch (error) {
    return `${path} cannot be written: ${(error as NodeJS.ErrnoException).code ?? String(error)}`
  }
}
