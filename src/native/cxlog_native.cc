// cxlog native memory module: region mapping, cache-line flush, futex doorbells,
// crc32c, a monotonic clock and whether a command's output is still read. Everything else in cxlog is TypeScript.
#include <napi.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/futex.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <immintrin.h>
#define CXLOG_X86 1
#endif

#if defined(__aarch64__)
#include <arm_acle.h>
#include <asm/hwcap.h>
#include <sys/auxv.h>
#define CXLOG_ARM 1
#if defined(__clang__)
#define CXLOG_ARM_CRC_TARGET __attribute__((target("crc")))
#else
#define CXLOG_ARM_CRC_TARGET __attribute__((target("+crc")))
#endif
#endif

namespace {

// ---------------------------------------------------------------------------
// Errors: every failure becomes a JS Error carrying errno, code and syscall.

Napi::Value ThrowErrno(Napi::Env env, const char* syscallName, int err, const std::string& what) {
  std::string message = what + ": " + syscallName + " failed: " + std::strerror(err);
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("errno", Napi::Number::New(env, err));
  error.Set("syscall", Napi::String::New(env, syscallName));
  const char* code = err == ENOENT ? "ENOENT" : err == EEXIST ? "EEXIST" : err == EACCES ? "EACCES"
                   : err == EINVAL ? "EINVAL" : err == ENOMEM ? "ENOMEM" : err == ENOSPC ? "ENOSPC" : "EIO";
  error.Set("code", Napi::String::New(env, code));
  error.ThrowAsJavaScriptException();
  return env.Undefined();
}

Napi::Value ThrowType(Napi::Env env, const std::string& message) {
  Napi::TypeError::New(env, message).ThrowAsJavaScriptException();
  return env.Undefined();
}

Napi::Value ThrowRange(Napi::Env env, const std::string& message) {
  Napi::RangeError::New(env, message).ThrowAsJavaScriptException();
  return env.Undefined();
}

// ---------------------------------------------------------------------------
// Mappings. One external ArrayBuffer per mapping; the registry lets close() and the GC
// finalizer agree on who unmaps, and defers the unmap while a futex wait is in flight.

struct Mapping {
  uint64_t id;
  uint8_t* base;
  size_t size;
  int pendingWaits;
  bool closed;
  // The region's file, kept open to reserve and discard its pages (-1 for a device: its memory
  // exists whether used or not).
  int fd;
};

std::mutex registryMutex;
std::unordered_map<uint64_t, Mapping*> registry;
uint64_t nextMappingId = 1;

Mapping* FindByBase(const void* base) {
  for (auto& entry : registry) {
    if (entry.second->base == base && !entry.second->closed) return entry.second;
  }
  return nullptr;
}

void ReleaseIfIdle(Mapping* mapping) {
  if (mapping->closed && mapping->pendingWaits == 0) {
    munmap(mapping->base, mapping->size);
    if (mapping->fd >= 0) ::close(mapping->fd);
    registry.erase(mapping->id);
    delete mapping;
  }
}

// Closes a mapping unless already closed; the caller holds registryMutex.
void CloseMapping(uint64_t id) {
  auto found = registry.find(id);
  if (found != registry.end() && !found->second->closed) {
    found->second->closed = true;
    ReleaseIfIdle(found->second);
  }
}

// The hint is the mapping id itself, not a heap cell: Node calls this finalizer even when
// creating the ArrayBuffer fails, so nothing here may be freed twice.
void FinalizeMapping(napi_env, void*, void* idHint) {
  std::lock_guard<std::mutex> lock(registryMutex);
  CloseMapping(static_cast<uint64_t>(reinterpret_cast<uintptr_t>(idHint)));
}

// Reads (pointer, length) out of an ArrayBuffer, a TypedArray or a DataView.
bool BytesOf(const Napi::Value& value, uint8_t** data, size_t* length) {
  if (value.IsArrayBuffer()) {
    Napi::ArrayBuffer buffer = value.As<Napi::ArrayBuffer>();
    *data = static_cast<uint8_t*>(buffer.Data());
    *length = buffer.ByteLength();
    return true;
  }
  if (value.IsTypedArray()) {
    Napi::TypedArray array = value.As<Napi::TypedArray>();
    *data = static_cast<uint8_t*>(array.ArrayBuffer().Data()) + array.ByteOffset();
    *length = array.ByteLength();
    return true;
  }
  if (value.IsDataView()) {
    Napi::DataView view = value.As<Napi::DataView>();
    *data = static_cast<uint8_t*>(view.ArrayBuffer().Data()) + view.ByteOffset();
    *length = view.ByteLength();
    return true;
  }
  return false;
}

// Validates that [offset, offset + length) lies inside a byte range; offsets arrive as doubles.
bool RangeOk(double offset, double length, size_t size) {
  return offset >= 0 && length >= 0 && offset == static_cast<double>(static_cast<uint64_t>(offset)) &&
         length == static_cast<double>(static_cast<uint64_t>(length)) && offset + length <= static_cast<double>(size);
}

// Sizes and offsets cross into JS as Numbers, exact up to 2^53.
constexpr double kMaxSafeBytes = 9007199254740991.0;

// A region the runtime cannot wrap in one ArrayBuffer: a RangeError naming the limit when
// it is known (limit < 0: the runtime refused without saying).
Napi::Value ThrowTooLarge(Napi::Env env, const std::string& name, double size, double limit) {
  const std::string bytes = std::to_string(static_cast<uint64_t>(size));
  Napi::RangeError error = Napi::RangeError::New(
      env, limit < 0 ? "region " + name + ": this Node.js refused an ArrayBuffer of " + bytes + " bytes over it"
                     : "region " + name + " is " + bytes + " bytes, more than the " +
                           std::to_string(static_cast<uint64_t>(limit)) + " bytes one ArrayBuffer can hold in this Node.js");
  error.Set("code", Napi::String::New(env, "ERR_REGION_TOO_LARGE"));
  error.Set("size", Napi::Number::New(env, size));
  if (limit >= 0) error.Set("limit", Napi::Number::New(env, limit));
  error.ThrowAsJavaScriptException();
  return env.Undefined();
}

// open(kind: "shm" | "file", name, mode: "create" | "attach" | "create-or-attach", size, maxBytes?, reserveBytes?)
// `maxBytes` is the largest ArrayBuffer the runtime can wrap around a mapping; a larger region
// is refused before anything is created (or, when attaching, before it is mapped). A region
// file's creator reserves its first `reserveBytes` (default: all of it); the rest is reserved
// by `reserve` as it is handed out.
Napi::Value Open(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 4 || !info[0].IsString() || !info[1].IsString() || !info[2].IsString() || !info[3].IsNumber()) {
    return ThrowType(env, "open(kind, name, mode, size) expects (string, string, string, number)");
  }
  const std::string kind = info[0].As<Napi::String>();
  const std::string name = info[1].As<Napi::String>();
  const std::string mode = info[2].As<Napi::String>();
  const double requested = info[3].As<Napi::Number>().DoubleValue();
  const double maxBytes = info.Length() > 4 && info[4].IsNumber() ? info[4].As<Napi::Number>().DoubleValue() : kMaxSafeBytes;
  const double reserveBytes = info.Length() > 5 && info[5].IsNumber() ? info[5].As<Napi::Number>().DoubleValue() : kMaxSafeBytes;
  const bool isShm = kind == "shm";
  if (!isShm && kind != "file") return ThrowType(env, "kind must be \"shm\" or \"file\"");
  if (mode != "create" && mode != "attach" && mode != "create-or-attach") {
    return ThrowType(env, "mode must be \"create\", \"attach\" or \"create-or-attach\"");
  }
  if (!(requested >= 0 && requested <= kMaxSafeBytes) || requested != static_cast<double>(static_cast<uint64_t>(requested))) {
    return ThrowRange(env, "size must be a whole number of bytes below 2^53");
  }
  if (requested > maxBytes) return ThrowTooLarge(env, name, requested, maxBytes);

