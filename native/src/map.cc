// SPDX-License-Identifier: Apache-2.0
// BpfMap: element operations on a map fd, either borrowed from a loaded BpfObject or
// owned (BpfMap.openPinned).
#include <bpf/bpf.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "errors.h"
#include "fd.h"
#include "handles.h"

namespace weft {

namespace {

constexpr int kENOTSUPP = 524;  // kernel-internal "no such op for this map type"

size_t RoundUp8(size_t n) { return (n + 7) & ~size_t(7); }

int PossibleCpus(Napi::Env env) {
  return Check(env, libbpf_num_possible_cpus(), "libbpf_num_possible_cpus");
}

// Map types whose kernel implementation has BPF_MAP_*_BATCH. For the others the
// syscall fails with ENOTSUPP, so asking is wasted work.
bool HasBatchOps(uint32_t type) {
  switch (type) {
    case BPF_MAP_TYPE_HASH:
    case BPF_MAP_TYPE_PERCPU_HASH:
    case BPF_MAP_TYPE_LRU_HASH:
    case BPF_MAP_TYPE_LRU_PERCPU_HASH:
    case BPF_MAP_TYPE_ARRAY:
    case BPF_MAP_TYPE_PERCPU_ARRAY:
      return true;
    default:
      return false;
  }
}

// Errors that mean "this kernel/map cannot batch", as opposed to a real failure.
bool BatchUnsupported(int err) { return err == kENOTSUPP || err == EOPNOTSUPP; }

Napi::Buffer<uint8_t> Copy(Napi::Env env, const uint8_t* data, size_t size) {
  return Napi::Buffer<uint8_t>::Copy(env, data, size);
}

// Appends [key, value] (copies) to `out`: the shape entries() returns.
void PushEntry(Napi::Env env, Napi::Array* out, const uint8_t* key, size_t key_size,
               const uint8_t* value, size_t value_size) {
  Napi::Array pair = Napi::Array::New(env, 2);
  pair.Set(0u, Copy(env, key, key_size));
  pair.Set(1u, Copy(env, value, value_size));
  out->Set(out->Length(), pair);
}

// Validates a JS array of Buffers of one size and packs them back to back.
std::vector<uint8_t> Pack(const Napi::CallbackInfo& info, size_t i, const char* what,
                          size_t size) {
  Napi::Env env = info.Env();
  if (i >= info.Length() || !info[i].IsArray())
    throw Napi::TypeError::New(env, std::string(what) + " must be an array of Buffers");
  Napi::Array array = info[i].As<Napi::Array>();
  std::vector<uint8_t> packed(array.Length() * size);
  for (uint32_t k = 0; k < array.Length(); k++) {
    Napi::Value v = array.Get(k);
    if (!v.IsBuffer())
      throw Napi::TypeError::New(env, std::string(what) + " must be an array of Buffers");
    auto buf = v.As<Napi::Buffer<uint8_t>>();
    ExpectSize(env, buf, what, size);
    memcpy(packed.data() + k * size, buf.Data(), size);
  }
  return packed;
}

}  // namespace

Napi::Function BpfMap::Define(Napi::Env env) {
  return DefineClass(env, "BpfMap",
                     {
                         StaticMethod<&BpfMap::OpenPinned>("openPinned"),
                         InstanceAccessor<&BpfMap::Type>("type"),
                         InstanceAccessor<&BpfMap::KeySize>("keySize"),
                         InstanceAccessor<&BpfMap::ValueSize>("valueSize"),
                         InstanceAccessor<&BpfMap::MaxEntries>("maxEntries"),
                         InstanceAccessor<&BpfMap::Id>("id"),
                         InstanceAccessor<&BpfMap::Name>("name"),
                         InstanceAccessor<&BpfMap::FdGetter>("fd"),
                         InstanceMethod<&BpfMap::Lookup>("lookup"),
                         InstanceMethod<&BpfMap::LookupPerCpu>("lookupPerCpu"),
                         InstanceMethod<&BpfMap::Update>("update"),
                         InstanceMethod<&BpfMap::Delete>("delete"),
                         InstanceMethod<&BpfMap::Keys>("keys"),
                         InstanceMethod<&BpfMap::Entries>("entries"),
                         InstanceMethod<&BpfMap::UpdateBatch>("updateBatch"),
                         InstanceMethod<&BpfMap::DeleteBatch>("deleteBatch"),
                         InstanceMethod<&BpfMap::Pin>("pin"),
                         InstanceMethod<&BpfMap::Unpin>("unpin"),
                         InstanceMethod<&BpfMap::Close>("close"),
                     });
}

BpfMap::BpfMap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<BpfMap>(info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsExternal())
    throw Napi::TypeError::New(env, "use BpfObject.map(name) or BpfMap.openPinned(path) to get a BpfMap");
  const MapSource* source = info[0].As<Napi::External<MapSource>>().Data();
  fd_ = source->fd;
  owned_ = source->owned;
  if (info.Length() > 1 && info[1].IsObject()) {
    parent_ = BpfObject::Unwrap(info[1].As<Napi::Object>());
    parent_ref_ = Napi::Persistent(info[1].As<Napi::Object>());
  }
  // Sizes and type come from the kernel, so pinned and object maps look the same.
  uint32_t len = sizeof(info_);
  int ret = bpf_obj_get_info_by_fd(fd_, &info_, &len);
  if (ret < 0) {
    if (owned_) close(fd_);
    fd_ = -1;
    closed_ = true;
    Check(env, ret, "bpf_obj_get_info_by_fd");
  }
  // The syscall copies one 8-byte-aligned slot per possible CPU for per-CPU maps.
  value_bytes_ = PerCpu() ? RoundUp8(info_.value_size) * PossibleCpus(env) : info_.value_size;
}

