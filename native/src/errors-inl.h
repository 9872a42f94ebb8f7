// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <bpf/libbpf.h>

namespace weft {

template <typename T>
T* CheckPtr(Napi::Env env, T* ptr, const char* op) {
  long err = libbpf_get_error(ptr);
  if (ptr == nullptr || err != 0) throw NativeError(env, op, err ? static_cast<int>(-err) : EINVAL);
  return ptr;
}

}  // namespace weft
