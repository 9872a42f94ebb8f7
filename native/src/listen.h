// SPDX-License-Identifier: Apache-2.0
// Listening TCP sockets as plain file descriptors, for the agent's supervisor: it holds
// them open without accepting (a Node net.Server would accept), so the kernel queues new
// connections while an agent worker restarts, and hands them to each worker it spawns.
#pragma once
#include <napi.h>

namespace weft {
Napi::Value ListenTcp(const Napi::CallbackInfo& info);
Napi::Value CloseFd(const Napi::CallbackInfo& info);
}  // namespace weft
