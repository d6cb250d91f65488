// The GEMM driver (see gemm.h): path choice, the thread grid, the BLIS loops around the
// micro-kernels, the portable kernel and the scalar oracle. The vectorized kernels live in
// gemm_avx2.cpp, gemm_avx512.cpp (f32 and bf16) and gemm_amx.cpp, GEMVs in gemv.cpp.
#include "gemm.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "gemm_kernels.h"

namespace vlatext {

using namespace gemm_detail;

// ---- the portable kernel: a 4 x 16 tile in plain C++ (the compiler vectorizes the j loop) ----
namespace {

constexpr int kPMR = 4, kPNR = 16;

void pack_b_portable(void* dst, const void* src, DType dt, int64_t sj, int64_t sk, int64_t w, int64_t kc, int64_t kc_pad) {
  pack_b_f32_generic<kPNR>(static_cast<float*>(dst), src, dt, sj, sk, w, kc, kc_pad);
}

AView prep_a_portable(void* buf, const void* src, DType dt, int64_t sam, int64_t sak, int64_t m, int64_t kc, int64_t kc_pad) {
  return prep_a_f32_generic<kPMR>(buf, src, dt, sam, sak, m, kc, kc_pad);
}

int64_t a_elems_f32(int64_t mc_pad, int64_t kc_pad) { return mc_pad * kc_pad; }

// c (4, 16) (+)= sum_k A(i, k) Bp[k * 16 + j]
void micro_portable(int64_t kc, const void* a_, int64_t ars, int64_t aks, int mv, const void* bp_, float* C, int64_t ldc, bool add) {
  const float* a = static_cast<const float*>(a_);
  const float* bp = static_cast<const float*>(bp_);
  int64_t off[kPMR];
  for (int i = 0; i < kPMR; i++) off[i] = (i < mv ? i : 0) * ars;
  float acc[kPMR][kPNR] = {};
  for (int64_t k = 0; k < kc; k++)
    for (int i = 0; i < kPMR; i++) {
      const float x = a[off[i] + k * aks];
      for (int j = 0; j < kPNR; j++) acc[i][j] += x * bp[k * kPNR + j];
    }
  for (int i = 0; i < kPMR; i++)
    for (int j = 0; j < kPNR; j++) C[i * ldc + j] = add ? C[i * ldc + j] + acc[i][j] : acc[i][j];
}

}  // namespace

const Kernel& gemm_detail::kernel_portable() {
  static const Kernel k{"portable", kPMR, kPNR, 1, 256, 128, 1024, 4, false, pack_b_portable, prep_a_portable, a_elems_f32, micro_portable, nullptr, nullptr};
  return k;
}

// ---- path choice ----
namespace {

struct Plan {
  const char* name;
  GemvFn gemv;            // non-null: the GEMV path
  const Kernel* kernel;   // else this micro-kernel
};

Plan plan_for(Isa cap, DType bdt, int64_t M, int64_t N, int64_t sbk) {
  const Isa e = effective_isa(cap);
#if defined(__x86_64__) || defined(_M_X64)
  if (M <= kGemvRows && sbk == 1) {
    if (e >= Isa::Avx512) return {"gemv-avx512", gemv_avx512, nullptr};
    if (e >= Isa::Avx2) return {"gemv-avx2", gemv_avx2, nullptr};
    return {"gemv-portable", gemv_portable, nullptr};
  }
  if (bdt == DType::BF16 && e >= Isa::Avx512Bf16) {
    // one AMX tile is 16 x 16 and a register tile 32 x 32: smaller products stay on vdpbf16ps
    if (e >= Isa::Amx && std::max(M, N) >= 64 && std::min(M, N) >= 32) return {"amx", nullptr, &kernel_amx()};
    return {"avx512bf16", nullptr, &kernel_avx512bf16()};
  }
  if (e >= Isa::Avx512) return {"avx512", nullptr, &kernel_avx512()};
  if (e >= Isa::Avx2) return {"avx2", nullptr, &kernel_avx2()};
#else
  (void)bdt;
  (void)e;
  if (M <= kGemvRows && sbk == 1) return {"gemv-portable", gemv_portable, nullptr};
#endif
  (void)N;
  return {"portable", nullptr, &kernel_portable()};
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

// One product, already oriented: A (f32 or bf16) and B views, C row-major.
struct Problem {
  float* C;
  int64_t ldc;
  const void* A;
  DType adt;
  int64_t sam, sak;
  const void* B;
  DType bdt;
  int64_t sbk, sbn;
  int64_t M, N, K;
  bool accumulate;
};

const char* at(const void* p, DType dt, int64_t i) { return static_cast<const char*>(p) + i * (int64_t)dtype_size(dt); }

// 64-byte-aligned scratch, one per thread and call (not zeroed: every byte read is written first).
struct Scratch {
  std::unique_ptr<char[]> bytes;
  void* get(size_t n) {
    bytes.reset(new char[n + 64]);
    return reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(bytes.get()) + 63) & ~uintptr_t(63));
  }
};

// Most bytes of prepared A a thread keeps across column blocks.
constexpr int64_t kACacheBytes = 8 << 20;

// The BLIS loops over one thread's block of C: rows [m0, m1), columns [n0, n1). Row and
// column starts are multiples of mr and nr (or M and N), so partial tiles sit at M and N only.
void run_block(const Kernel& kr, const Problem& p, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  if (m1 <= m0 || n1 <= n0) return;
  // balanced blocks of the reduction: ceil(K / kc) blocks of about equal depth
  const int64_t kcb = round_up(ceil_div(p.K, ceil_div(p.K, kr.kc)), kr.kgran);
  // column and row blocks of whole tiles (kr.nc and kr.mc rounded up to nr and mr)
  const int64_t ncb = round_up(std::min<int64_t>(kr.nc, n1 - n0), kr.nr);
  const int64_t mcb = round_up(std::min<int64_t>(kr.mc, m1 - m0), kr.mr);
  Scratch sa, sb;
  char* bbuf = static_cast<char*>(sb.get((size_t)(ncb * kcb * kr.elem)));
  // A's blocks are prepared on the first column block and kept for the others when all of this
  // thread's fit kACacheBytes (else each is prepared again per column block)
  const int64_t kblocks = ceil_div(p.K, kcb), mblocks = ceil_div(m1 - m0, mcb);
  const int64_t a_block_bytes = round_up(kr.a_buf_elems(mcb, kcb) * kr.elem, 64);
  const bool keep_a = n1 - n0 > ncb && kblocks * mblocks * a_block_bytes <= kACacheBytes;
  char* abuf = static_cast<char*>(sa.get((size_t)(keep_a ? kblocks * mblocks * a_block_bytes : a_block_bytes)));
  std::vector<AView> views(keep_a ? (size_t)(kblocks * mblocks) : 0);
  const int64_t panel_bytes_per_k = (int64_t)kr.nr * kr.elem;
  alignas(64) float tmp[32 * 64];
  if (kr.thread_begin) kr.thread_begin();
  for (int64_t jc = n0; jc < n1; jc += ncb) {
    const int64_t nc = std::min(ncb, n1 - jc);
    const int64_t panels = ceil_div(nc, kr.nr);
    for (int64_t pc = 0; pc < p.K; pc += kcb) {
      const int64_t kc = std::min(kcb, p.K - pc), kc_pad = round_up(kc, kr.kgran);
      for (int64_t q = 0; q < panels; q++) {
        const int64_t j = jc + q * kr.nr;
        kr.pack_b(bbuf + q * kc_pad * panel_bytes_per_k, at(p.B, p.bdt, pc * p.sbk + j * p.sbn), p.bdt, p.sbn, p.sbk, std::min<int64_t>(kr.nr, n1 - j), kc, kc_pad);
      }
      const bool add = p.accumulate || pc > 0;
      for (int64_t ic = m0; ic < m1; ic += mcb) {
        const int64_t mc = std::min(mcb, m1 - ic);
        const size_t slot = keep_a ? (size_t)((pc / kcb) * mblocks + (ic - m0) / mcb) : 0;
        AView av;
        if (keep_a && jc > n0) {
          av = views[slot];
        } else {
          av = kr.prep_a(abuf + slot * a_block_bytes, at(p.A, p.adt, ic * p.sam + pc * p.sak), p.adt, p.sam, p.sak, mc, kc, kc_pad);
          if (keep_a) views[slot] = av;
        }
        for (int64_t q = 0; q < panels; q++) {
          const int64_t j = jc + q * kr.nr, nv = std::min<int64_t>(kr.nr, n1 - j);
          const char* bp = bbuf + q * kc_pad * panel_bytes_per_k;
          for (int64_t t = 0; t * kr.mr < mc; t++) {
            const int64_t i = ic + t * kr.mr, mv = std::min<int64_t>(kr.mr, m1 - i);
            const void* a = static_cast<const char*>(av.base) + t * av.tile_stride * 4;
            float* c = p.C + i * p.ldc + j;
            if (mv == kr.mr && nv == kr.nr) {
              kr.micro(kc_pad, a, av.ars, av.aks, (int)mv, bp, c, p.ldc, add);
              continue;
            }
            kr.micro(kc_pad, a, av.ars, av.aks, (int)mv, bp, tmp, kr.nr, false);
            for (int64_t r = 0; r < mv; r++)
              for (int64_t s = 0; s < nv; s++) c[r * p.ldc + s] = add ? c[r * p.ldc + s] + tmp[r * kr.nr + s] : tmp[r * kr.nr + s];
          }
        }
      }
    }
  }
  if (kr.thread_end) kr.thread_end();
}

// Fewest multiply-adds worth a thread of their own (~5 us of work on one core).
constexpr int64_t kMinMacsPerThread = 1 << 18;

// The thread grid tm x tn for T threads: each thread gets ceil(Mt / tm) row tiles and
// ceil(Nt / tn) column tiles; the cost counts its multiply-adds and, at about 16
// multiply-adds an element, what it packs (B once, A once per column block).
void choose_grid(const Kernel& kr, int64_t M, int64_t N, int64_t K, int T, int* tm_out, int* tn_out) {
  const int64_t Mt = ceil_div(M, kr.mr), Nt = ceil_div(N, kr.nr);
  T = (int)std::max<int64_t>(1, std::min<int64_t>({(int64_t)T, M * N * K / kMinMacsPerThread, Mt * Nt}));
  double best = 1e300;
  *tm_out = 1, *tn_out = 1;
  for (int t = T; t >= 1 && best == 1e300; t--)
    for (int tm = 1; tm <= t; tm++) {
      if (t % tm) continue;
      const int tn = t / tm;
      if (tm > Mt || tn > Nt) continue;
      const double rows = (double)ceil_div(Mt, tm) * kr.mr, cols = (double)ceil_div(Nt, tn) * kr.nr;
      const double cost = rows * cols * K + 16.0 * K * (cols + rows * (double)ceil_div((int64_t)cols, kr.nc));
      if (cost < best) best = cost, *tm_out = tm, *tn_out = tn;
    }
}

void run(ThreadPool& pool, const Kernel& kr, const Problem& p) {
  int tm, tn;
  choose_grid(kr, p.M, p.N, p.K, pool.size(), &tm, &tn);
  const int64_t Mt = ceil_div(p.M, kr.mr), Nt = ceil_div(p.N, kr.nr);
  pool.parallel_for(tm * tn, [&](int, int64_t b, int64_t e) {
    for (int64_t part = b; part < e; part++) {
      int64_t r0, r1, c0, c1;
      split_range(Mt, tm, (int)(part / tn), &r0, &r1);
      split_range(Nt, tn, (int)(part % tn), &c0, &c1);
      run_block(kr, p, r0 * kr.mr, std::min(r1 * kr.mr, p.M), c0 * kr.nr, std::min(c1 * kr.nr, p.N));
    }
  }, tm * tn, 1);
}

// Fraction of a padded tile grid that is real work.
double fill(const Kernel& kr, int64_t M, int64_t N) { return (double)(M * N) / (double)(round_up(M, kr.mr) * round_up(N, kr.nr)); }

// Fewest bytes of weight worth a thread of their own in a GEMV (~20 us from DRAM).
constexpr int64_t kGemvMinBytes = 256 << 10;

void run_gemv(ThreadPool& pool, GemvFn fn, float* C, int64_t ldc, const float* A, int64_t sam, int64_t sak, ConstTensorRef B, int64_t sbn, int64_t M, int64_t N, int64_t K, bool accumulate) {
  std::vector<float> packed;
  if (sak != 1) {  // rows of A made contiguous (M <= kGemvRows rows: a few KB)
    packed.resize((size_t)(M * K));
    for (int64_t i = 0; i < M; i++)
      for (int64_t k = 0; k < K; k++) packed[(size_t)(i * K + k)] = A[i * sam + k * sak];
    A = packed.data(), sam = K;
  }
  // columns in parts of whole 16-column groups (64-byte lines of C rows)
  const int64_t groups = ceil_div(N, 16);
  const int64_t bytes = N * K * (int64_t)dtype_size(B.dtype);
  const int parts = (int)std::max<int64_t>(1, std::min<int64_t>({(int64_t)pool.size(), bytes / kGemvMinBytes, groups}));
  pool.parallel_for(parts, [&](int, int64_t b, int64_t e) {
    Scratch s;
    float* scratch = static_cast<float*>(s.get((size_t)gemv_scratch_floats(M, K) * sizeof(float)));
    for (int64_t part = b; part < e; part++) {
      int64_t g0, g1;
      split_range(groups, parts, (int)part, &g0, &g1);
      fn(C, ldc, A, sam, B, sbn, M, K, g0 * 16, std::min(g1 * 16, N), accumulate, scratch);
    }
  }, parts, 1);
}

}  // namespace