  auto openFd = [&](int flags) { return isShm ? shm_open(name.c_str(), flags, 0600) : ::open(name.c_str(), flags, 0600); };
  bool created = false;
  int fd = -1;
  if (mode != "attach") {
    fd = openFd(O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC);
    if (fd >= 0) {
      created = true;
    } else if (errno != EEXIST || mode == "create") {
      return ThrowErrno(env, isShm ? "shm_open" : "open", errno, "cannot create region " + name);
    }
  }
  if (fd < 0) {
    fd = openFd(O_RDWR | O_CLOEXEC);
    if (fd < 0) return ThrowErrno(env, isShm ? "shm_open" : "open", errno, "cannot attach region " + name);
  }

  // Every failure after a create removes the file again: a failed create leaves nothing behind.
  auto unlinkCreated = [&] {
    if (created) {
      if (isShm) shm_unlink(name.c_str()); else ::unlink(name.c_str());
    }
  };
  auto failAndClean = [&](const char* syscallName, int err, const std::string& what) {
    ::close(fd);
    unlinkCreated();
    return ThrowErrno(env, syscallName, err, what);
  };

  struct stat st;
  if (fstat(fd, &st) != 0) return failAndClean("fstat", errno, "cannot stat region " + name);
  uint64_t size = static_cast<uint64_t>(requested);
  if (S_ISREG(st.st_mode)) {
    if (created) {
      if (size == 0) return failAndClean("ftruncate", EINVAL, "a new region needs a size");
      if (ftruncate(fd, static_cast<off_t>(size)) != 0) return failAndClean("ftruncate", errno, "cannot size region " + name);
      // Reserve the pages now (those `reserveBytes` covers; the rest as `reserve` hands them
      // out): a sparse page on a filesystem with no room left (a full /dev/shm) would map fine
      // and then kill the process with SIGBUS at its first write. Real CXL memory exists before
      // it is used; so does every page of this region anyone writes.
      const uint64_t reserveNow = reserveBytes < static_cast<double>(size) ? static_cast<uint64_t>(reserveBytes) : size;
      const int reserved = reserveNow == 0 ? 0 : posix_fallocate(fd, 0, static_cast<off_t>(reserveNow));
      if (reserved != 0) {
        return failAndClean("posix_fallocate", reserved,
                            "cannot reserve " + std::to_string(reserveNow) + " bytes for region " + name + " (the filesystem holding it has no room)");
      }
    } else {
      size = static_cast<uint64_t>(st.st_size);
    }
  } else if (size == 0) {
    return failAndClean("fstat", EINVAL, "a device region needs an explicit size");
  }
  if (size == 0) return failAndClean("mmap", EINVAL, "region " + name + " is empty (its creator may still be sizing it)");
  if (static_cast<double>(size) > maxBytes || static_cast<uint64_t>(static_cast<size_t>(size)) != size) {
    ::close(fd);
    unlinkCreated();
    return ThrowTooLarge(env, name, static_cast<double>(size), maxBytes);
  }

  void* base = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  const int mmapErr = errno;
  const bool regularFile = S_ISREG(st.st_mode);
  if (base == MAP_FAILED || !regularFile) ::close(fd);
  if (base == MAP_FAILED) {
    unlinkCreated();
    return ThrowErrno(env, "mmap", mmapErr, "cannot map region " + name);
  }

  Mapping* mapping = new Mapping{0, static_cast<uint8_t*>(base), size, 0, false, regularFile ? fd : -1};
  uint64_t mappingId;
  {
    std::lock_guard<std::mutex> lock(registryMutex);
    mappingId = mapping->id = nextMappingId++;
    registry[mappingId] = mapping;
  }
  napi_value buffer;
  const napi_status status = napi_create_external_arraybuffer(env, base, size, FinalizeMapping,
                                                              reinterpret_cast<void*>(static_cast<uintptr_t>(mappingId)), &buffer);
  if (status != napi_ok) {
    // The runtime refused the length (Node 20 wraps external memory in a Buffer capped at
    // buffer.constants.MAX_LENGTH). It may or may not have run the finalizer already, which
    // frees `mapping`: only its id is used from here on (closing an id twice is a no-op).
    if (env.IsExceptionPending()) env.GetAndClearPendingException();
    {
      std::lock_guard<std::mutex> lock(registryMutex);
      CloseMapping(mappingId);
    }
    unlinkCreated();
    return ThrowTooLarge(env, name, static_cast<double>(size), -1);
  }
  Napi::Object result = Napi::Object::New(env);
  result.Set("buffer", buffer);
  result.Set("size", Napi::Number::New(env, static_cast<double>(size)));
  result.Set("created", Napi::Boolean::New(env, created));
  return result;
}

// close(buffer): detaches the ArrayBuffer (views read as empty, never as freed memory)
// and unmaps once no futex wait still uses the address.
Napi::Value Close(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsArrayBuffer()) return ThrowType(env, "close(buffer) expects the region ArrayBuffer");
  Napi::ArrayBuffer buffer = info[0].As<Napi::ArrayBuffer>();
  void* base = buffer.Data();
  Mapping* mapping;
  {
    std::lock_guard<std::mutex> lock(registryMutex);
    mapping = FindByBase(base);
    if (mapping == nullptr) return ThrowType(env, "close: not an open cxlog mapping (already closed?)");
    mapping->closed = true;
  }
  buffer.Detach();
  std::lock_guard<std::mutex> lock(registryMutex);
  ReleaseIfIdle(mapping);
  return env.Undefined();
}

Napi::Value Unlink(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsString()) return ThrowType(env, "unlink(kind, name) expects strings");
  const std::string kind = info[0].As<Napi::String>();
  const std::string name = info[1].As<Napi::String>();
  const int rc = kind == "shm" ? shm_unlink(name.c_str()) : ::unlink(name.c_str());
  if (rc != 0) return ThrowErrno(env, kind == "shm" ? "shm_unlink" : "unlink", errno, "cannot unlink region " + name);
  return env.Undefined();
}

