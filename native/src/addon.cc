// SPDX-License-Identifier: Apache-2.0
// Module init: the classes, the module-level functions and the ABI layouts.
#include <napi.h>
#include <bpf/libbpf.h>

#include "abi.h"
#include "cgroup.h"
#include "errors.h"
#include "handles.h"
#include "listen.h"
#include "logger.h"

namespace weft {

AddonData& Data(Napi::Env env) { return *env.GetInstanceData<AddonData>(); }

namespace {

Napi::Value NumPossibleCpus(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Napi::Number::New(env, Check(env, libbpf_num_possible_cpus(), "libbpf_num_possible_cpus"));
}

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  auto* data = new AddonData();
  env.SetInstanceData(data);  // deleted by node-addon-api when the environment goes away
  napi_env raw = env;
  env.AddCleanupHook([raw]() { ForgetLogger(raw); });

  Napi::Function object = BpfObject::Define(env);
  Napi::Function program = BpfProgram::Define(env);
  Napi::Function link = BpfLink::Define(env);
  Napi::Function map = BpfMap::Define(env);
  data->object = Napi::Persistent(object);
  data->program = Napi::Persistent(program);
  data->link = Napi::Persistent(link);
  data->map = Napi::Persistent(map);
  exports.Set("BpfObject", object);
  exports.Set("BpfProgram", program);
  exports.Set("BpfLink", link);
  exports.Set("BpfMap", map);

  exports.Set("setLogger", Napi::Function::New<SetLogger>(env, "setLogger"));
  exports.Set("numPossibleCpus", Napi::Function::New<NumPossibleCpus>(env, "numPossibleCpus"));
  exports.Set("cgroupId", Napi::Function::New<CgroupId>(env, "cgroupId"));
  exports.Set("queryCgroup", Napi::Function::New<QueryCgroup>(env, "queryCgroup"));
  exports.Set("listenTcp", Napi::Function::New<ListenTcp>(env, "listenTcp"));
  exports.Set("closeFd", Napi::Function::New<CloseFd>(env, "closeFd"));
  exports.Set("BPF_ANY", Napi::Number::New(env, BPF_ANY));
  exports.Set("BPF_NOEXIST", Napi::Number::New(env, BPF_NOEXIST));
  exports.Set("BPF_EXIST", Napi::Number::New(env, BPF_EXIST));

  ExportAbi(env, exports);
  return exports;
}

}  // namespace weft

// NODE_API_MODULE wants an unqualified name.
static Napi::Object InitWeftNative(Napi::Env env, Napi::Object exports) {
  return weft::Init(env, exports);
}

NODE_API_MODULE(weft_native, InitWeftNative)
