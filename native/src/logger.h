// SPDX-License-Identifier: Apache-2.0
// libbpf's own log (libbpf_set_print) routed to a JS function.
//
// libbpf prints from whatever thread calls it. On the main thread lines go straight to
// the JS logger; BpfObject.load() runs bpf_object__load on a worker thread, so there
// the lines are collected (LogCapture) and delivered by the worker's completion
// callback on the main thread, before the promise settles: a test or caller that sees
// the rejection has already seen the verifier log.
#pragma once

#include <napi.h>

#include <string>
#include <utility>
#include <vector>

namespace weft {

using LogLines = std::vector<std::pair<int, std::string>>;  // libbpf level, text

// While alive on a thread, libbpf lines printed on that thread go into `lines`.
class LogCapture {
 public:
  explicit LogCapture(LogLines* lines);
  ~LogCapture();
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;

 private:
  LogLines* previous_;
};

// Hands captured lines to the JS logger (main thread only).
void DeliverLog(Napi::Env env, const LogLines& lines);

Napi::Value SetLogger(const Napi::CallbackInfo& info);

// Drops the logger if it belongs to `env` (environment teardown, e.g. a worker thread
// exiting): libbpf must not call into a dead environment.
void ForgetLogger(napi_env env);

}  // namespace weft