// ---------------------------------------------------------------------------
// Cache lines, for non-coherent regions. Two paths: write-back (publish) may leave the line
// cached, so it uses the cheapest instruction that writes back (CLWB); invalidation must
// evict, or a later load could hit a stale cached copy of another host's write (CLFLUSHOPT,
// CLFLUSH, `dc civac`; never CLWB). The instructions are chosen once at load.

// Codes shared with Native.ts (CACHE_INSTRUCTIONS): keep the order.
enum class CacheOp { Clwb = 0, Clflushopt = 1, Clflush = 2, DcCvac = 3, DcCivac = 4, FenceOnly = 5 };
const char* const kCacheOpNames[] = {"clwb", "clflushopt", "clflush", "dc-cvac", "dc-civac", "fence-only"};
CacheOp writeBackOp = CacheOp::FenceOnly;
CacheOp evictOp = CacheOp::FenceOnly;

#ifdef CXLOG_X86
__attribute__((target("clwb"))) void WriteBackClwb(uint8_t* p, uint8_t* end) {
  for (; p < end; p += 64) _mm_clwb(p);
  _mm_sfence();
}
// Write-back is followed by the commit store (SFENCE orders it); an eviction is followed by
// loads, which only MFENCE keeps from passing the flush.
__attribute__((target("clflushopt"))) void Clflushopt(uint8_t* p, uint8_t* end, bool beforeLoads) {
  for (; p < end; p += 64) _mm_clflushopt(p);
  if (beforeLoads) _mm_mfence(); else _mm_sfence();
}
void Clflush(uint8_t* p, uint8_t* end) {
  for (; p < end; p += 64) _mm_clflush(p);
  _mm_mfence();
}
#endif

void RunCacheOp(CacheOp op, uint8_t* start, size_t length, bool beforeLoads) {
  uint8_t* p = reinterpret_cast<uint8_t*>(reinterpret_cast<uintptr_t>(start) & ~static_cast<uintptr_t>(63));
  uint8_t* end = start + length;
  switch (op) {
#ifdef CXLOG_X86
    case CacheOp::Clwb: WriteBackClwb(p, end); return;
    case CacheOp::Clflushopt: Clflushopt(p, end, beforeLoads); return;
    case CacheOp::Clflush: Clflush(p, end); return;
#endif
#if defined(__aarch64__)
    case CacheOp::DcCvac:
      for (; p < end; p += 64) asm volatile("dc cvac, %0" ::"r"(p) : "memory");
      asm volatile("dsb ish" ::: "memory");
      return;
    case CacheOp::DcCivac:
      for (; p < end; p += 64) asm volatile("dc civac, %0" ::"r"(p) : "memory");
      asm volatile("dsb ish" ::: "memory");
      return;
#endif
    default:
      std::atomic_thread_fence(std::memory_order_seq_cst);
      return;
  }
}

// Test-only record of cache-line calls: (path 0 write-back | 1 invalidate, CacheOp, offset, length).
std::atomic<int> recording{0};  // 0 off, 1 write-backs, 2 write-backs and invalidations
std::mutex recordMutex;
std::vector<double> records;

// flush(bytes, offset, length) / invalidate(bytes, offset, length)
Napi::Value CacheLines(const Napi::CallbackInfo& info, int path) {
  Napi::Env env = info.Env();
  uint8_t* data;
  size_t size;
  if (info.Length() < 3 || !BytesOf(info[0], &data, &size) || !info[1].IsNumber() || !info[2].IsNumber()) {
    return ThrowType(env, "flush / invalidate (buffer, offset, length) expects (ArrayBuffer | TypedArray, number, number)");
  }
  const double offset = info[1].As<Napi::Number>().DoubleValue();
  const double length = info[2].As<Napi::Number>().DoubleValue();
  if (!RangeOk(offset, length, size)) return ThrowRange(env, "flush / invalidate range is outside the buffer");
  const CacheOp op = path == 0 ? writeBackOp : evictOp;
  RunCacheOp(op, data + static_cast<size_t>(offset), static_cast<size_t>(length), path == 1);
  if (recording.load(std::memory_order_relaxed) > path) {
    std::lock_guard<std::mutex> lock(recordMutex);
    records.insert(records.end(), {static_cast<double>(path), static_cast<double>(op), offset, length});
  }
  return env.Undefined();
}

Napi::Value Flush(const Napi::CallbackInfo& info) { return CacheLines(info, 0); }
Napi::Value Invalidate(const Napi::CallbackInfo& info) { return CacheLines(info, 1); }

Napi::Value Fence(const Napi::CallbackInfo& info) {
  std::atomic_thread_fence(std::memory_order_seq_cst);
  return info.Env().Undefined();
}

// The mapping `info[0]` is (a region ArrayBuffer) and a page-aligned range of it, or a thrown error.
Mapping* PagesOf(const Napi::CallbackInfo& info, const char* what, off_t* offset, off_t* length) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsArrayBuffer() || !info[1].IsNumber() || !info[2].IsNumber()) {
    ThrowType(env, std::string(what) + "(buffer, offset, length) expects (the region ArrayBuffer, number, number)");
    return nullptr;
  }
  Mapping* mapping;
  {
    std::lock_guard<std::mutex> lock(registryMutex);
    mapping = FindByBase(info[0].As<Napi::ArrayBuffer>().Data());
  }
  if (mapping == nullptr) {
    ThrowType(env, std::string(what) + ": not an open cxlog mapping");
    return nullptr;
  }
  const double from = info[1].As<Napi::Number>().DoubleValue();
  const double bytes = info[2].As<Napi::Number>().DoubleValue();
  if (!RangeOk(from, bytes, mapping->size) || std::fmod(from, 4096) != 0 || std::fmod(bytes, 4096) != 0) {
    ThrowRange(env, std::string(what) + ": the range must be whole pages of the region");
    return nullptr;
  }
  *offset = static_cast<off_t>(from);
  *length = static_cast<off_t>(bytes);
  return mapping;
}

// reserve(buffer, offset, length): allocates the region file's pages of the range, so writing
// them cannot fault; 0, or the errno (ENOSPC: the filesystem holding the region is full). A
// device region's memory exists already: 0. Takes as long as the kernel takes to allocate the
// pages (about 0.5 ms a MiB of tmpfs on the 2-core VM): called for one extent at a time.
Napi::Value Reserve(const Napi::CallbackInfo& info) {
  off_t offset, length;
  Mapping* mapping = PagesOf(info, "reserve", &offset, &length);
  if (mapping == nullptr) return info.Env().Undefined();
  const int err = mapping->fd < 0 || length == 0 ? 0 : posix_fallocate(mapping->fd, offset, length);
  return Napi::Number::New(info.Env(), err);
}

// discard(buffer, offset, length): gives the range's pages back to the filesystem (a hole,
// which reads as zeros); 0, or the errno when it cannot (a device: the caller zeroes instead).
Napi::Value Discard(const Napi::CallbackInfo& info) {
  off_t offset, length;
  Mapping* mapping = PagesOf(info, "discard", &offset, &length);
  if (mapping == nullptr) return info.Env().Undefined();
  if (mapping->fd < 0) return Napi::Number::New(info.Env(), EOPNOTSUPP);
  if (length == 0) return Napi::Number::New(info.Env(), 0);
  const int done = fallocate(mapping->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length);
  return Napi::Number::New(info.Env(), done == 0 ? 0 : errno);
}

