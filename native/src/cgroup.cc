// SPDX-License-Identifier: Apache-2.0
#include "cgroup.h"

#include <bpf/bpf.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/vfs.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "attach_type.h"
#include "errors.h"
#include "fd.h"

namespace weft {

Napi::Value CgroupId(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = StringArg(info, 0, "cgroupPath");
  // Other filesystems also have 8-byte handles (ext4): only cgroup2's is the cgroup id.
  struct statfs fs;
  if (statfs(path.c_str(), &fs) < 0)
    throw NativeError(env, "statfs", errno, path + ": " + strerror(errno));
  if (fs.f_type != CGROUP2_SUPER_MAGIC)
    throw NativeError(env, "statfs", EINVAL, path + " is not on cgroup2");
  // On cgroup2 the file handle of a directory is its 64-bit cgroup id, the value
  // bpf_get_current_cgroup_id() returns in the kernel.
  alignas(file_handle) unsigned char storage[sizeof(file_handle) + sizeof(uint64_t)];
  auto* handle = reinterpret_cast<file_handle*>(storage);
  handle->handle_bytes = sizeof(uint64_t);
  int mount_id = 0;
  if (name_to_handle_at(AT_FDCWD, path.c_str(), handle, &mount_id, 0) < 0)
    throw NativeError(env, "name_to_handle_at", errno, path + ": " + strerror(errno));
  if (handle->handle_bytes != sizeof(uint64_t))
    throw NativeError(env, "name_to_handle_at", EINVAL, path + " is not on cgroup2");
  uint64_t id;
  memcpy(&id, handle->f_handle, sizeof(id));
  return Napi::BigInt::New(env, id);
}

Napi::Value QueryCgroup(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = StringArg(info, 0, "cgroupPath");
  bpf_attach_type type = AttachTypeArg(info, 1);
  UniqueFd cgroup = OpenDir(env, path, "open");
  std::vector<uint32_t> ids(64);
  uint32_t count;
  for (;;) {
    count = ids.size();
    uint32_t attach_flags = 0;
    int ret = bpf_prog_query(cgroup.get(), type, 0, &attach_flags, ids.data(), &count);
    if (ret == -ENOSPC) {  // count now holds how many there are
      ids.resize(count * 2);
      continue;
    }
    Check(env, ret, "bpf_prog_query");
    break;
  }
  Napi::Array out = Napi::Array::New(env, count);
  for (uint32_t i = 0; i < count; i++) out.Set(i, Napi::Number::New(env, ids[i]));
  Napi::Object result = Napi::Object::New(env);
  result.Set("progIds", out);
  return result;
}

}  // namespace weft
