// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <napi.h>
#include <linux/bpf.h>

namespace weft {

// Reads an attach type given by its libbpf name ('cgroup_inet4_connect',
// 'sk_msg_verdict', ...) — the names libbpf_bpf_attach_type_str prints and bpftool
// shows. TypeError for anything else.
bpf_attach_type AttachTypeArg(const Napi::CallbackInfo& info, size_t i);

}  // namespace weft
