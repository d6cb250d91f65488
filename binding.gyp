# node-gyp build of the vlatext addon (`npm install` runs it through scripts/build-addon.mjs,
# offline, with Node's headers from nodedir). CMakeLists.txt builds the same sources with
# cmake-js (and CUDA); both read their source lists from native/sources.txt.
#  - C++17 with C++ exceptions ON in the compiler (the standard library may throw
#    std::bad_alloc / std::system_error; native code catches them at its boundary, e.g.
#    ThreadPool::create) and NAPI_DISABLE_CPP_EXCEPTIONS for node-addon-api: errors reach
#    JavaScript through ThrowAsJavaScriptException, never as C++ exceptions. CMake: the same.
#  - Baseline x86-64 code: AVX2/FMA kernels carry __attribute__((target("avx2,fma"))) and
#    are chosen at run time (__builtin_cpu_supports), so no -march flag here.
{
  "variables": {
    "engine_sources": ["<!@(node scripts/native-sources.mjs engine)"],
    "napi_sources": ["<!@(node scripts/native-sources.mjs napi)"]
  },
  "target_defaults": {
    "cflags!": ["-fno-exceptions"],
    "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
    "cflags_cc": ["-std=c++17", "-O3", "-fno-math-errno", "-Wall", "-Wextra", "-Wno-unused-parameter"],
    "xcode_settings": { "CLANG_CXX_LANGUAGE_STANDARD": "c++17", "GCC_ENABLE_CPP_EXCEPTIONS": "YES", "OTHER_CPLUSPLUSFLAGS": ["-O3"] }
  },
  "targets": [
    {
      "target_name": "vlatext",
      "sources": ["<@(engine_sources)", "<@(napi_sources)"],
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
