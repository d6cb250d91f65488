{
  "variables": {
    "engine_sources": [
      "native/core/threadpool.cpp",
      "native/kernels/reduce.cpp",
      "native/kernels/matmul.cpp",
      "native/kernels/norm.cpp",
      "native/kernels/rope.cpp",
      "native/kernels/attention.cpp",
      "native/kernels/elementwise.cpp",
      "native/kernels/loss.cpp",
      "native/kernels/adamw.cpp",
      "native/model/decoder.cpp",
      "native/io/safetensors.cpp",
      "native/decode/automaton.cpp",
      "native/decode/generate.cpp"
    ]
  },
  "target_defaults": {
    "cflags!": ["-fno-exceptions"],
    "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
    "cflags_cc": ["-std=c++17", "-O3", "-Wall", "-Wextra", "-Wno-unused-parameter"],
    "xcode_settings": { "CLANG_CXX_LANGUAGE_STANDARD": "c++17", "OTHER_CPLUSPLUSFLAGS": ["-O3"] }
  },
  "targets": [
    {
      "target_name": "vlatext",
      "sources": ["<@(engine_sources)", "native/napi/addon.cpp", "native/napi/decoder_napi.cpp"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"]
    },
    {
      "target_name": "vlatext_bench_kernels",
      "type": "executable",
      "sources": ["<@(engine_sources)", "native/tests/bench_kernels.cpp"],
      "libraries": ["-lpthread", "-ldl"]
    },
    {
      "target_name": "vlatext_kernel_tests",
      "type": "executable",
      "sources": ["<@(engine_sources)", "native/tests/test_kernels.cpp"],
      "libraries": ["-lpthread"]
    }
  ]
}
