// SPDX-License-Identifier: Apache-2.0
// exports.abi: sizeof/offsetof of every struct in bpf/include/weft_abi.h as this C++
// compiler lays them out, so test/bpf/abi.test.ts can check the TypeScript codecs.
#pragma once

#include <napi.h>

namespace weft {

// Sets exports.abi = {StructName: {size, fields: {field: {offset, size}}}}.
void ExportAbi(Napi::Env env, Napi::Object exports);

}  // namespace weft
