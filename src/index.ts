/** cxlog: a totally ordered shared log whose hot tier lives in CXL (shared) memory. */
export * from "./services/CxlMemory.js"
export * as CxlMemoryLayers from "./layers/CxlMemory.js"
export * from "./services/Doorbell.js"
export * as DoorbellLayers from "./layers/Doorbell.js"
export { NativeError, NativeUnavailable, loadAddon } from "./native/Native.js"