// setFlushRecording(on, withInvalidations?)
Napi::Value SetFlushRecording(const Napi::CallbackInfo& info) {
  const bool on = info.Length() > 0 && info[0].ToBoolean().Value();
  const bool withInvalidations = info.Length() > 1 && info[1].ToBoolean().Value();
  recording.store(on ? (withInvalidations ? 2 : 1) : 0);
  std::lock_guard<std::mutex> lock(recordMutex);
  records.clear();
  return info.Env().Undefined();
}

Napi::Value TakeFlushRecords(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<double> taken;
  {
    std::lock_guard<std::mutex> lock(recordMutex);
    taken.swap(records);
  }
  Napi::Float64Array out = Napi::Float64Array::New(env, taken.size());
  if (!taken.empty()) std::memcpy(out.Data(), taken.data(), taken.size() * sizeof(double));
  return out;
}

// ---------------------------------------------------------------------------
// Doorbells: shared (not private) futexes, so waits cross processes.

long Futex(uint32_t* address, int op, uint32_t value, const struct timespec* timeout) {
  return syscall(SYS_futex, address, op, value, timeout, nullptr, 0);
}

class WaitWorker : public Napi::AsyncWorker {
 public:
  WaitWorker(Napi::Env env, Napi::ArrayBuffer buffer, Mapping* mapping, uint32_t* address, uint32_t expected, double timeoutMs)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), mapping_(mapping), address_(address),
        expected_(expected), timeoutMs_(timeoutMs) {
    bufferRef_ = Napi::Persistent(buffer.As<Napi::Object>());
  }

  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    struct timespec timeout;
    const double ms = timeoutMs_ < 0 ? 0 : timeoutMs_;
    timeout.tv_sec = static_cast<time_t>(ms / 1000);
    timeout.tv_nsec = static_cast<long>((ms - static_cast<double>(timeout.tv_sec) * 1000) * 1e6);
    const long rc = Futex(address_, FUTEX_WAIT, expected_, &timeout);
    if (rc == 0) outcome_ = "woken";
    else if (errno == EAGAIN) outcome_ = "not-equal";
    else if (errno == ETIMEDOUT) outcome_ = "timed-out";
    else if (errno == EINTR) outcome_ = "woken";  // callers re-check their condition after any wake
    else { outcome_ = "error"; error_ = errno; }
  }

  void OnOK() override {
    Settle();
    if (outcome_ == "error") {
      Napi::Error error = Napi::Error::New(Env(), std::string("futex wait failed: ") + std::strerror(error_));
      error.Set("errno", Napi::Number::New(Env(), error_));
      deferred_.Reject(error.Value());
    } else {
      deferred_.Resolve(Napi::String::New(Env(), outcome_));
    }
  }

  void OnError(const Napi::Error& error) override {
    Settle();
    deferred_.Reject(error.Value());
  }

 private:
  void Settle() {
    std::lock_guard<std::mutex> lock(registryMutex);
    mapping_->pendingWaits--;
    ReleaseIfIdle(mapping_);
    bufferRef_.Reset();
  }

  Napi::Promise::Deferred deferred_;
  Napi::ObjectReference bufferRef_;
  Mapping* mapping_;
  uint32_t* address_;
  uint32_t expected_;
  double timeoutMs_;
  std::string outcome_;
  int error_ = 0;
};

// Resolves the 32-bit word at `offset` of a region buffer, or throws.
uint32_t* WordAt(const Napi::CallbackInfo& info, Mapping** mappingOut) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsArrayBuffer() || !info[1].IsNumber()) {
    ThrowType(env, "expects (regionBuffer, offset, ...)");
    return nullptr;
  }
  Napi::ArrayBuffer buffer = info[0].As<Napi::ArrayBuffer>();
  const double offset = info[1].As<Napi::Number>().DoubleValue();
  if (!RangeOk(offset, 4, buffer.ByteLength()) || static_cast<uint64_t>(offset) % 4 != 0) {
    ThrowRange(env, "doorbell offset must be a 4-byte aligned offset inside the region");
    return nullptr;
  }
  std::lock_guard<std::mutex> lock(registryMutex);
  Mapping* mapping = FindByBase(buffer.Data());
  if (mapping == nullptr) {
    ThrowType(env, "doorbell buffer is not an open cxlog mapping");
    return nullptr;
  }
  if (mappingOut != nullptr) *mappingOut = mapping;
  return reinterpret_cast<uint32_t*>(mapping->base + static_cast<size_t>(offset));
}

