// SPDX-License-Identifier: Apache-2.0
#include "errors.h"

#include <cerrno>
#include <cstring>

namespace weft {

namespace {

// Kernel-internal codes that leak out of the bpf() syscall; libc's strerror does not
// know them, so they get their own names and texts.
constexpr int kENOTSUPP = 524;

struct ErrnoEntry {
  int err;
  const char* name;
};

// The errnos BPF calls actually return; everything else is reported as E<num>.
constexpr ErrnoEntry kErrnoNames[] = {
    {EPERM, "EPERM"},     {ENOENT, "ENOENT"},         {ESRCH, "ESRCH"},
    {EINTR, "EINTR"},     {EIO, "EIO"},               {ENXIO, "ENXIO"},
    {E2BIG, "E2BIG"},     {ENOEXEC, "ENOEXEC"},       {EBADF, "EBADF"},
    {EAGAIN, "EAGAIN"},   {ENOMEM, "ENOMEM"},         {EACCES, "EACCES"},
    {EFAULT, "EFAULT"},   {EBUSY, "EBUSY"},           {EEXIST, "EEXIST"},
    {EXDEV, "EXDEV"},     {ENODEV, "ENODEV"},         {ENOTDIR, "ENOTDIR"},
    {EISDIR, "EISDIR"},   {EINVAL, "EINVAL"},         {ENFILE, "ENFILE"},
    {EMFILE, "EMFILE"},   {ENOSPC, "ENOSPC"},         {EROFS, "EROFS"},
    {ERANGE, "ERANGE"},   {ENAMETOOLONG, "ENAMETOOLONG"}, {ENOSYS, "ENOSYS"},
    {ELOOP, "ELOOP"},     {ENOTEMPTY, "ENOTEMPTY"},   {ENODATA, "ENODATA"},
    {EPROTO, "EPROTO"},   {EOVERFLOW, "EOVERFLOW"},   {EBADMSG, "EBADMSG"},
    {ENOTSOCK, "ENOTSOCK"}, {EOPNOTSUPP, "EOPNOTSUPP"}, {EAFNOSUPPORT, "EAFNOSUPPORT"},
    {EADDRINUSE, "EADDRINUSE"}, {ECONNREFUSED, "ECONNREFUSED"},
    {kENOTSUPP, "ENOTSUPP"},
};

std::string ErrnoText(int err) {
  if (err == kENOTSUPP) return "Operation not supported by this map or program type";
  char buf[128];
  // GNU strerror_r returns the text (possibly not in buf).
  return std::string(strerror_r(err, buf, sizeof(buf)));
}

}  // namespace

std::string ErrnoName(int err) {
  for (const auto& e : kErrnoNames)
    if (e.err == err) return e.name;
  return "E" + std::to_string(err);
}

Napi::Error NativeError(Napi::Env env, const std::string& op, int err,
                        const std::string& detail) {
  if (err < 0) err = -err;
  std::string message = op + ": " + (detail.empty() ? ErrnoText(err) : detail);
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("code", Napi::String::New(env, ErrnoName(err)));
  error.Set("errno", Napi::Number::New(env, err));
  error.Set("op", Napi::String::New(env, op));
  return error;
}

int Check(Napi::Env env, int ret, const char* op) {
  if (ret >= 0) return ret;
  // -1 from a raw syscall means "look at errno"; libbpf returns -errno itself.
  int err = (ret == -1 && errno != 0) ? errno : -ret;
  throw NativeError(env, op, err);
}

std::string StringArg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (i >= info.Length() || !info[i].IsString())
    throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a string");
  return info[i].As<Napi::String>().Utf8Value();
}

Napi::Buffer<uint8_t> BufferArg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (i >= info.Length() || !info[i].IsBuffer())
    throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a Buffer");
  return info[i].As<Napi::Buffer<uint8_t>>();
}

void ExpectSize(Napi::Env env, const Napi::Buffer<uint8_t>& buf, const char* what,
                size_t size) {
  if (buf.Length() != size)
    throw Napi::RangeError::New(env, std::string(what) + " must be " + std::to_string(size) +
                                         " bytes, got " + std::to_string(buf.Length()));
}

Napi::Buffer<uint8_t> SizedBufferArg(const Napi::CallbackInfo& info, size_t i,
                                     const char* what, size_t size) {
  Napi::Buffer<uint8_t> buf = BufferArg(info, i, what);
  ExpectSize(info.Env(), buf, what, size);
  return buf;
}

Napi::Error ClosedError(Napi::Env env, const char* op) {
  return NativeError(env, op, EBADF, "handle is closed");
}

}  // namespace weft
