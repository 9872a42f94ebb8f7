// SPDX-License-Identifier: Apache-2.0
// BpfObject: open → setConst → load (worker thread) → program()/map() → close.
#include <bpf/btf.h>

#include <cerrno>
#include <cstring>

#include "errors.h"
#include "handles.h"
#include "logger.h"

namespace weft {

// bpf_object__load can spend a long time in the verifier: run it off the main thread.
// The object wrapper is held by reference until completion, so it cannot be collected
// or closed (state kLoading) while the worker uses it.
class LoadWorker : public Napi::AsyncWorker {
 public:
  LoadWorker(Napi::Env env, BpfObject* object)
      : Napi::AsyncWorker(env, "weft:bpf_object__load"),
        deferred_(Napi::Promise::Deferred::New(env)),
        object_(object),
        obj_(object->obj_) {
    object_ref_ = Napi::Persistent(object->Value());
  }

  Napi::Promise Promise() const { return deferred_.Promise(); }

  void Execute() override {
    LogCapture capture(&log_);
    err_ = bpf_object__load(obj_);
  }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    DeliverLog(env, log_);
    object_->state_ = err_ == 0 ? BpfObject::State::kLoaded : BpfObject::State::kFailed;
    if (err_ == 0) {
      deferred_.Resolve(env.Undefined());
    } else {
      deferred_.Reject(NativeError(env, "bpf_object__load", err_).Value());
    }
  }

 private:
  Napi::Promise::Deferred deferred_;
  BpfObject* object_;
  Napi::ObjectReference object_ref_;
  bpf_object* obj_;
  int err_ = 0;
  LogLines log_;
};

Napi::Function BpfObject::Define(Napi::Env env) {
  return DefineClass(env, "BpfObject",
                     {
                         StaticMethod<&BpfObject::Open>("open"),
                         InstanceAccessor<&BpfObject::ProgramNames>("programNames"),
                         InstanceAccessor<&BpfObject::MapNames>("mapNames"),
                         InstanceMethod<&BpfObject::SetConst>("setConst"),
                         InstanceMethod<&BpfObject::Load>("load"),
                         InstanceMethod<&BpfObject::Program>("program"),
                         InstanceMethod<&BpfObject::Map>("map"),
                         InstanceMethod<&BpfObject::Close>("close"),
                     });
}

BpfObject::BpfObject(const Napi::CallbackInfo& info) : Napi::ObjectWrap<BpfObject>(info) {
  if (info.Length() != 1 || !info[0].IsExternal())
    throw Napi::TypeError::New(info.Env(), "use BpfObject.open(path) to create a BpfObject");
  obj_ = info[0].As<Napi::External<bpf_object>>().Data();
}

BpfObject::~BpfObject() {
  if (obj_ != nullptr) bpf_object__close(obj_);
}

bpf_object* BpfObject::Get(Napi::Env env, const char* op) const {
  if (obj_ == nullptr) throw ClosedError(env, op);
  return obj_;
}

bpf_object* BpfObject::GetLoaded(Napi::Env env, const char* op) const {
  bpf_object* obj = Get(env, op);
  if (state_ != State::kLoaded) throw NativeError(env, op, EINVAL, "object is not loaded");
  return obj;
}

Napi::Value BpfObject::Open(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = StringArg(info, 0, "path");
  std::string pin_root, name;
  if (info.Length() > 1 && !info[1].IsUndefined()) {
    if (!info[1].IsObject()) throw Napi::TypeError::New(env, "opts must be an object");
    Napi::Object opts = info[1].As<Napi::Object>();
    Napi::Value v = opts.Get("pinRoot");
    if (!v.IsUndefined()) {
      if (!v.IsString()) throw Napi::TypeError::New(env, "opts.pinRoot must be a string");
      pin_root = v.As<Napi::String>().Utf8Value();
    }
    v = opts.Get("name");
    if (!v.IsUndefined()) {
      if (!v.IsString()) throw Napi::TypeError::New(env, "opts.name must be a string");
      name = v.As<Napi::String>().Utf8Value();
    }
  }
  bpf_object_open_opts opts{};
  opts.sz = sizeof(opts);
  if (!pin_root.empty()) opts.pin_root_path = pin_root.c_str();
  if (!name.empty()) opts.object_name = name.c_str();
  bpf_object* obj = CheckPtr(env, bpf_object__open_file(path.c_str(), &opts), "bpf_object__open_file");
  return Data(env).object.New({Napi::External<bpf_object>::New(env, obj)});
}

Napi::Value BpfObject::ProgramNames(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bpf_object* obj = Get(env, "BpfObject.programNames");
  Napi::Array names = Napi::Array::New(env);
  bpf_program* prog;
  bpf_object__for_each_program(prog, obj) names.Set(names.Length(), bpf_program__name(prog));
  return names;
}

