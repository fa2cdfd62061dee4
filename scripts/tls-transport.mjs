#!/usr/bin/env node
/**
 * Node's own TLS against Node's own TCP, with no cxlog in the path, in the shape of
 * `cxlog bench`'s data path: one process writing 64 KiB buffers to N receiving processes
 * over loopback (AES-128-GCM, a throwaway self-signed certificate made with openssl). Prints
 * one JSON line per run: MB/s and each side's CPU seconds per GiB (docs/security.md, "Today's figures").
 *
 *   node scripts/tls-transport.mjs [--pairs 3] [--streams 4] [--bytes 1073741824]
 */
import { execFileSync, fork } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import net from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import tls from "node:tls"

const flag = (name, fallback) => {
  const at = process.argv.indexOf(`--${name}`)
  return at >= 0 ? Number(process.argv[at + 1]) : fallback
}
const cpuSeconds = () => {
  const { user, system } = process.cpuUsage()
  return (user + system) / 1e6
}

if (process.argv[2] === "receiver") {
  // A receiver: counts its share, then reports its CPU to the sender.
  const [, , , mode, share, dir] = process.argv
  // A sender that died (a failed connect, ^C) leaves no one to stop this listener: its IPC channel closing does.
  process.on("disconnect", () => process.exit(1))
  const from = cpuSeconds()
  const options = {
    key: readFileSync(join(dir, "key.pem")),
    cert: readFileSync(join(dir, "cert.pem")),
    ciphers: "TLS_AES_128_GCM_SHA256"
  }
  const server = mode === "tls" ? tls.createServer(options) : net.createServer()
  server.on(mode === "tls" ? "secureConnection" : "connection", (socket) => {
    let received = 0
    socket.on("data", (chunk) => {
      received += chunk.length
      if (received >= Number(share)) {
        process.send({ cpu: cpuSeconds() - from })
        process.exit(0)
      }
    })
  })
  server.listen(0, "127.0.0.1", () => process.send({ port: server.address().port }))
} else {
  const pairs = flag("pairs", 3)
  const streams = flag("streams", 4)
  const bytes = flag("bytes", 2 ** 30)
  const dir = mkdtempSync(join(tmpdir(), "cxlog-tls-transport-"))
  try {
    execFileSync("openssl", [
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      join(dir, "key.pem"),
      "-out",
      join(dir, "cert.pem"),
      "-days",
      "1",
      "-subj",
      "/CN=localhost"
    ], { stdio: "ignore" })
    const once = async (mode) => {
      const share = bytes / streams
      const receivers = Array.from(
        { length: streams },
        () => fork(process.argv[1], ["receiver", mode, `${share}`, dir])
      )
      const ports = await Promise.all(
        receivers.map((r) => new Promise((resolve) => r.once("message", (m) => resolve(m.port))))
      )
      const sockets = await Promise.all(ports.map((port) =>
        new Promise((resolve) => {
          const socket = mode === "tls"
            ? tls.connect({ port, host: "127.0.0.1", rejectUnauthorized: false }, () => resolve(socket))
            : net.connect(port, "127.0.0.1", () => resolve(socket))
        })
      ))
      const reports = Promise.all(
        receivers.map((r) => new Promise((resolve) => r.once("message", (m) => resolve(m.cpu))))
      )
      const buffer = Buffer.alloc(65536, 1)
      const from = cpuSeconds()
      const started = Date.now()
      await Promise.all(sockets.map((socket) =>
        new Promise((resolve) => {
          let sent = 0
          const pump = () => {
            while (sent < share) {
              sent += buffer.length
              if (!socket.write(buffer)) return void socket.once("drain", pump)
            }
            resolve()
          }
          pump()
        })
      ))
      const receiverCpu = (await reports).reduce((a, b) => a + b, 0)
      const seconds = (Date.now() - started) / 1000
      const gib = bytes / 2 ** 30
      for (const socket of sockets) socket.destroy()
      return {
        mode,
        streams,
        mBps: Math.round(bytes / seconds / 1e6),
        senderCpuPerGiB: +((cpuSeconds() - from) / gib).toFixed(3),
        receiversCpuPerGiB: +(receiverCpu / gib).toFixed(3)
      }
    }
    for (let i = 0; i < pairs; i++) {
      const plain = await once("plain")
      const secured = await once("tls")
      console.log(JSON.stringify({ plain, secured, ratio: +(secured.mBps / plain.mBps).toFixed(3) }))
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}