BpfMap::~BpfMap() {
  if (owned_ && !closed_) close(fd_);
}

int BpfMap::Fd(Napi::Env env, const char* op) const {
  if (closed_) throw ClosedError(env, op);
  if (parent_ != nullptr) parent_->Get(env, op);  // borrowed fd dies with the object
  return fd_;
}

Napi::Value BpfMap::OpenPinned(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = StringArg(info, 0, "path");
  int fd = bpf_obj_get(path.c_str());
  if (fd < 0) throw NativeError(env, "bpf_obj_get", -fd, path + ": " + strerror(-fd));
  UniqueFd guard(fd);
  ExpectFdKind(env, fd, "bpf-map", path, "bpf_obj_get");
  MapSource source{guard.release(), true};
  return Data(env).map.New({Napi::External<MapSource>::New(env, &source)});
}

bool BpfMap::PerCpu() const {
  switch (info_.type) {
    case BPF_MAP_TYPE_PERCPU_HASH:
    case BPF_MAP_TYPE_PERCPU_ARRAY:
    case BPF_MAP_TYPE_LRU_PERCPU_HASH:
    case BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE:
      return true;
    default:
      return false;
  }
}


uint64_t BpfMap::Flags(const Napi::CallbackInfo& info, size_t i) const {
  if (i >= info.Length() || info[i].IsUndefined()) return BPF_ANY;
  if (!info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), "flags must be a number");
  uint32_t flags = info[i].As<Napi::Number>().Uint32Value();
  if (flags != BPF_ANY && flags != BPF_NOEXIST && flags != BPF_EXIST)
    throw Napi::RangeError::New(info.Env(), "flags must be BPF_ANY, BPF_NOEXIST or BPF_EXIST");
  return flags;
}

Napi::Buffer<uint8_t> BpfMap::Key(const Napi::CallbackInfo& info, size_t i) const {
  return SizedBufferArg(info, i, "key", info_.key_size);
}

Napi::Value BpfMap::Type(const Napi::CallbackInfo& info) {
  Fd(info.Env(), "BpfMap.type");
  const char* name = libbpf_bpf_map_type_str(static_cast<bpf_map_type>(info_.type));
  return Napi::String::New(info.Env(), name ? name : "unknown:" + std::to_string(info_.type));
}
Napi::Value BpfMap::KeySize(const Napi::CallbackInfo& info) {
  Fd(info.Env(), "BpfMap.keySize");
  return Napi::Number::New(info.Env(), info_.key_size);
}
Napi::Value BpfMap::ValueSize(const Napi::CallbackInfo& info) {
  Fd(info.Env(), "BpfMap.valueSize");
  return Napi::Number::New(info.Env(), info_.value_size);
}
Napi::Value BpfMap::MaxEntries(const Napi::CallbackInfo& info) {
  Fd(info.Env(), "BpfMap.maxEntries");
  return Napi::Number::New(info.Env(), info_.max_entries);
}
Napi::Value BpfMap::Id(const Napi::CallbackInfo& info) {
  Fd(info.Env(), "BpfMap.id");
  return Napi::Number::New(info.Env(), info_.id);
}
Napi::Value BpfMap::Name(const Napi::CallbackInfo& info) {
  Fd(info.Env(), "BpfMap.name");
  return Napi::String::New(info.Env(), info_.name);
}
Napi::Value BpfMap::FdGetter(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), Fd(info.Env(), "BpfMap.fd"));
}