const char* gemm_path(Isa isa, DType b_dtype, int64_t M, int64_t N, int64_t K, int64_t sbk, int64_t sbn) {
  (void)K, (void)sbn;
  return plan_for(isa, b_dtype, M, N, sbk).name;
}

bool gemm_path_rounds_to_bf16(Isa isa, DType b_dtype, int64_t M, int64_t N, int64_t K, int64_t sbk, int64_t sbn) {
  (void)K, (void)sbn;
  const Plan pl = plan_for(isa, b_dtype, M, N, sbk);
  return pl.kernel && pl.kernel->bf16;
}

void gemm(ThreadPool& pool, Isa isa, float* C, int64_t ldc, const float* A, int64_t sam, int64_t sak, ConstTensorRef B, int64_t sbk, int64_t sbn, int64_t M, int64_t N, int64_t K, bool accumulate) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    if (!accumulate)
      for (int64_t i = 0; i < M; i++) std::memset(C + i * ldc, 0, (size_t)N * sizeof(float));
    return;
  }
  const Plan pl = plan_for(isa, B.dtype, M, N, sbk);
  if (pl.gemv) return run_gemv(pool, pl.gemv, C, ldc, A, sam, sak, B, sbn, M, N, K, accumulate);
  const Kernel& kr = *pl.kernel;
  // A narrow C (LoRA's rank-16 side) fills whole tiles the other way round: C^T = B^T . A^T,
  // computed into a scratch C^T and added transposed.
  if (fill(kr, N, M) > 1.25 * fill(kr, M, N) && M * N <= (int64_t)1 << 22) {
    std::vector<float> T((size_t)(N * M));
    run(pool, kr, Problem{T.data(), M, B.data, B.dtype, sbn, sbk, A, DType::F32, sak, sam, N, M, K, false});
    for (int64_t i = 0; i < M; i++)
      for (int64_t j = 0; j < N; j++) C[i * ldc + j] = accumulate ? C[i * ldc + j] + T[(size_t)(j * M + i)] : T[(size_t)(j * M + i)];
    return;
  }
  run(pool, kr, Problem{C, ldc, A, DType::F32, sam, sak, B.data, B.dtype, sbk, sbn, M, N, K, accumulate});
}

void gemm_ref(float* C, int64_t ldc, const float* A, int64_t sam, int64_t sak, ConstTensorRef B, int64_t sbk, int64_t sbn, int64_t M, int64_t N, int64_t K, bool accumulate, bool round_a_bf16) {
  for (int64_t i = 0; i < M; i++)
    for (int64_t j = 0; j < N; j++) {
      double s = accumulate ? C[i * ldc + j] : 0.0;
      for (int64_t k = 0; k < K; k++) {
        const float a = round_a_bf16 ? round_bf16(A[i * sam + k * sak]) : A[i * sam + k * sak];
        const int64_t at = k * sbk + j * sbn;
        const float b = B.dtype == DType::F32 ? B.f32()[at] : bf16_to_f32(B.bf16()[at]);
        s += (double)a * (double)b;
      }
      C[i * ldc + j] = (float)s;
    }
}

}  // namespace vlatext
