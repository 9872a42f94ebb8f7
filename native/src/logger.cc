// SPDX-License-Identifier: Apache-2.0
#include "logger.h"

#include <bpf/libbpf.h>

#include <cstdarg>
#include <cstdio>
#include <thread>

namespace weft {

namespace {

thread_local LogLines* t_capture = nullptr;

// The JS logger and the thread it may be called on. One logger per process: libbpf's
// print hook is process-global too.
struct JsLogger {
  Napi::FunctionReference fn;
  std::thread::id thread;
  napi_env env;
};
JsLogger* g_logger = nullptr;

const char* LevelName(int level) {
  switch (level) {
    case LIBBPF_WARN: return "warn";
    case LIBBPF_INFO: return "info";
    default: return "debug";
  }
}

void CallLogger(Napi::Env env, int level, const std::string& text) {
  if (g_logger == nullptr) return;
  try {
    g_logger->fn.Call({Napi::String::New(env, LevelName(level)), Napi::String::New(env, text)});
  } catch (const Napi::Error&) {
    // A throwing logger must not unwind through libbpf's C frames; the line is lost.
  }
}

std::string Format(const char* format, va_list args) {
  va_list copy;
  va_copy(copy, args);
  char small[512];
  int n = vsnprintf(small, sizeof(small), format, copy);
  va_end(copy);
  if (n < 0) return std::string();
  std::string text;
  if (static_cast<size_t>(n) < sizeof(small)) {
    text.assign(small, n);
  } else {
    text.resize(n + 1);
    vsnprintf(&text[0], n + 1, format, args);
    text.resize(n);
  }
  while (!text.empty() && text.back() == '\n') text.pop_back();
  return text;
}

int Print(enum libbpf_print_level level, const char* format, va_list args) {
  std::string text = Format(format, args);
  if (t_capture != nullptr) {
    t_capture->emplace_back(level, std::move(text));
  } else if (g_logger != nullptr && std::this_thread::get_id() == g_logger->thread) {
    CallLogger(g_logger->fn.Env(), level, text);
  }
  // Other threads never call libbpf without a LogCapture (only LoadWorker does), so no
  // line is dropped here in practice.
  return 0;
}

}  // namespace

LogCapture::LogCapture(LogLines* lines) : previous_(t_capture) { t_capture = lines; }
LogCapture::~LogCapture() { t_capture = previous_; }

void DeliverLog(Napi::Env env, const LogLines& lines) {
  for (const auto& line : lines) CallLogger(env, line.first, line.second);
}

void ForgetLogger(napi_env env) {
  if (g_logger == nullptr || g_logger->env != env) return;
  libbpf_set_print(nullptr);
  delete g_logger;
  g_logger = nullptr;
}

Napi::Value SetLogger(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !(info[0].IsFunction() || info[0].IsNull()))
    throw Napi::TypeError::New(env, "setLogger expects a function or null");
  delete g_logger;
  g_logger = nullptr;
  if (info[0].IsNull()) {
    libbpf_set_print(nullptr);
    return env.Undefined();
  }
  g_logger = new JsLogger{Napi::Persistent(info[0].As<Napi::Function>()), std::this_thread::get_id(), env};
  libbpf_set_print(Print);
  return env.Undefined();
}

}  // namespace weft