Napi::Value BpfMap::Lookup(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* op = "bpf_map_lookup_elem";
  int fd = Fd(env, op);
  auto key = Key(info, 0);
  std::vector<uint8_t> value(value_bytes_);
  int ret = bpf_map_lookup_elem(fd, key.Data(), value.data());
  if (ret == -ENOENT) return env.Null();
  Check(env, ret, op);
  return Copy(env, value.data(), value.size());
}

Napi::Value BpfMap::LookupPerCpu(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* op = "bpf_map_lookup_elem";
  int fd = Fd(env, op);
  auto key = Key(info, 0);
  if (!PerCpu()) throw NativeError(env, op, EINVAL, "lookupPerCpu on a map that is not per-CPU");
  int cpus = PossibleCpus(env);
  size_t stride = RoundUp8(info_.value_size);
  std::vector<uint8_t> value(stride * cpus);
  int ret = bpf_map_lookup_elem(fd, key.Data(), value.data());
  if (ret == -ENOENT) return env.Null();
  Check(env, ret, op);
  Napi::Array out = Napi::Array::New(env, cpus);
  for (int cpu = 0; cpu < cpus; cpu++)
    out.Set(cpu, Copy(env, value.data() + cpu * stride, info_.value_size));
  return out;
}

Napi::Value BpfMap::Update(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* op = "bpf_map_update_elem";
  int fd = Fd(env, op);
  auto key = Key(info, 0);
  auto value = SizedBufferArg(info, 1, "value", value_bytes_);
  Check(env, bpf_map_update_elem(fd, key.Data(), value.Data(), Flags(info, 2)), op);
  return env.Undefined();
}

Napi::Value BpfMap::Delete(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* op = "bpf_map_delete_elem";
  int fd = Fd(env, op);
  auto key = Key(info, 0);
  int ret = bpf_map_delete_elem(fd, key.Data());
  if (ret == -ENOENT) return Napi::Boolean::New(env, false);
  Check(env, ret, op);
  return Napi::Boolean::New(env, true);
}

template <typename OnKey>
void BpfMap::WalkKeys(Napi::Env env, OnKey on_key) const {
  std::vector<uint8_t> key(info_.key_size), next(info_.key_size);
  const void* prev = nullptr;  // NULL asks for the first key
  // A hash walk restarts from the first key when the current one is deleted under it;
  // a map never holds more than max_entries keys, so that bounds the walk under churn.
  for (uint32_t seen = 0; seen < info_.max_entries; seen++) {
    int ret = bpf_map_get_next_key(fd_, prev, next.data());
    if (ret == -ENOENT) return;
    Check(env, ret, "bpf_map_get_next_key");
    key.swap(next);
    prev = key.data();
    on_key(key);
  }
}

Napi::Value BpfMap::Keys(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Fd(env, "bpf_map_get_next_key");
  Napi::Array out = Napi::Array::New(env);
  WalkKeys(env, [&](const std::vector<uint8_t>& key) {
    out.Set(out.Length(), Copy(env, key.data(), key.size()));
  });
  return out;
}

bool BpfMap::BatchEntries(Napi::Env env, Napi::Array* out) const {
  const char* op = "bpf_map_lookup_batch";
  size_t key_size = info_.key_size, value_size = value_bytes_;
  // The batch cursor is a u32 bucket index for hashes and a key for arrays.
  size_t cursor_size = key_size > 8 ? key_size : 8;
  std::vector<uint8_t> in(cursor_size), next(cursor_size);
  uint32_t chunk = info_.max_entries < 256 ? info_.max_entries : 256;
  if (chunk == 0) return true;
  std::vector<uint8_t> keys, values;
  bool first = true;
  for (;;) {
    keys.resize(chunk * key_size);
    values.resize(chunk * value_size);
    uint32_t count = chunk;
    bpf_map_batch_opts opts{};
    opts.sz = sizeof(opts);
    int ret = bpf_map_lookup_batch(fd_, first ? nullptr : in.data(), next.data(), keys.data(),
                                   values.data(), &count, &opts);
    int err = ret < 0 ? -ret : 0;
    if (err == ENOSPC && count == 0) {
      // A hash bucket holds more entries than fit: retry the same cursor, bigger.
      chunk *= 2;
      continue;
    }
    if (first && (BatchUnsupported(err) || err == EINVAL) && count == 0) return false;
    if (err != 0 && err != ENOENT) throw NativeError(env, op, err);
    for (uint32_t i = 0; i < count; i++)
      PushEntry(env, out, keys.data() + i * key_size, key_size, values.data() + i * value_size, value_size);
    if (err == ENOENT) return true;  // ENOENT marks the end of the map
    in.swap(next);
    first = false;
  }
}