// wait(buffer, offset, expected, timeoutMs) -> Promise<"woken" | "not-equal" | "timed-out">
Napi::Value Wait(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Mapping* mapping = nullptr;
  uint32_t* address = WordAt(info, &mapping);
  if (address == nullptr) return env.Undefined();
  if (info.Length() < 4 || !info[2].IsNumber() || !info[3].IsNumber()) return ThrowType(env, "wait(buffer, offset, expected, timeoutMs)");
  const uint32_t expected = info[2].As<Napi::Number>().Uint32Value();
  const double timeoutMs = info[3].As<Napi::Number>().DoubleValue();
  {
    std::lock_guard<std::mutex> lock(registryMutex);
    mapping->pendingWaits++;
  }
  WaitWorker* worker = new WaitWorker(env, info[0].As<Napi::ArrayBuffer>(), mapping, address, expected, timeoutMs);
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

// wake(buffer, offset, count) -> number of waiters woken
Napi::Value Wake(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t* address = WordAt(info, nullptr);
  if (address == nullptr) return env.Undefined();
  const double count = info.Length() > 2 && info[2].IsNumber() ? info[2].As<Napi::Number>().DoubleValue() : 2147483647.0;
  const int n = count >= 2147483647.0 ? 2147483647 : count < 1 ? 1 : static_cast<int>(count);
  const long rc = Futex(address, FUTEX_WAKE, static_cast<uint32_t>(n), nullptr);
  if (rc < 0) return ThrowErrno(env, "futex", errno, "doorbell wake");
  return Napi::Number::New(env, static_cast<double>(rc));
}

// ---------------------------------------------------------------------------
// crc32c (Castagnoli, bit-reflected polynomial 0x82F63B78). Every path computes the same
// function; one is chosen at load, the fastest this CPU runs (tests run each one available
// against the software path):
//  - avx512-vpclmulqdq: four 512-bit accumulators (16 independent 128-bit lanes) fold 256
//    bytes per step by carry-less multiplication, are folded into one 128-bit value, and the
//    crc32 instruction finishes it (and the last 0..15 bytes); below 256 bytes, sse4.2-3way.
//    Long buffers go in groups that also keep five crc32 streams busy beside the folding:
//    neither unit alone keeps up with memcpy (about 60 and 50 GB/s on a Zen 5), both ~88.
//  - sse4.2-3way: three crc32 instruction streams over adjacent blocks, because the
//    instruction's latency is about three times its issue interval; the three crcs are
//    combined by shifting two of them with one carry-less multiply each (PCLMUL).
//  - sse4.2: one crc32 stream (SSE4.2 without PCLMUL). armv8-crc: one __crc32cd stream.
//  - software: slicing-by-8.
// Each path is compiled for its own instructions (target attributes), so the addon still
// loads on CPUs without them.

enum class CrcPath { Software = 0, Sse42 = 1, Sse42ThreeWay = 2, Avx512Vpclmulqdq = 3, ArmCrc = 4 };
// Names shared with Native.ts (CRC32C_PATHS): keep the order.
const char* const kCrcPathNames[] = {"software", "sse4.2", "sse4.2-3way", "avx512-vpclmulqdq", "armv8-crc"};
constexpr int kCrcPathCount = 5;
bool crcPathAvailable[kCrcPathCount] = {true, false, false, false, false};
CrcPath crcPath = CrcPath::Software;

constexpr uint32_t kCrcPoly = 0x82F63B78u;
uint32_t crcTable[8][256];

uint64_t Load64(const uint8_t* p) {
  uint64_t word;
  std::memcpy(&word, p, 8);
  return word;
}

// Polynomials mod P are kept bit-reflected like the crc itself: bit i is the coefficient of x^(31-i).
uint32_t MulByXPower(uint32_t a, uint32_t k) {
  while (k-- > 0) a = (a & 1) ? (a >> 1) ^ kCrcPoly : a >> 1;
  return a;
}

// The constant whose carry-less product with a reflected value multiplies it by x^e mod P:
// x^(e-33), because the product of two reflected operands carries one extra factor x, and
// either the 128-bit fold layout or the crc32 instruction that reduces the product adds x^32.
uint64_t ShiftConstant(uint32_t e) { return MulByXPower(0x80000000u, e - 33); }

void InitCrcTable() {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ kCrcPoly : c >> 1;
    crcTable[0][i] = c;
  }
  for (uint32_t i = 0; i < 256; i++) {
    for (int t = 1; t < 8; t++) crcTable[t][i] = (crcTable[t - 1][i] >> 8) ^ crcTable[0][crcTable[t - 1][i] & 0xFF];
  }
}

uint32_t CrcSoftware(uint32_t crc, const uint8_t* p, size_t n) {
  while (n >= 8) {
    const uint64_t word = Load64(p) ^ crc;
    crc = crcTable[7][word & 0xFF] ^ crcTable[6][(word >> 8) & 0xFF] ^ crcTable[5][(word >> 16) & 0xFF] ^
          crcTable[4][(word >> 24) & 0xFF] ^ crcTable[3][(word >> 32) & 0xFF] ^ crcTable[2][(word >> 40) & 0xFF] ^
          crcTable[1][(word >> 48) & 0xFF] ^ crcTable[0][word >> 56];
    p += 8;
    n -= 8;
  }
  while (n-- > 0) crc = (crc >> 8) ^ crcTable[0][(crc ^ *p++) & 0xFF];
  return crc;
}

#ifdef CXLOG_X86
__attribute__((target("sse4.2"))) uint32_t CrcSse42(uint32_t crc, const uint8_t* p, size_t n) {
  uint64_t c = crc;
  for (; n >= 8; p += 8, n -= 8) c = _mm_crc32_u64(c, Load64(p));
  uint32_t c32 = static_cast<uint32_t>(c);
  while (n-- > 0) c32 = _mm_crc32_u8(c32, *p++);
  return c32;
}

// Block sizes of the three streams, largest first: long blocks amortise the combine, short
// ones keep three streams going over the rest (the last < 3 * 64 bytes take one stream).
struct ThreeWayTier {
  size_t block;
  uint64_t shiftBlock;      // multiplies a crc by x^(8 * block)
  uint64_t shiftTwoBlocks;  // by x^(16 * block)
};
ThreeWayTier threeWayTiers[] = {{4096, 0, 0}, {256, 0, 0}, {64, 0, 0}};

__attribute__((target("sse4.2,pclmul"))) uint32_t CrcSse42ThreeWay(uint32_t crc, const uint8_t* p, size_t n) {
  for (const ThreeWayTier& tier : threeWayTiers) {
    const size_t block = tier.block;
    while (n >= 3 * block) {
      uint64_t a = crc, b = 0, c = 0;
      for (const uint8_t* end = p + block; p < end; p += 8) {
        a = _mm_crc32_u64(a, Load64(p));
        b = _mm_crc32_u64(b, Load64(p + block));
        c = _mm_crc32_u64(c, Load64(p + 2 * block));
      }
      // crc = a * x^(16 block) + b * x^(8 block) + c; the shifted part is reduced by one crc32.
      const __m128i shifted = _mm_xor_si128(
          _mm_clmulepi64_si128(_mm_cvtsi64_si128(static_cast<long long>(a)), _mm_cvtsi64_si128(static_cast<long long>(tier.shiftTwoBlocks)), 0x00),
          _mm_clmulepi64_si128(_mm_cvtsi64_si128(static_cast<long long>(b)), _mm_cvtsi64_si128(static_cast<long long>(tier.shiftBlock)), 0x00));
      crc = static_cast<uint32_t>(c ^ _mm_crc32_u64(0, static_cast<uint64_t>(_mm_cvtsi128_si64(shifted))));
      p += 2 * block;
      n -= 3 * block;
    }
  }
  return CrcSse42(crc, p, n);
}

// Fold constants for moving a 128-bit chunk forward by `bytes`: low qword multiplies the
// chunk's first 8 bytes (x^(8 bytes + 64)), high qword its last 8 (x^(8 bytes)).
struct FoldPair {
  uint64_t first, last;
};
FoldPair FoldBy(uint32_t bytes) { return {ShiftConstant(8 * bytes + 64), ShiftConstant(8 * bytes)}; }
FoldPair fold256, fold64, fold48, fold32, fold16, foldGap;

__attribute__((target("sse4.2,pclmul"))) __m128i Fold128(__m128i chunk, const FoldPair& k, __m128i next) {
  const __m128i constants = _mm_set_epi64x(static_cast<long long>(k.last), static_cast<long long>(k.first));
  return _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(chunk, constants, 0x00), _mm_clmulepi64_si128(chunk, constants, 0x11)), next);
}

__attribute__((target("avx512f,vpclmulqdq,pclmul,sse4.2"))) __m512i Fold512(__m512i chunks, __m512i constants, __m512i next) {
  return _mm512_ternarylogic_epi64(_mm512_clmulepi64_epi128(chunks, constants, 0x00), _mm512_clmulepi64_epi128(chunks, constants, 0x11), next, 0x96);
}

__attribute__((target("avx512f,vpclmulqdq,pclmul,sse4.2"))) __m512i Broadcast(const FoldPair& k) {
  return _mm512_maskz_broadcast_i32x4(0xFFFF, _mm_set_epi64x(static_cast<long long>(k.last), static_cast<long long>(k.first)));
}

