#include "cpu.h"

#include <cstring>
#include <initializer_list>

#if defined(__linux__) && (defined(__x86_64__) || defined(_M_X64))
#include <sys/syscall.h>
#include <unistd.h>
#define VLATEXT_LINUX_X86 1
#endif

namespace vlatext {

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Portable: return "portable";
    case Isa::Avx2: return "avx2";
    case Isa::Avx512: return "avx512";
    case Isa::Avx512Bf16: return "avx512bf16";
    case Isa::Amx: return "amx";
  }
  return "portable";
}

bool parse_isa(const char* name, Isa* out) {
  for (Isa i : {Isa::Portable, Isa::Avx2, Isa::Avx512, Isa::Avx512Bf16, Isa::Amx})
    if (std::strcmp(name, isa_name(i)) == 0) {
      *out = i;
      return true;
    }
  return false;
}

namespace {

// Linux keeps AMX's 8 KB tile state off until a process asks for it (ARCH_REQ_XCOMP_PERM).
bool amx_permitted() {
#ifdef VLATEXT_LINUX_X86
  constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
#else
  return false;
#endif
}

Isa detect() {
#if defined(__x86_64__) || defined(_M_X64)
  __builtin_cpu_init();
  if (!(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))) return Isa::Portable;
  if (!(__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))) return Isa::Avx2;
  if (!__builtin_cpu_supports("avx512bf16")) return Isa::Avx512;
  // gcc 12 knows "amx-tile"/"amx-bf16" for target attributes but not for __builtin_cpu_supports:
  // CPUID leaf 7, subleaf 0, EDX bits 22 (AMX-BF16) and 24 (AMX-TILE)
  unsigned a, b, c, d;
  __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(7), "c"(0));
  const bool amx = (d >> 22 & 1u) && (d >> 24 & 1u);
  if (!amx || !amx_permitted()) return Isa::Avx512Bf16;
  return Isa::Amx;
#else
  return Isa::Portable;
#endif
}

}  // namespace

Isa cpu_best_isa() {
  static const Isa best = detect();  // a property of the machine, computed once
  return best;
}

}  // namespace vlatext
