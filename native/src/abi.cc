// SPDX-License-Identifier: Apache-2.0
// One table of the ABI structs: adding a struct to weft_abi.h means adding one
// WEFT_ABI_STRUCT line below (the struct name and its fields, padding included, so the
// test also catches a codec that forgot a pad).
#include "abi.h"

#include <cstddef>

#include "weft_abi.h"

namespace weft {
namespace {

// WEFT_FOR_EACH(M, S, a, b, ...) expands to M(S, a) M(S, b) ... (up to 12 fields).
#define WEFT_FE_1(M, S, x) M(S, x)
#define WEFT_FE_2(M, S, x, ...) M(S, x) WEFT_FE_1(M, S, __VA_ARGS__)
#define WEFT_FE_3(M, S, x, ...) M(S, x) WEFT_FE_2(M, S, __VA_ARGS__)
#define WEFT_FE_4(M, S, x, ...) M(S, x) WEFT_FE_3(M, S, __VA_ARGS__)
#define WEFT_FE_5(M, S, x, ...) M(S, x) WEFT_FE_4(M, S, __VA_ARGS__)
#define WEFT_FE_6(M, S, x, ...) M(S, x) WEFT_FE_5(M, S, __VA_ARGS__)
#define WEFT_FE_7(M, S, x, ...) M(S, x) WEFT_FE_6(M, S, __VA_ARGS__)
#define WEFT_FE_8(M, S, x, ...) M(S, x) WEFT_FE_7(M, S, __VA_ARGS__)
#define WEFT_FE_9(M, S, x, ...) M(S, x) WEFT_FE_8(M, S, __VA_ARGS__)
#define WEFT_FE_10(M, S, x, ...) M(S, x) WEFT_FE_9(M, S, __VA_ARGS__)
#define WEFT_FE_11(M, S, x, ...) M(S, x) WEFT_FE_10(M, S, __VA_ARGS__)
#define WEFT_FE_12(M, S, x, ...) M(S, x) WEFT_FE_11(M, S, __VA_ARGS__)
#define WEFT_FE_PICK(_1, _2, _3, _4, _5, _6, _7, _8, _9, _10, _11, _12, NAME, ...) NAME
#define WEFT_FOR_EACH(M, S, ...)                                                         \
  WEFT_FE_PICK(__VA_ARGS__, WEFT_FE_12, WEFT_FE_11, WEFT_FE_10, WEFT_FE_9, WEFT_FE_8, \
               WEFT_FE_7, WEFT_FE_6, WEFT_FE_5, WEFT_FE_4, WEFT_FE_3, WEFT_FE_2,      \
               WEFT_FE_1)(M, S, __VA_ARGS__)

#define WEFT_ABI_FIELD(S, f) \
  fields.Set(#f, Field(env, offsetof(struct S, f), sizeof(static_cast<struct S*>(nullptr)->f)));
#define WEFT_ABI_STRUCT(S, ...)                          \
  {                                                      \
    Napi::Object fields = Napi::Object::New(env);        \
    WEFT_FOR_EACH(WEFT_ABI_FIELD, S, __VA_ARGS__)        \
    abi.Set(#S, Layout(env, sizeof(struct S), fields));  \
  }

Napi::Object Field(Napi::Env env, size_t offset, size_t size) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("offset", Napi::Number::New(env, static_cast<double>(offset)));
  o.Set("size", Napi::Number::New(env, static_cast<double>(size)));
  return o;
}

Napi::Object Layout(Napi::Env env, size_t size, Napi::Object fields) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("size", Napi::Number::New(env, static_cast<double>(size)));
  o.Set("fields", fields);
  return o;
}

}  // namespace

void ExportAbi(Napi::Env env, Napi::Object exports) {
  Napi::Object abi = Napi::Object::New(env);
  WEFT_ABI_STRUCT(weft_endpoint, addr, port, family, pad)
  WEFT_ABI_STRUCT(weft_addr, addr, family, pad)
  WEFT_ABI_STRUCT(weft_svc_key, addr, port, proto, family)
  WEFT_ABI_STRUCT(weft_svc, id, rev, slot_count, backend_count, flags)
  WEFT_ABI_STRUCT(weft_rev_key, svc_id, rev, index)
  WEFT_ABI_STRUCT(weft_backend, addr, port, family, pad, weight)
  WEFT_ABI_STRUCT(weft_origin, addr, port, family, flags, pad, cgroup_id)
  WEFT_ABI_STRUCT(weft_revnat_key, cookie, addr, port, family, pad, pad2)
  WEFT_ABI_STRUCT(weft_sock_key, local_addr, remote_addr, local_port, remote_port, family, pad)
  WEFT_ABI_STRUCT(weft_accel, avg_bytes, flags, avg_msg)
  WEFT_ABI_STRUCT(weft_sock_bytes, bytes, msgs, flags)
  WEFT_ABI_STRUCT(weft_counters, connect_balanced, connect_redirected, no_backend,
                  sockmap_inserts, sockmap_skipped, msg_redirected, msg_redirected_bytes,
                  msg_miss, origin_inserts, fail_open, fail_closed, strict_drops)
  WEFT_ABI_STRUCT(weft_node_cfg, fail_mode, mtls_mode)
  WEFT_ABI_STRUCT(weft_skip_key, cgroup_id)
  WEFT_ABI_STRUCT(weft_skip, flags)
  WEFT_ABI_STRUCT(weft_skip_state, entries)
  WEFT_ABI_STRUCT(weft_direct_key, addr, port, family, pad)
  WEFT_ABI_STRUCT(weft_direct, flags)
  WEFT_ABI_STRUCT(weft_dns_cfg, addr, port, pad)
  exports.Set("abi", abi);
}

}  // namespace weft