// Hybrid groups: the vector unit folds the first kHybridVector bytes while kHybridStreams
// crc32 streams take the kHybridBlock-byte blocks after them (different execution units).
// The split (5 streams of 4 words per 256 vector bytes) was among the fastest measured on a
// Zen 5; 4..8 streams of 3..6 words were within 10 %.
constexpr size_t kHybridStreams = 5;
constexpr size_t kHybridWords = 4;  // crc32 steps per stream per 256 vector bytes
constexpr size_t kHybridVector = 4096;
constexpr size_t kHybridBlock = 8 * kHybridWords * (kHybridVector / 256 - 1);
constexpr size_t kHybridGroup = kHybridVector + kHybridStreams * kHybridBlock;
// Multipliers by x^(8 * bytes): [0] a group (the running stream crc), [1] the stream blocks of
// a group (the vector part's crc, at the end), [2 + k] the stream blocks after stream k.
uint64_t hybridShift[kHybridStreams + 1];

__attribute__((target("avx512f,vpclmulqdq,pclmul,sse4.2"))) uint32_t Reduce512(__m512i z) {
  // (the maskz forms: GCC 12 warns about the plain ones' undefined pass-through operand)
  const __m128i x = _mm_xor_si128(Fold128(_mm512_maskz_extracti32x4_epi32(0xF, z, 0), fold48, _mm512_maskz_extracti32x4_epi32(0xF, z, 3)),
                                  _mm_xor_si128(Fold128(_mm512_maskz_extracti32x4_epi32(0xF, z, 1), fold32, _mm_setzero_si128()),
                                                Fold128(_mm512_maskz_extracti32x4_epi32(0xF, z, 2), fold16, _mm_setzero_si128())));
  return static_cast<uint32_t>(_mm_crc32_u64(_mm_crc32_u64(0, static_cast<uint64_t>(_mm_cvtsi128_si64(x))), static_cast<uint64_t>(_mm_extract_epi64(x, 1))));
}

// Whole groups from p (n >= kHybridGroup). The accumulators run on across groups, folding over
// each group's stream blocks as over zeros (foldGap); the streams' crcs go into a running crc
// per group; both meet once at the end.
__attribute__((target("avx512f,vpclmulqdq,pclmul,sse4.2"))) uint32_t CrcHybridGroups(uint32_t crc, const uint8_t*& p, size_t& n) {
  const __m512i k256 = Broadcast(fold256);
  const __m512i kGap = Broadcast(foldGap);
  __m512i z0 = _mm512_xor_si512(_mm512_loadu_si512(p), _mm512_zextsi128_si512(_mm_cvtsi32_si128(static_cast<int>(crc))));
  __m512i z1 = _mm512_loadu_si512(p + 64), z2 = _mm512_loadu_si512(p + 128), z3 = _mm512_loadu_si512(p + 192);
  uint64_t streamed = 0;  // crc of the stream blocks so far, the vector parts read as zeros
  for (;;) {
    uint64_t streams[kHybridStreams] = {};
    const uint8_t* s = p + kHybridVector;
    for (const uint8_t* v = p + 256; v < p + kHybridVector; v += 256) {
      z0 = Fold512(z0, k256, _mm512_loadu_si512(v));
      z1 = Fold512(z1, k256, _mm512_loadu_si512(v + 64));
      z2 = Fold512(z2, k256, _mm512_loadu_si512(v + 128));
      z3 = Fold512(z3, k256, _mm512_loadu_si512(v + 192));
#pragma GCC unroll 16
      for (size_t w = 0; w < kHybridWords; w++, s += 8) {
#pragma GCC unroll 8
        for (size_t k = 0; k < kHybridStreams; k++) streams[k] = _mm_crc32_u64(streams[k], Load64(s + k * kHybridBlock));
      }
    }
    __m128i shifted = _mm_clmulepi64_si128(_mm_cvtsi64_si128(static_cast<long long>(streamed)), _mm_cvtsi64_si128(static_cast<long long>(hybridShift[0])), 0x00);
    for (size_t k = 0; k + 1 < kHybridStreams; k++) {
      shifted = _mm_xor_si128(shifted, _mm_clmulepi64_si128(_mm_cvtsi64_si128(static_cast<long long>(streams[k])), _mm_cvtsi64_si128(static_cast<long long>(hybridShift[k + 2])), 0x00));
    }
    streamed = streams[kHybridStreams - 1] ^ _mm_crc32_u64(0, static_cast<uint64_t>(_mm_cvtsi128_si64(shifted)));
    p += kHybridGroup;
    n -= kHybridGroup;
    if (n < kHybridGroup) break;
    z0 = Fold512(z0, kGap, _mm512_loadu_si512(p));
    z1 = Fold512(z1, kGap, _mm512_loadu_si512(p + 64));
    z2 = Fold512(z2, kGap, _mm512_loadu_si512(p + 128));
    z3 = Fold512(z3, kGap, _mm512_loadu_si512(p + 192));
  }
  const __m512i k64 = Broadcast(fold64);
  const uint64_t vector = Reduce512(Fold512(Fold512(Fold512(z0, k64, z1), k64, z2), k64, z3));
  // The last group's stream blocks follow the vector part: shift it over them.
  const __m128i product = _mm_clmulepi64_si128(_mm_cvtsi64_si128(static_cast<long long>(vector)), _mm_cvtsi64_si128(static_cast<long long>(hybridShift[1])), 0x00);
  return static_cast<uint32_t>(streamed ^ _mm_crc32_u64(0, static_cast<uint64_t>(_mm_cvtsi128_si64(product))));
}

