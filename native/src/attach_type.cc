// SPDX-License-Identifier: Apache-2.0
#include "attach_type.h"

#include <bpf/libbpf.h>

#include <string>

#include "errors.h"

namespace weft {

bpf_attach_type AttachTypeArg(const Napi::CallbackInfo& info, size_t i) {
  std::string name = StringArg(info, i, "attachType");
  // libbpf_attach_type_by_name wants section names ('cgroup/connect4'); the contract uses
  // the enum names, which libbpf only maps the other way, so invert that mapping.
  for (int t = 0; t < __MAX_BPF_ATTACH_TYPE; t++) {
    const char* s = libbpf_bpf_attach_type_str(static_cast<bpf_attach_type>(t));
    if (s != nullptr && name == s) return static_cast<bpf_attach_type>(t);
  }
  throw Napi::TypeError::New(info.Env(), "unknown attach type '" + name + "'");
}

}  // namespace weft
