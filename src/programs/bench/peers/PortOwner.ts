/**
 * Whether a process is the one listening on a TCP port, from /proc: the kernel's table of TCP
 * sockets names each listening socket's inode, and a process's descriptors name the inodes of
 * the sockets it holds. A server started on a port picked free a moment before can lose that
 * port to another process; an answer on the port then says nothing of whether the server is up.
 */
import { readdirSync, readFileSync, readlinkSync } from "node:fs"

/** A socket's state in /proc/net/tcp: LISTEN. */
const LISTEN = "0A"

/** The inodes of the sockets listening on `port` (any address), or undefined where /proc/net is not. */
const listeningInodes = (port: number): Set<string> | undefined => {
  const inodes = new Set<string>()
  let readable = false
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text: string
    try {
      text = readFileSync(table, "latin1")
      readable = true
    } catch {
      continue
    }
    for (const line of text.split("\n").slice(1)) {
      const fields = line.trim().split(/\s+/)
      const local = fields[1]
      if (local === undefined || fields[3] !== LISTEN) continue
      if (Number.parseInt(local.slice(local.lastIndexOf(":") + 1), 16) === port) inodes.add(fields[9]!)
    }
  }
  return readable ? inodes : undefined
}

/**
 * True when process `pid` holds a socket listening on `port`, false when it holds none (another
 * process's listener, or nobody's), undefined where /proc cannot tell (another OS, or the
 * process's descriptors unreadable).
 */
export const listensOn = (pid: number, port: number): boolean | undefined => {
  const inodes = listeningInodes(port)
  if (inodes === undefined) return undefined
  if (inodes.size === 0) return false
  let descriptors: Array<string>
  try {
    descriptors = readdirSync(`/proc/${pid}/fd`)
  } catch {
    return undefined
  }
  for (const fd of descriptors) {
    let target: string
    try {
      target = readlinkSync(`/proc/${pid}/fd/${fd}`)
    } catch {
      continue // closed meanwhile
    }
    const socket = /^socket:\[(\d+)\]$/.exec(target)
    if (socket !== null && inodes.has(socket[1]!)) return true
  }
  return false
}
