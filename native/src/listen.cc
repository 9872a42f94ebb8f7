// SPDX-License-Identifier: Apache-2.0
#include "listen.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "errors.h"

namespace weft {

// listenTcp(host, port, backlog, reusePort) -> fd. IPv4 or IPv6 literal; SO_REUSEADDR so
// a restarted supervisor can bind while old connections sit in TIME_WAIT; reusePort adds
// SO_REUSEPORT, so a second agent (a DaemonSet rollout's new pod) can listen beside the
// old one and the kernel spreads connections over both until the old one closes. The fd
// is not close-on-exec's business here: Node passes it to children through their stdio
// table.
Napi::Value ListenTcp(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string host = StringArg(info, 0, "host");
  if (!info[1].IsNumber()) throw Napi::TypeError::New(env, "port must be a number");
  int port = info[1].As<Napi::Number>().Int32Value();
  int backlog = info[2].IsNumber() ? info[2].As<Napi::Number>().Int32Value() : 4096;
  bool reusePort = info.Length() > 3 && info[3].IsBoolean() && info[3].As<Napi::Boolean>().Value();
  if (port < 0 || port > 65535) throw Napi::RangeError::New(env, "port must be 0..65535");

  sockaddr_storage ss{};
  socklen_t len;
  int family;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    family = AF_INET; v4->sin_family = AF_INET; v4->sin_port = htons(port); len = sizeof(*v4);
  } else if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    family = AF_INET6; v6->sin6_family = AF_INET6; v6->sin6_port = htons(port); len = sizeof(*v6);
  } else {
    throw Napi::TypeError::New(env, "host must be an IPv4 or IPv6 address, got '" + host + "'");
  }
  int fd = socket(family, SOCK_STREAM, 0);
  if (fd < 0) throw NativeError(env, "socket", errno, strerror(errno));
  int one = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
      (reusePort && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) ||
      bind(fd, reinterpret_cast<sockaddr*>(&ss), len) < 0 || listen(fd, backlog) < 0) {
    int err = errno;
    close(fd);
    throw NativeError(env, "bind/listen", err, host + ":" + std::to_string(port) + ": " + strerror(err));
  }
  return Napi::Number::New(env, fd);
}

Napi::Value CloseFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber()) throw Napi::TypeError::New(env, "fd must be a number");
  if (close(info[0].As<Napi::Number>().Int32Value()) < 0) throw NativeError(env, "close", errno, strerror(errno));
  return env.Undefined();
}

}  // namespace weft