// Folding keeps a value congruent mod P to the message read so far (the crc's initial value
// XORed into its first 4 bytes); the crc of that 128-bit value, taken from 0, is the crc.
__attribute__((target("avx512f,vpclmulqdq,pclmul,sse4.2"))) uint32_t CrcAvx512(uint32_t crc, const uint8_t* p, size_t n) {
  if (n >= kHybridGroup) crc = CrcHybridGroups(crc, p, n);
  if (n < 256) return CrcSse42ThreeWay(crc, p, n);
  __m512i z0 = _mm512_xor_si512(_mm512_loadu_si512(p), _mm512_zextsi128_si512(_mm_cvtsi32_si128(static_cast<int>(crc))));
  __m512i z1 = _mm512_loadu_si512(p + 64);
  __m512i z2 = _mm512_loadu_si512(p + 128);
  __m512i z3 = _mm512_loadu_si512(p + 192);
  p += 256;
  n -= 256;
  const __m512i k256 = Broadcast(fold256);
  for (; n >= 256; p += 256, n -= 256) {
    z0 = Fold512(z0, k256, _mm512_loadu_si512(p));
    z1 = Fold512(z1, k256, _mm512_loadu_si512(p + 64));
    z2 = Fold512(z2, k256, _mm512_loadu_si512(p + 128));
    z3 = Fold512(z3, k256, _mm512_loadu_si512(p + 192));
  }
  const __m512i k64 = Broadcast(fold64);
  z1 = Fold512(z0, k64, z1);
  z2 = Fold512(z1, k64, z2);
  z3 = Fold512(z2, k64, z3);
  for (; n >= 64; p += 64, n -= 64) z3 = Fold512(z3, k64, _mm512_loadu_si512(p));
  // (the maskz forms: GCC 12 warns about the plain ones' undefined pass-through operand)
  __m128i x = _mm_xor_si128(Fold128(_mm512_maskz_extracti32x4_epi32(0xF, z3, 0), fold48, _mm512_maskz_extracti32x4_epi32(0xF, z3, 3)),
                            _mm_xor_si128(Fold128(_mm512_maskz_extracti32x4_epi32(0xF, z3, 1), fold32, _mm_setzero_si128()),
                                          Fold128(_mm512_maskz_extracti32x4_epi32(0xF, z3, 2), fold16, _mm_setzero_si128())));
  for (; n >= 16; p += 16, n -= 16) x = Fold128(x, fold16, _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  const uint64_t c = _mm_crc32_u64(_mm_crc32_u64(0, static_cast<uint64_t>(_mm_cvtsi128_si64(x))), static_cast<uint64_t>(_mm_extract_epi64(x, 1)));
  return CrcSse42(static_cast<uint32_t>(c), p, n);
}
#endif

#ifdef CXLOG_ARM
CXLOG_ARM_CRC_TARGET uint32_t CrcArm(uint32_t crc, const uint8_t* p, size_t n) {
  for (; n >= 8; p += 8, n -= 8) crc = __crc32cd(crc, Load64(p));
  while (n-- > 0) crc = __crc32cb(crc, *p++);
  return crc;
}
#endif

void InitCrc() {
  InitCrcTable();
#ifdef CXLOG_X86
  for (ThreeWayTier& tier : threeWayTiers) {
    tier.shiftBlock = ShiftConstant(static_cast<uint32_t>(8 * tier.block));
    tier.shiftTwoBlocks = ShiftConstant(static_cast<uint32_t>(16 * tier.block));
  }
  hybridShift[0] = ShiftConstant(8 * kHybridGroup);
  hybridShift[1] = ShiftConstant(8 * kHybridStreams * kHybridBlock);
  for (size_t k = 0; k + 1 < kHybridStreams; k++) hybridShift[k + 2] = ShiftConstant(static_cast<uint32_t>(8 * (kHybridStreams - 1 - k) * kHybridBlock));
  fold256 = FoldBy(256);
  foldGap = FoldBy(static_cast<uint32_t>(256 + kHybridStreams * kHybridBlock));
  fold64 = FoldBy(64);
  fold48 = FoldBy(48);
  fold32 = FoldBy(32);
  fold16 = FoldBy(16);
#endif
}

// crc32c without the final inversion, from the inverted seed, on `path` (which must be available).
uint32_t CrcVia(CrcPath path, uint32_t crc, const uint8_t* p, size_t n) {
  switch (path) {
#ifdef CXLOG_X86
    case CrcPath::Avx512Vpclmulqdq: return CrcAvx512(crc, p, n);
    case CrcPath::Sse42ThreeWay: return CrcSse42ThreeWay(crc, p, n);
    case CrcPath::Sse42: return CrcSse42(crc, p, n);
#endif
#ifdef CXLOG_ARM
    case CrcPath::ArmCrc: return CrcArm(crc, p, n);
#endif
    default: return CrcSoftware(crc, p, n);
  }
}

size_t TypedArrayElementBytes(napi_typedarray_type type) {
  switch (type) {
    case napi_int16_array: case napi_uint16_array: return 2;
    case napi_int32_array: case napi_uint32_array: case napi_float32_array: return 4;
    case napi_float64_array: case napi_bigint64_array: case napi_biguint64_array: return 8;
    default: return 1;
  }
}

// Parses (bytes, offset?, length?, seed?) from info[first]; false after throwing. A crc of a
// small batch costs less than the call, so typed arrays (the usual argument) and the numbers
// are read with one raw Node-API call each.
bool CrcArgs(const Napi::CallbackInfo& info, size_t first, const uint8_t** p, size_t* n, uint32_t* seed) {
  Napi::Env env = info.Env();
  uint8_t* data = nullptr;
  size_t size = 0;
  bool typed = false;
  if (info.Length() > first && napi_is_typedarray(env, info[first], &typed) == napi_ok && typed) {
    napi_typedarray_type type;
    size_t count;
    void* start;
    if (napi_get_typedarray_info(env, info[first], &type, &count, &start, nullptr, nullptr) != napi_ok) typed = false;
    data = static_cast<uint8_t*>(start);  // already at the view's byte offset
    size = count * TypedArrayElementBytes(type);
  }
  if (!typed && (info.Length() <= first || !BytesOf(info[first], &data, &size))) {
    ThrowType(env, "crc32c(bytes, offset?, length?, seed?) expects bytes");
    return false;
  }
  // A missing or non-number argument takes its default.
  const auto number = [&](size_t i, double fallback) {
    double value;
    return info.Length() > first + i && napi_get_value_double(env, info[first + i], &value) == napi_ok ? value : fallback;
  };
  const double offset = number(1, 0);
  const double length = number(2, static_cast<double>(size) - offset);
  uint32_t seedValue;
  *seed = info.Length() > first + 3 && napi_get_value_uint32(env, info[first + 3], &seedValue) == napi_ok ? seedValue : 0;
  if (!RangeOk(offset, length, size)) {
    ThrowRange(env, "crc32c range is outside the bytes");
    return false;
  }
  *p = data + static_cast<size_t>(offset);
  *n = static_cast<size_t>(length);
  return true;
}

// crc32c(bytes, offset, length, seed) -> uint32, on the fastest path
Napi::Value Crc32cJs(const Napi::CallbackInfo& info) {
  const uint8_t* p;
  size_t n;
  uint32_t seed;
  if (!CrcArgs(info, 0, &p, &n, &seed)) return info.Env().Undefined();
  return Napi::Number::New(info.Env(), ~CrcVia(crcPath, ~seed, p, n));
}

// Test-only: crc32cVia(path, bytes, offset, length, seed) on a named path; RangeError if this CPU lacks it.
Napi::Value Crc32cViaJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) return ThrowType(env, "crc32cVia(path, bytes, offset?, length?, seed?) expects a path name");
  const std::string name = info[0].As<Napi::String>().Utf8Value();
  int path = 0;
  while (path < kCrcPathCount && name != kCrcPathNames[path]) path++;
  if (path == kCrcPathCount || !crcPathAvailable[path]) return ThrowRange(env, "crc32c path " + name + " is not available on this CPU");
  const uint8_t* p;
  size_t n;
  uint32_t seed;
  if (!CrcArgs(info, 1, &p, &n, &seed)) return env.Undefined();
  return Napi::Number::New(env, ~CrcVia(static_cast<CrcPath>(path), ~seed, p, n));
}

