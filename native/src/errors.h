// SPDX-License-Identifier: Apache-2.0
// Turning libbpf/syscall failures and bad arguments into the JS errors promised by
// index.d.ts: NativeError {code, errno, op}, TypeError, RangeError.
#pragma once

#include <napi.h>

#include <cstddef>
#include <string>

namespace weft {

// errno name ('ENOSPC') for a positive errno; 'E<num>' when the table has no name.
std::string ErrnoName(int err);

// A JS Error with code/errno/op and the message "<op>: <strerror>" (or `detail`).
Napi::Error NativeError(Napi::Env env, const std::string& op, int err,
                        const std::string& detail = std::string());

// libbpf 1.x int APIs return -errno; syscalls return -1 and set errno. Throws on failure,
// otherwise returns `ret` unchanged.
int Check(Napi::Env env, int ret, const char* op);

// Pointer-returning libbpf APIs give NULL and set errno (libbpf_get_error reads it).
template <typename T>
T* CheckPtr(Napi::Env env, T* ptr, const char* op);

// Argument readers: TypeError when the JS type is wrong.
std::string StringArg(const Napi::CallbackInfo& info, size_t i, const char* what);
Napi::Buffer<uint8_t> BufferArg(const Napi::CallbackInfo& info, size_t i, const char* what);
// Same, plus RangeError unless the Buffer is exactly `size` bytes.
Napi::Buffer<uint8_t> SizedBufferArg(const Napi::CallbackInfo& info, size_t i,
                                     const char* what, size_t size);
void ExpectSize(Napi::Env env, const Napi::Buffer<uint8_t>& buf, const char* what,
                size_t size);

// Thrown by every method of a closed handle.
Napi::Error ClosedError(Napi::Env env, const char* op);

}  // namespace weft

#include "errors-inl.h"
