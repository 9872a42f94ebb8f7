// SPDX-License-Identifier: Apache-2.0
// Module-level cgroup functions: cgroupId(path), queryCgroup(path, attachType).
#pragma once

#include <napi.h>

namespace weft {

Napi::Value CgroupId(const Napi::CallbackInfo& info);
Napi::Value QueryCgroup(const Napi::CallbackInfo& info);

}  // namespace weft
