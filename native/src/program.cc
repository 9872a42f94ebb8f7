// SPDX-License-Identifier: Apache-2.0
// BpfProgram: a loaded program of a BpfObject and the ways to attach it.
#include <bpf/bpf.h>

#include "attach_type.h"
#include "errors.h"
#include "fd.h"
#include "handles.h"

namespace weft {

Napi::Function BpfProgram::Define(Napi::Env env) {
  return DefineClass(env, "BpfProgram",
                     {
                         InstanceAccessor<&BpfProgram::Name>("name"),
                         InstanceAccessor<&BpfProgram::Section>("section"),
                         InstanceAccessor<&BpfProgram::Id>("id"),
                         InstanceAccessor<&BpfProgram::FdGetter>("fd"),
                         InstanceMethod<&BpfProgram::AttachCgroup>("attachCgroup"),
                         InstanceMethod<&BpfProgram::AttachToMap>("attachToMap"),
                         InstanceMethod<&BpfProgram::DetachFromMap>("detachFromMap"),
                     });
}

BpfProgram::BpfProgram(const Napi::CallbackInfo& info) : Napi::ObjectWrap<BpfProgram>(info) {
  Napi::Env env = info.Env();
  if (info.Length() != 2 || !info[0].IsExternal() || !info[1].IsObject())
    throw Napi::TypeError::New(env, "use BpfObject.program(name) to get a BpfProgram");
  prog_ = info[0].As<Napi::External<bpf_program>>().Data();
  parent_ = BpfObject::Unwrap(info[1].As<Napi::Object>());
  parent_ref_ = Napi::Persistent(info[1].As<Napi::Object>());
}

bpf_program* BpfProgram::Get(Napi::Env env, const char* op) const {
  parent_->Get(env, op);  // the bpf_program lives inside the object
  return prog_;
}

int BpfProgram::Fd(Napi::Env env, const char* op) const {
  return Check(env, bpf_program__fd(Get(env, op)), "bpf_program__fd");
}

Napi::Value BpfProgram::Name(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), bpf_program__name(Get(info.Env(), "BpfProgram.name")));
}

Napi::Value BpfProgram::Section(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(),
                           bpf_program__section_name(Get(info.Env(), "BpfProgram.section")));
}

Napi::Value BpfProgram::Id(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bpf_prog_info prog_info{};
  uint32_t len = sizeof(prog_info);
  Check(env, bpf_obj_get_info_by_fd(Fd(env, "BpfProgram.id"), &prog_info, &len),
        "bpf_obj_get_info_by_fd");
  return Napi::Number::New(env, prog_info.id);
}

Napi::Value BpfProgram::FdGetter(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), Fd(info.Env(), "BpfProgram.fd"));
}

Napi::Value BpfProgram::AttachCgroup(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bpf_program* prog = Get(env, "bpf_program__attach_cgroup");
  std::string path = StringArg(info, 0, "cgroupPath");
  // The link holds its own reference to the cgroup; the directory fd is only for the call.
  UniqueFd cgroup = OpenDir(env, path, "open");
  bpf_link* link = CheckPtr(env, bpf_program__attach_cgroup(prog, cgroup.get()),
                            "bpf_program__attach_cgroup");
  return BpfLink::Wrap(env, link);
}

namespace {

// (map, attachType) arguments of attachToMap/detachFromMap: the map's fd and the type.
std::pair<int, bpf_attach_type> MapAttachArgs(const Napi::CallbackInfo& info, const char* op) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject() ||
      !info[0].As<Napi::Object>().InstanceOf(Data(env).map.Value()))
    throw Napi::TypeError::New(env, "map must be a BpfMap");
  int map_fd = BpfMap::Unwrap(info[0].As<Napi::Object>())->Fd(env, op);
  return {map_fd, AttachTypeArg(info, 1)};
}

}  // namespace

Napi::Value BpfProgram::AttachToMap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* op = "bpf_prog_attach";
  auto [map_fd, type] = MapAttachArgs(info, op);
  Check(env, bpf_prog_attach(Fd(env, op), map_fd, type, 0), op);
  return env.Undefined();
}

Napi::Value BpfProgram::DetachFromMap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* op = "bpf_prog_detach2";
  auto [map_fd, type] = MapAttachArgs(info, op);
  Check(env, bpf_prog_detach2(Fd(env, op), map_fd, type), op);
  return env.Undefined();
}

}  // namespace weft
