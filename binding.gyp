{
  "targets": [
    {
      "target_name": "cxlog_native",
      "sources": ["src/native/cxlog_native.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"],
      "cflags_cc": ["-std=c++17", "-O2", "-fno-exceptions", "-Wall", "-Wextra"],
      "cflags_cc!": ["-fno-rtti"],
      "libraries": ["-lrt"]
    }
  ]
}
