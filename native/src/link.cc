// SPDX-License-Identifier: Apache-2.0
// BpfLink: a kernel bpf_link. Pinned links keep their attachment after this process
// exits; that is how a restarted agent keeps traffic flowing.
#include <bpf/bpf.h>

#include "errors.h"
#include "fd.h"
#include "handles.h"

namespace weft {

Napi::Function BpfLink::Define(Napi::Env env) {
  return DefineClass(env, "BpfLink",
                     {
                         StaticMethod<&BpfLink::OpenPinned>("openPinned"),
                         InstanceAccessor<&BpfLink::FdGetter>("fd"),
                         InstanceAccessor<&BpfLink::Id>("id"),
                         InstanceAccessor<&BpfLink::ProgId>("progId"),
                         InstanceAccessor<&BpfLink::CgroupId>("cgroupId"),
                         InstanceMethod<&BpfLink::Pin>("pin"),
                         InstanceMethod<&BpfLink::Unpin>("unpin"),
                         InstanceMethod<&BpfLink::Update>("update"),
                         InstanceMethod<&BpfLink::Detach>("detach"),
                         InstanceMethod<&BpfLink::Close>("close"),
                     });
}

BpfLink::BpfLink(const Napi::CallbackInfo& info) : Napi::ObjectWrap<BpfLink>(info) {
  if (info.Length() != 1 || !info[0].IsExternal())
    throw Napi::TypeError::New(info.Env(), "use attachCgroup() or BpfLink.openPinned() to get a BpfLink");
  link_ = info[0].As<Napi::External<bpf_link>>().Data();
}

BpfLink::~BpfLink() {
  // Closes our fd only: a pinned link stays attached.
  if (link_ != nullptr) bpf_link__destroy(link_);
}

Napi::Object BpfLink::Wrap(Napi::Env env, bpf_link* link) {
  return Data(env).link.New({Napi::External<bpf_link>::New(env, link)});
}

bpf_link* BpfLink::Get(Napi::Env env, const char* op) const {
  if (link_ == nullptr) throw ClosedError(env, op);
  return link_;
}

Napi::Value BpfLink::OpenPinned(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = StringArg(info, 0, "path");
  bpf_link* link = CheckPtr(env, bpf_link__open(path.c_str()), "bpf_link__open");
  try {
    ExpectFdKind(env, bpf_link__fd(link), "bpf-link", path, "bpf_link__open");
  } catch (...) {
    bpf_link__destroy(link);
    throw;
  }
  return Wrap(env, link);
}

bpf_link_info BpfLink::Info(Napi::Env env, const char* op) const {
  bpf_link_info link_info{};
  uint32_t len = sizeof(link_info);
  Check(env, bpf_obj_get_info_by_fd(bpf_link__fd(Get(env, op)), &link_info, &len),
        "bpf_obj_get_info_by_fd");
  return link_info;
}

Napi::Value BpfLink::FdGetter(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), bpf_link__fd(Get(info.Env(), "BpfLink.fd")));
}

Napi::Value BpfLink::Id(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), Info(info.Env(), "BpfLink.id").id);
}

Napi::Value BpfLink::ProgId(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), Info(info.Env(), "BpfLink.progId").prog_id);
}

Napi::Value BpfLink::CgroupId(const Napi::CallbackInfo& info) {
  bpf_link_info i = Info(info.Env(), "BpfLink.cgroupId");
  // 0 for other link types and for a cgroup link whose cgroup is gone (or detached).
  uint64_t id = i.type == BPF_LINK_TYPE_CGROUP ? i.cgroup.cgroup_id : 0;
  return Napi::BigInt::New(info.Env(), id);
}

Napi::Value BpfLink::Pin(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bpf_link* link = Get(env, "bpf_link__pin");
  std::string path = StringArg(info, 0, "path");
  Check(env, bpf_link__pin(link, path.c_str()), "bpf_link__pin");
  return env.Undefined();
}

Napi::Value BpfLink::Unpin(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Check(env, bpf_link__unpin(Get(env, "bpf_link__unpin")), "bpf_link__unpin");
  return env.Undefined();
}

Napi::Value BpfLink::Update(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* op = "bpf_link__update_program";
  bpf_link* link = Get(env, op);
  if (info.Length() < 1 || !info[0].IsObject() ||
      !info[0].As<Napi::Object>().InstanceOf(Data(env).program.Value()))
    throw Napi::TypeError::New(env, "program must be a BpfProgram");
  bpf_program* prog = BpfProgram::Unwrap(info[0].As<Napi::Object>())->Get(env, op);
  Check(env, bpf_link__update_program(link, prog), op);
  return env.Undefined();
}

Napi::Value BpfLink::Detach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Check(env, bpf_link__detach(Get(env, "bpf_link__detach")), "bpf_link__detach");
  return env.Undefined();
}

Napi::Value BpfLink::Close(const Napi::CallbackInfo& info) {
  if (link_ != nullptr) bpf_link__destroy(link_);
  link_ = nullptr;
  return info.Env().Undefined();
}

}  // namespace weft
