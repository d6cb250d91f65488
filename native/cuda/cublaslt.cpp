#include "cublaslt.h"

#include <dlfcn.h>
#include <glob.h>
#include <sys/stat.h>

#include <cstdlib>
#include <type_traits>

namespace vlatext {
namespace lt {

namespace {

std::string env_or_empty(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

bool is_dir(const std::string& p) {
  struct stat s;
  return stat(p.c_str(), &s) == 0 && S_ISDIR(s.st_mode);
}

// Existing paths matching a glob pattern, sorted (glob's order), newest toolkit last: the
// caller reverses where it wants the highest version first.
std::vector<std::string> expand(const std::string& pattern) {
  std::vector<std::string> out;
  glob_t g{};
  if (glob(pattern.c_str(), 0, nullptr, &g) == 0) {
    for (size_t i = 0; i < g.gl_pathc; i++) out.emplace_back(g.gl_pathv[i]);
  }
  globfree(&g);
  return out;
}

void add_unique(std::vector<std::string>* list, const std::string& p) {
  for (const auto& q : *list)
    if (q == p) return;
  list->push_back(p);
}

// Both versions of the library in one folder, .so.13 first, when they exist.
void add_dir(std::vector<std::string>* list, const std::string& dir) {
  for (const char* so : {"libcublasLt.so.13", "libcublasLt.so.12"}) {
    const std::string p = dir + "/" + so;
    struct stat s;
    if (stat(p.c_str(), &s) == 0) add_unique(list, p);
  }
}

}  // namespace

SearchEnv SearchEnv::from_process() {
  SearchEnv e;
  e.explicit_path = env_or_empty("VLATEXT_CUBLASLT");
  e.cuda_home = env_or_empty("CUDA_HOME");
  e.cuda_path = env_or_empty("CUDA_PATH");
  e.virtual_env = env_or_empty("VIRTUAL_ENV");
  e.conda_prefix = env_or_empty("CONDA_PREFIX");
  e.home = env_or_empty("HOME");
  return e;
}

std::vector<std::string> candidates(const SearchEnv& env) {
  std::vector<std::string> list;
  if (!env.explicit_path.empty()) {
    // a folder is searched for both versions; a file is tried as given (even when missing, so
    // the error says that the named file does not exist)
    if (is_dir(env.explicit_path)) add_dir(&list, env.explicit_path);
    else add_unique(&list, env.explicit_path);
  }
  add_unique(&list, "libcublasLt.so.13");
  add_unique(&list, "libcublasLt.so.12");
  for (const std::string& root : {env.cuda_home, env.cuda_path}) {
    if (root.empty()) continue;
    add_dir(&list, root + "/lib64");
    add_dir(&list, root + "/lib");
  }
  add_dir(&list, "/usr/local/cuda/lib64");
  for (const char* pat : {"/usr/local/cuda-13*/lib64", "/usr/local/cuda-12*/lib64"}) {
    auto dirs = expand(pat);
    for (auto it = dirs.rbegin(); it != dirs.rend(); ++it) add_dir(&list, *it);
  }
  // NVIDIA's wheels: nvidia-cublas (CUDA 13) puts it in nvidia/cu13/lib, nvidia-cublas-cu12 in nvidia/cublas/lib
  std::vector<std::string> prefixes;
  if (!env.virtual_env.empty()) prefixes.push_back(env.virtual_env);
  if (!env.conda_prefix.empty()) prefixes.push_back(env.conda_prefix);
  if (!env.home.empty()) prefixes.push_back(env.home + "/.local");
  prefixes.push_back("/usr/local");
  prefixes.push_back("/usr");
  for (const auto& p : expand("/opt/*/.venv")) prefixes.push_back(p);
  for (const auto& prefix : prefixes) {
    for (const char* sub : {"/lib/python3*/site-packages/nvidia/cu13/lib", "/lib/python3*/dist-packages/nvidia/cu13/lib", "/lib/python3*/site-packages/nvidia/cublas/lib",
                            "/lib/python3*/dist-packages/nvidia/cublas/lib"}) {
      for (const auto& dir : expand(prefix + sub)) add_dir(&list, dir);
    }
  }
  if (!env.conda_prefix.empty()) add_dir(&list, env.conda_prefix + "/lib");
  return list;
}

Status load(const std::vector<std::string>& cands, Api* api, std::string* error) {
  *api = Api{};
  std::string tried;
  for (const std::string& path : cands) {
    void* lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
      const char* why = dlerror();
      tried += "\n  " + path + ": " + (why ? why : "cannot be opened");
      continue;
    }
    Api a;
    a.lib = lib;
    a.path = path;
    const char* missing = nullptr;
    auto sym = [&](auto* fn, const char* name) {
      *fn = reinterpret_cast<std::remove_pointer_t<decltype(fn)>>(dlsym(lib, name));
      if (!*fn && !missing) missing = name;
    };
    sym(&a.GetVersion, "cublasLtGetVersion");
    sym(&a.Create, "cublasLtCreate");
    sym(&a.Destroy, "cublasLtDestroy");
    sym(&a.MatmulDescCreate, "cublasLtMatmulDescCreate");
    sym(&a.MatmulDescDestroy, "cublasLtMatmulDescDestroy");
    sym(&a.MatmulDescSetAttribute, "cublasLtMatmulDescSetAttribute");
    sym(&a.MatrixLayoutCreate, "cublasLtMatrixLayoutCreate");
    sym(&a.MatrixLayoutDestroy, "cublasLtMatrixLayoutDestroy");
    sym(&a.MatmulPreferenceCreate, "cublasLtMatmulPreferenceCreate");
    sym(&a.MatmulPreferenceDestroy, "cublasLtMatmulPreferenceDestroy");
    sym(&a.MatmulPreferenceSetAttribute, "cublasLtMatmulPreferenceSetAttribute");
    sym(&a.MatmulAlgoGetHeuristic, "cublasLtMatmulAlgoGetHeuristic");
    sym(&a.Matmul, "cublasLtMatmul");
    if (missing) {
      tried += "\n  " + path + ": opened, but it has no " + missing + " (not cuBLASLt?)";
      dlclose(lib);
      continue;
    }
    a.version = a.GetVersion();
    if (a.version < 110400) {
      tried += "\n  " + path + ": version " + std::to_string(a.version) + " is older than 11.4";
      dlclose(lib);
      continue;
    }
    *api = a;
    return Status::Ok;
  }
  *error =
      "cuBLASLt (libcublasLt.so.13 or .so.12), which the CUDA backend uses for large matrix products, could not be loaded. Tried:" + tried +
      "\nInstall it with the CUDA toolkit (https://developer.nvidia.com/cuda-downloads) or from NVIDIA's Python wheels "
      "(`pip install nvidia-cublas` for CUDA 13, `pip install nvidia-cublas-cu12` for CUDA 12; PyTorch's CUDA builds bring one), "
      "or point VLATEXT_CUBLASLT at the file or its folder.";
  return Status::NoDevice;
}

void unload(Api* api) {
  if (api->lib) dlclose(api->lib);
  *api = Api{};
}

std::string status_text(int s) {
  const char* name = "CUBLAS_STATUS_UNKNOWN";
  switch (s) {
    case 0: name = "CUBLAS_STATUS_SUCCESS"; break;
    case 1: name = "CUBLAS_STATUS_NOT_INITIALIZED"; break;
    case 3: name = "CUBLAS_STATUS_ALLOC_FAILED"; break;
    case 7: name = "CUBLAS_STATUS_INVALID_VALUE"; break;
    case 8: name = "CUBLAS_STATUS_ARCH_MISMATCH"; break;
    case 11: name = "CUBLAS_STATUS_MAPPING_ERROR"; break;
    case 13: name = "CUBLAS_STATUS_EXECUTION_FAILED"; break;
    case 14: name = "CUBLAS_STATUS_INTERNAL_ERROR"; break;
    case 15: name = "CUBLAS_STATUS_NOT_SUPPORTED"; break;
    case 16: name = "CUBLAS_STATUS_LICENSE_ERROR"; break;
    default: break;
  }
  return std::string(name) + " (" + std::to_string(s) + ")";
}

}  // namespace lt
}  // namespace vlatext
