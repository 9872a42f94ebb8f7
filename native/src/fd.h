// SPDX-License-Identifier: Apache-2.0
// Small file-descriptor helpers shared by the handles and the cgroup functions.
#pragma once

#include <napi.h>

#include <string>

namespace weft {

// Closes the fd when the scope ends (cgroup directory fds are only needed for the call).
class UniqueFd {
 public:
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd();
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  int get() const { return fd_; }
  int release();

 private:
  int fd_;
};

// open(path, O_RDONLY | O_DIRECTORY), the fd form cgroup attach and query calls take.
UniqueFd OpenDir(Napi::Env env, const std::string& path, const char* op);

// A pinned path can hold any BPF object; reading it as the wrong kind would return
// garbage info, so check /proc/self/fd/<fd> ("anon_inode:bpf-map", "anon_inode:bpf-link").
void ExpectFdKind(Napi::Env env, int fd, const char* kind, const std::string& path,
                  const char* op);

}  // namespace weft
