{
  "targets": [
    {
      "target_name": "weft_native",
      "sources": [
        "src/addon.cc",
        "src/abi.cc",
        "src/attach_type.cc",
        "src/cgroup.cc",
        "src/errors.cc",
        "src/fd.cc",
        "src/link.cc",
        "src/listen.cc",
        "src/logger.cc",
        "src/map.cc",
        "src/object.cc",
        "src/program.cc"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "../bpf/include"
      ],
      "libraries": ["-lbpf"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-Wall", "-Wextra", "-Wno-missing-field-initializers"]
    }
  ]
}