void BpfMap::WalkEntries(Napi::Env env, Napi::Array* out) const {
  std::vector<uint8_t> value(value_bytes_);
  WalkKeys(env, [&](const std::vector<uint8_t>& key) {
    int ret = bpf_map_lookup_elem(fd_, key.data(), value.data());
    if (ret == -ENOENT) return;  // deleted between the two calls
    Check(env, ret, "bpf_map_lookup_elem");
    PushEntry(env, out, key.data(), key.size(), value.data(), value.size());
  });
}

Napi::Value BpfMap::Entries(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Fd(env, "BpfMap.entries");
  Napi::Array out = Napi::Array::New(env);
  if (!HasBatchOps(info_.type) || !BatchEntries(env, &out)) WalkEntries(env, &out);
  return out;
}

Napi::Value BpfMap::UpdateBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* op = "bpf_map_update_batch";
  int fd = Fd(env, op);
  std::vector<uint8_t> keys = Pack(info, 0, "keys", info_.key_size);
  size_t value_size = value_bytes_;
  std::vector<uint8_t> values = Pack(info, 1, "values", value_size);
  uint32_t n = keys.size() / (info_.key_size ? info_.key_size : 1);
  if (values.size() / value_size != n)
    throw Napi::RangeError::New(env, "keys and values must have the same length");
  uint64_t flags = Flags(info, 2);
  if (n == 0) return env.Undefined();
  // The kernel's batch update takes no NOEXIST/EXIST (elem_flags is BPF_F_LOCK only),
  // so those flags go element by element.
  if (HasBatchOps(info_.type) && flags == BPF_ANY) {
    uint32_t count = n;
    bpf_map_batch_opts opts{};
    opts.sz = sizeof(opts);
    int ret = bpf_map_update_batch(fd, keys.data(), values.data(), &count, &opts);
    if (ret == 0) return env.Undefined();
    // Only fall back when nothing was written: a partial batch is a real failure.
    if (!(BatchUnsupported(-ret) && count == 0)) Check(env, ret, op);
  }
  for (uint32_t i = 0; i < n; i++)
    Check(env, bpf_map_update_elem(fd, keys.data() + i * info_.key_size,
                                   values.data() + i * value_size, flags),
          "bpf_map_update_elem");
  return env.Undefined();
}

Napi::Value BpfMap::DeleteBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* op = "bpf_map_delete_batch";
  int fd = Fd(env, op);
  std::vector<uint8_t> keys = Pack(info, 0, "keys", info_.key_size);
  uint32_t n = keys.size() / (info_.key_size ? info_.key_size : 1);
  if (n == 0) return env.Undefined();
  if (HasBatchOps(info_.type)) {
    uint32_t count = n;
    bpf_map_batch_opts opts{};
    opts.sz = sizeof(opts);
    int ret = bpf_map_delete_batch(fd, keys.data(), &count, &opts);
    if (ret == 0) return env.Undefined();
    if (!(BatchUnsupported(-ret) && count == 0)) Check(env, ret, op);
  }
  for (uint32_t i = 0; i < n; i++)
    Check(env, bpf_map_delete_elem(fd, keys.data() + i * info_.key_size), "bpf_map_delete_elem");
  return env.Undefined();
}

Napi::Value BpfMap::Pin(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = Fd(env, "bpf_obj_pin");
  std::string path = StringArg(info, 0, "path");
  int ret = bpf_obj_pin(fd, path.c_str());
  if (ret < 0) throw NativeError(env, "bpf_obj_pin", -ret, path + ": " + strerror(-ret));
  return env.Undefined();
}

Napi::Value BpfMap::Unpin(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Fd(env, "unlink");
  std::string path = StringArg(info, 0, "path");
  if (unlink(path.c_str()) < 0) throw NativeError(env, "unlink", errno, path + ": " + strerror(errno));
  return env.Undefined();
}

Napi::Value BpfMap::Close(const Napi::CallbackInfo& info) {
  if (!closed_ && owned_) close(fd_);
  closed_ = true;
  parent_ref_.Reset();
  parent_ = nullptr;
  return info.Env().Undefined();
}

}  // namespace weft
