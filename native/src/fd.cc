// SPDX-License-Identifier: Apache-2.0
#include "fd.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "errors.h"

namespace weft {

UniqueFd::~UniqueFd() {
  if (fd_ >= 0) close(fd_);
}

int UniqueFd::release() {
  int fd = fd_;
  fd_ = -1;
  return fd;
}

UniqueFd OpenDir(Napi::Env env, const std::string& path, const char* op) {
  int fd = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw NativeError(env, op, errno, path + ": " + strerror(errno));
  return UniqueFd(fd);
}

void ExpectFdKind(Napi::Env env, int fd, const char* kind, const std::string& path,
                  const char* op) {
  char link[64];
  char target[128];
  snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, target, sizeof(target) - 1);
  if (n < 0) throw NativeError(env, op, errno);
  target[n] = '\0';
  if (std::string(target) != std::string("anon_inode:") + kind)
    throw NativeError(env, op, EINVAL, path + " is " + target + ", not " + kind);
}

}  // namespace weft
