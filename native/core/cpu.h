// What this CPU can run, decided once at run time (CPUID through the compiler's
// __builtin_cpu_supports; AMX also needs the kernel's permission for its tile state,
// asked for once with arch_prctl). Kernels take an Isa cap chosen by their caller (the
// backend), so a test or a user can force any portable fallback on any machine.
#pragma once

#include <cstdint>

namespace vlatext {

// Instruction-set levels, each including the ones before it on x86-64:
//   Portable     plain C++ (any CPU; the compiler may vectorize for the baseline)
//   Avx2         AVX2 + FMA (8 floats per register)
//   Avx512       AVX-512 F/BW/DQ/VL (16 floats per register)
//   Avx512Bf16   + AVX512_BF16 (vdpbf16ps: bf16 pair products accumulated in f32)
//   Amx          + AMX-TILE/AMX-BF16 (16x16 f32 tiles += 16x32 . 32x16 bf16)
enum class Isa : uint8_t { Portable = 0, Avx2 = 1, Avx512 = 2, Avx512Bf16 = 3, Amx = 4 };

const char* isa_name(Isa isa);
// Parses "portable" | "avx2" | "avx512" | "avx512bf16" | "amx"; false if unknown.
bool parse_isa(const char* name, Isa* out);

// The best level this CPU (and OS) supports.
Isa cpu_best_isa();
// True when this CPU can run `isa`.
inline bool cpu_supports(Isa isa) { return (uint8_t)isa <= (uint8_t)cpu_best_isa(); }
// The level a kernel runs at: the lower of the caller's cap and what the CPU has.
inline Isa effective_isa(Isa cap) { const Isa b = cpu_best_isa(); return (uint8_t)cap < (uint8_t)b ? cap : b; }

}  // namespace vlatext