Napi::Value BpfObject::MapNames(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bpf_object* obj = Get(env, "BpfObject.mapNames");
  Napi::Array names = Napi::Array::New(env);
  bpf_map* map;
  bpf_object__for_each_map(map, obj) names.Set(names.Length(), bpf_map__name(map));
  return names;
}

namespace {

// The internal map backing .rodata (libbpf names it "<object prefix>.rodata").
bpf_map* RodataMap(bpf_object* obj) {
  static const char kSuffix[] = ".rodata";
  bpf_map* map;
  bpf_object__for_each_map(map, obj) {
    const char* name = bpf_map__name(map);
    size_t len = strlen(name);
    if (bpf_map__is_internal(map) && len >= sizeof(kSuffix) - 1 &&
        strcmp(name + len - (sizeof(kSuffix) - 1), kSuffix) == 0)
      return map;
  }
  return nullptr;
}

}  // namespace

Napi::Value BpfObject::SetConst(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* op = "BpfObject.setConst";
  bpf_object* obj = Get(env, op);
  std::string variable = StringArg(info, 0, "variable");
  Napi::Buffer<uint8_t> value = BufferArg(info, 1, "value");
  // After load .rodata is frozen in the kernel (and its mmap is read-only).
  if (state_ != State::kOpened) throw NativeError(env, op, EBUSY, "load() was already called");

  // Find the variable's offset and size in the .rodata DATASEC of the object's BTF.
  btf* object_btf = bpf_object__btf(obj);
  bpf_map* rodata = RodataMap(obj);
  int sec_id = object_btf ? btf__find_by_name_kind(object_btf, ".rodata", BTF_KIND_DATASEC) : -ENOENT;
  if (rodata == nullptr || sec_id < 0)
    throw NativeError(env, op, ENOENT, "object has no .rodata section (no const volatile globals)");
  const btf_type* sec = btf__type_by_id(object_btf, sec_id);
  const btf_var_secinfo* vsi = btf_var_secinfos(sec);
  for (uint16_t i = 0; i < btf_vlen(sec); i++, vsi++) {
    const btf_type* var = btf__type_by_id(object_btf, vsi->type);
    if (variable != btf__name_by_offset(object_btf, var->name_off)) continue;
    ExpectSize(env, value, "value", vsi->size);
    size_t data_size = 0;
    void* data = const_cast<void*>(bpf_map__initial_value(rodata, &data_size));
    if (data == nullptr || vsi->offset + vsi->size > data_size)
      throw NativeError(env, op, EINVAL, ".rodata image is smaller than its BTF says");
    memcpy(static_cast<uint8_t*>(data) + vsi->offset, value.Data(), vsi->size);
    return env.Undefined();
  }
  throw NativeError(env, op, ENOENT, "no const volatile variable '" + variable + "' in .rodata");
}

Napi::Value BpfObject::Load(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* op = "bpf_object__load";
  if (obj_ == nullptr || state_ != State::kOpened) {
    auto deferred = Napi::Promise::Deferred::New(env);
    deferred.Reject(obj_ == nullptr ? ClosedError(env, op).Value()
                                    : NativeError(env, op, EBUSY, "object was already loaded").Value());
    return deferred.Promise();
  }
  state_ = State::kLoading;
  auto* worker = new LoadWorker(env, this);
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

Napi::Value BpfObject::Program(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bpf_object* obj = GetLoaded(env, "BpfObject.program");
  std::string name = StringArg(info, 0, "name");
  bpf_program* prog = bpf_object__find_program_by_name(obj, name.c_str());
  if (prog == nullptr)
    throw NativeError(env, "bpf_object__find_program_by_name", ENOENT, "no program '" + name + "'");
  return Data(env).program.New({Napi::External<bpf_program>::New(env, prog), Value()});
}

Napi::Value BpfObject::Map(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bpf_object* obj = GetLoaded(env, "BpfObject.map");
  std::string name = StringArg(info, 0, "name");
  bpf_map* map = bpf_object__find_map_by_name(obj, name.c_str());
  if (map == nullptr)
    throw NativeError(env, "bpf_object__find_map_by_name", ENOENT, "no map '" + name + "'");
  MapSource source{Check(env, bpf_map__fd(map), "bpf_map__fd"), false};
  return Data(env).map.New({Napi::External<MapSource>::New(env, &source), Value()});
}

Napi::Value BpfObject::Close(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (state_ == State::kLoading)
    throw NativeError(env, "bpf_object__close", EBUSY, "load() is still running");
  if (obj_ != nullptr) bpf_object__close(obj_);
  obj_ = nullptr;
  return env.Undefined();
}

}  // namespace weft
