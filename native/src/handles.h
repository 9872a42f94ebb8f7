// SPDX-License-Identifier: Apache-2.0
// The JS classes of the addon. Each wraps one libbpf handle or kernel fd; close()
// releases it early (twice is a no-op), the finalizer releases what close() did not,
// and any other call on a closed handle throws NativeError code 'EBADF'.
//
// Handles are created only by the addon (BpfObject.open, BpfObject.program, ...): the
// JS constructors take a private External and throw TypeError otherwise.
#pragma once

#include <napi.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>

#include <string>

namespace weft {

// Constructors kept per environment so C++ can create instances and check instanceof.
struct AddonData {
  Napi::FunctionReference object;
  Napi::FunctionReference program;
  Napi::FunctionReference link;
  Napi::FunctionReference map;
};
AddonData& Data(Napi::Env env);

class BpfObject : public Napi::ObjectWrap<BpfObject> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit BpfObject(const Napi::CallbackInfo& info);
  ~BpfObject() override;

  // The libbpf object; throws EBADF once closed.
  bpf_object* Get(Napi::Env env, const char* op) const;
  // Throws unless load() has completed (maps and programs have kernel fds only then).
  bpf_object* GetLoaded(Napi::Env env, const char* op) const;

 private:
  friend class LoadWorker;
  enum class State { kOpened, kLoading, kLoaded, kFailed };

  static Napi::Value Open(const Napi::CallbackInfo& info);
  Napi::Value ProgramNames(const Napi::CallbackInfo& info);
  Napi::Value MapNames(const Napi::CallbackInfo& info);
  Napi::Value SetConst(const Napi::CallbackInfo& info);
  Napi::Value Load(const Napi::CallbackInfo& info);
  Napi::Value Program(const Napi::CallbackInfo& info);
  Napi::Value Map(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);

  bpf_object* obj_ = nullptr;
  State state_ = State::kOpened;
};

class BpfProgram : public Napi::ObjectWrap<BpfProgram> {
 public:
  static Napi::Function Define(Napi::Env env);
  // Created by BpfObject.program(): (External<bpf_program>, parent BpfObject).
  explicit BpfProgram(const Napi::CallbackInfo& info);

  // The program's fd; throws EBADF once the parent object is closed.
  int Fd(Napi::Env env, const char* op) const;
  bpf_program* Get(Napi::Env env, const char* op) const;

 private:
  Napi::Value Name(const Napi::CallbackInfo& info);
  Napi::Value Section(const Napi::CallbackInfo& info);
  Napi::Value Id(const Napi::CallbackInfo& info);
  Napi::Value FdGetter(const Napi::CallbackInfo& info);
  Napi::Value AttachCgroup(const Napi::CallbackInfo& info);
  Napi::Value AttachToMap(const Napi::CallbackInfo& info);
  Napi::Value DetachFromMap(const Napi::CallbackInfo& info);

  bpf_program* prog_ = nullptr;
  BpfObject* parent_ = nullptr;
  // Keeps the parent alive: the GC must not close the object under this handle.
  Napi::ObjectReference parent_ref_;
};

class BpfLink : public Napi::ObjectWrap<BpfLink> {
 public:
  static Napi::Function Define(Napi::Env env);
  // Created by attachCgroup/openPinned: (External<bpf_link>).
  explicit BpfLink(const Napi::CallbackInfo& info);
  ~BpfLink() override;
  static Napi::Object Wrap(Napi::Env env, bpf_link* link);

 private:
  static Napi::Value OpenPinned(const Napi::CallbackInfo& info);
  bpf_link* Get(Napi::Env env, const char* op) const;
  bpf_link_info Info(Napi::Env env, const char* op) const;
  Napi::Value FdGetter(const Napi::CallbackInfo& info);
  Napi::Value Id(const Napi::CallbackInfo& info);
  Napi::Value ProgId(const Napi::CallbackInfo& info);
  Napi::Value CgroupId(const Napi::CallbackInfo& info);
  Napi::Value Pin(const Napi::CallbackInfo& info);
  Napi::Value Unpin(const Napi::CallbackInfo& info);
  Napi::Value Update(const Napi::CallbackInfo& info);
  Napi::Value Detach(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);

  bpf_link* link_ = nullptr;
};

// What BpfMap's constructor receives through its External.
struct MapSource {
  int fd;
  bool owned;  // true: the handle closes fd; false: fd belongs to the parent object
};

class BpfMap : public Napi::ObjectWrap<BpfMap> {
 public:
  static Napi::Function Define(Napi::Env env);
  // (External<MapSource>[, parent BpfObject])
  explicit BpfMap(const Napi::CallbackInfo& info);
  ~BpfMap() override;

  int Fd(Napi::Env env, const char* op) const;

 private:
  static Napi::Value OpenPinned(const Napi::CallbackInfo& info);
  bool PerCpu() const;
  uint64_t Flags(const Napi::CallbackInfo& info, size_t i) const;
  Napi::Buffer<uint8_t> Key(const Napi::CallbackInfo& info, size_t i) const;

  Napi::Value Type(const Napi::CallbackInfo& info);
  Napi::Value KeySize(const Napi::CallbackInfo& info);
  Napi::Value ValueSize(const Napi::CallbackInfo& info);
  Napi::Value MaxEntries(const Napi::CallbackInfo& info);
  Napi::Value Id(const Napi::CallbackInfo& info);
  Napi::Value Name(const Napi::CallbackInfo& info);
  Napi::Value FdGetter(const Napi::CallbackInfo& info);
  Napi::Value Lookup(const Napi::CallbackInfo& info);
  Napi::Value LookupPerCpu(const Napi::CallbackInfo& info);
  Napi::Value Update(const Napi::CallbackInfo& info);
  Napi::Value Delete(const Napi::CallbackInfo& info);
  Napi::Value Keys(const Napi::CallbackInfo& info);
  Napi::Value Entries(const Napi::CallbackInfo& info);
  Napi::Value UpdateBatch(const Napi::CallbackInfo& info);
  Napi::Value DeleteBatch(const Napi::CallbackInfo& info);
  Napi::Value Pin(const Napi::CallbackInfo& info);
  Napi::Value Unpin(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);

  // Entries through BPF_MAP_LOOKUP_BATCH; false if the kernel has no batch op for it.
  bool BatchEntries(Napi::Env env, Napi::Array* out) const;
  void WalkEntries(Napi::Env env, Napi::Array* out) const;
  // bpf_map_get_next_key walk; on_key(const std::vector<uint8_t>& key) per key.
  template <typename OnKey>
  void WalkKeys(Napi::Env env, OnKey on_key) const;

  int fd_ = -1;
  bool owned_ = false;
  bool closed_ = false;
  bpf_map_info info_{};
  // Bytes of one value as the syscall sees it (all CPUs' slots for per-CPU maps).
  size_t value_bytes_ = 0;
  BpfObject* parent_ = nullptr;
  Napi::ObjectReference parent_ref_;
};

}  // namespace weft