Napi::Value MonotonicNs(const Napi::CallbackInfo& info) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return Napi::Number::New(info.Env(), static_cast<double>(now.tv_sec) * 1e9 + static_cast<double>(now.tv_nsec));
}

Napi::Value Features(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  out.Set("flush", Napi::String::New(env, kCacheOpNames[static_cast<int>(writeBackOp)]));
  out.Set("invalidate", Napi::String::New(env, kCacheOpNames[static_cast<int>(evictOp)]));
  out.Set("crc32c", Napi::String::New(env, kCrcPathNames[static_cast<int>(crcPath)]));
  Napi::Array paths = Napi::Array::New(env);
  for (int path = 0; path < kCrcPathCount; path++) {
    if (crcPathAvailable[path]) paths.Set(paths.Length(), Napi::String::New(env, kCrcPathNames[path]));
  }
  out.Set("crc32cPaths", paths);
  return out;
}

void DetectFeatures() {
#ifdef CXLOG_X86
  unsigned eax, ebx, ecx, edx;
  bool sse42 = false, pclmul = false, zmmState = false;
  if (__get_cpuid(1, &eax, &ebx, &ecx, &edx)) {
    sse42 = (ecx & (1u << 20)) != 0;
    pclmul = (ecx & (1u << 1)) != 0;
    if (edx & (1u << 19)) writeBackOp = evictOp = CacheOp::Clflush;
    if (ecx & (1u << 27)) {  // OSXSAVE: XGETBV says whether the OS saves the opmask and ZMM registers
      uint32_t xcr0, xcr0High;
      __asm__("xgetbv" : "=a"(xcr0), "=d"(xcr0High) : "c"(0));
      zmmState = (xcr0 & 0xE6) == 0xE6;
    }
  }
  bool avx512 = false;
  if (__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) {
    if (ebx & (1u << 23)) writeBackOp = evictOp = CacheOp::Clflushopt;
    if (ebx & (1u << 24)) writeBackOp = CacheOp::Clwb;  // writes back only: never for invalidation
    avx512 = (ebx & (1u << 16)) != 0 && (ecx & (1u << 10)) != 0 && zmmState;  // AVX512F, VPCLMULQDQ
  }
  crcPathAvailable[static_cast<int>(CrcPath::Sse42)] = sse42;
  crcPathAvailable[static_cast<int>(CrcPath::Sse42ThreeWay)] = sse42 && pclmul;
  crcPathAvailable[static_cast<int>(CrcPath::Avx512Vpclmulqdq)] = sse42 && pclmul && avx512;
#elif defined(__aarch64__)
  writeBackOp = CacheOp::DcCvac;
  evictOp = CacheOp::DcCivac;
  crcPathAvailable[static_cast<int>(CrcPath::ArmCrc)] = (getauxval(AT_HWCAP) & HWCAP_CRC32) != 0;
#endif
  for (CrcPath path : {CrcPath::Avx512Vpclmulqdq, CrcPath::Sse42ThreeWay, CrcPath::Sse42, CrcPath::ArmCrc}) {
    if (crcPathAvailable[static_cast<int>(path)]) {
      crcPath = path;
      break;
    }
  }
}

// ---------------------------------------------------------------------------
// Wake FIFOs: a process waits for doorbell rings by reading a FIFO that libuv watches on its
// own loop (one kernel wake of the JS thread per ring); Node has no mkfifo of its own.

// mkfifo(path, mode): creates the FIFO, replacing a FIFO a previous owner left; anything else at
// the path is an error (EEXIST), never removed.
Napi::Value Mkfifo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsNumber()) return ThrowType(env, "mkfifo(path, mode)");
  const std::string path = info[0].As<Napi::String>().Utf8Value();
  const mode_t mode = static_cast<mode_t>(info[1].As<Napi::Number>().Uint32Value() & 0777);
  struct stat st;
  if (lstat(path.c_str(), &st) == 0) {
    if (!S_ISFIFO(st.st_mode)) return ThrowErrno(env, "mkfifo", EEXIST, "wake fifo " + path);
    if (unlink(path.c_str()) != 0 && errno != ENOENT) return ThrowErrno(env, "unlink", errno, "wake fifo " + path);
  }
  if (mkfifo(path.c_str(), mode) != 0) return ThrowErrno(env, "mkfifo", errno, "wake fifo " + path);
  // mkfifo honours the umask; the owner-only mode is what a doorbell needs.
  if (chmod(path.c_str(), mode) != 0) return ThrowErrno(env, "chmod", errno, "wake fifo " + path);
  return env.Undefined();
}

// ---------------------------------------------------------------------------
// A command's output: Node says that the reader of its stdout (a pipe, a socket) is gone only
// when a write fails, so a command with nothing to write would never learn it. poll(2) asking
// for no event still reports POLLERR (a pipe nobody reads) and POLLHUP (a socket whose peer
// closed), and changes nothing: libuv's own watch of the descriptor is left as it is.

// outputClosed(fd): whether nobody reads what is written to fd any more.
Napi::Value OutputClosed(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) return ThrowType(env, "outputClosed(fd)");
  struct pollfd watched = {info[0].As<Napi::Number>().Int32Value(), 0, 0};
  int ready;
  do ready = poll(&watched, 1, 0);
  while (ready < 0 && errno == EINTR);
  if (ready < 0) return ThrowErrno(env, "poll", errno, "output");
  return Napi::Boolean::New(env, ready > 0 && (watched.revents & (POLLERR | POLLHUP)) != 0);
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  static std::once_flag once;
  std::call_once(once, [] {
    InitCrc();
    DetectFeatures();
  });
  exports.Set("open", Napi::Function::New(env, Open));
  exports.Set("close", Napi::Function::New(env, Close));
  exports.Set("unlink", Napi::Function::New(env, Unlink));
  exports.Set("flush", Napi::Function::New(env, Flush));
  exports.Set("invalidate", Napi::Function::New(env, Invalidate));
  exports.Set("fence", Napi::Function::New(env, Fence));
  exports.Set("reserve", Napi::Function::New(env, Reserve));
  exports.Set("discard", Napi::Function::New(env, Discard));
  exports.Set("setFlushRecording", Napi::Function::New(env, SetFlushRecording));
  exports.Set("takeFlushRecords", Napi::Function::New(env, TakeFlushRecords));
  exports.Set("wait", Napi::Function::New(env, Wait));
  exports.Set("wake", Napi::Function::New(env, Wake));
  exports.Set("crc32c", Napi::Function::New(env, Crc32cJs));
  exports.Set("crc32cVia", Napi::Function::New(env, Crc32cViaJs));
  exports.Set("monotonicNs", Napi::Function::New(env, MonotonicNs));
  exports.Set("features", Napi::Function::New(env, Features));
  exports.Set("mkfifo", Napi::Function::New(env, Mkfifo));
  exports.Set("outputClosed", Napi::Function::New(env, OutputClosed));
  return exports;
}

}  // namespace

NODE_API_MODULE(cxlog_native, Init)
