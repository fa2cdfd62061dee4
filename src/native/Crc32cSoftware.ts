/** crc32c (Castagnoli) in TypeScript, for the in-memory fakes that run without the addon. */
const table = (() => {
  const t = new Uint32Array(256)
  for (let i = 0; i < 256; i++) {
    let c = i
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1
    t[i] = c >>> 0
  }
  return t
})()

export const crc32cSoftware = (
  bytes: ArrayBuffer | ArrayBufferView,
  offset: number,
  length: number,
  seed = 0
): number => {
  const view = bytes instanceof ArrayBuffer
    ? new Uint8Array(bytes, offset, length)
    : new Uint8Array(bytes.buffer, bytes.byteOffset + offset, length)
  let crc = ~seed >>> 0
  for (let i = 0; i < view.length; i++) crc = (crc >>> 8) ^ table[(crc ^ view[i]!) & 0xff]!
  return ~crc >>> 0
}
