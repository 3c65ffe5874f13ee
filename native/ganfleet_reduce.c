/*
 * ganfleet's optional coordinator kernels: the reducer's float64 gradient sum and Adam, over
 * typed arrays, exposed to Node through N-API (plain C, no dependencies besides libm). They do
 * exactly the arithmetic of the JavaScript fallbacks in coordinator/reduce-kernels.ts, operation
 * for operation in the same order and precision, so the weights are bit-identical with or without
 * this addon; only the speed differs (SIMD, no bounds checks).
 *
 * Bit-identity rests on: -std=c11 and -ffp-contract=off (no fused multiply-add), no -ffast-math
 * (IEEE +, −, ×, ÷ and √, all correctly rounded in SSE2/AVX2 as in V8), float ← double by the
 * default round-to-nearest-even like Math.fround, and float arithmetic equal to Math.fround of the
 * same double operation (exact for +, −, ×, ÷ and √ of floats: a double has over 2·24+2 bits).
 * -fno-math-errno only lets sqrt vectorize.
 *
 * The interface (dtype codes, Adam's constants, ABI) is ganfleet_reduce.h; the argument checks and
 * errors follow ganfleet_napi.h. Entry points:
 *
 *   add(acc, grads, dtype, scaleExps, first) → bool
 *     acc: Float64Array; grads: 1–64 Float32Arrays (GF_DTYPE_F32) or Uint16Arrays of f16 / bf16
 *     bits; acc[i] = (acc[i] unless first) + x₀ + x₁ + …, left to right in float64, xⱼ the element
 *     as float32 (f16 × 2^−scaleExps[j]); false when a sum is NaN or ±Inf (acc is then
 *     overwritten; the caller rebuilds it).
 *   finite(grad, dtype) → bool: no NaN or ±Inf in grad (f16 with any scale: the same test).
 *   setThreads(n) / getThreads(): threads add and adam split their elements over (default: one
 *     per 4 cores online, at most 4; results are bit-identical for any count).
 *   keepFreedMemory() → bool: glibc only (false elsewhere): serve allocations up to 32 MiB from the
 *     heap and keep up to 128 MiB of freed memory, instead of mmap-ing each large block afresh.
 *     Every model-sized message (≈ 1.1 MB) is a fresh ArrayBuffer on both sides (ws assembles
 *     each received message into one); fresh mappings cost ≈ 0.8 ms of page faults per MB on a
 *     loaded machine, reused heap memory ≈ 0.15 ms. Process-wide: called once by the coordinator
 *     and by each worker at start.
 *   shmCreate, shmOpen, shmUnlink: shared-memory segments for workers on the coordinator's host.
 *   tcpNotsentLowat: a TCP socket's kernel queue kept short, for a worker's egress order.
 *   tcpUnacked: the bytes a TCP socket's kernel still holds, for a worker's egress window.
 *   fxAccumulate, fxAddWire, fxNormalize, fxToFloat64: the exact reduction's integer kernels, the
 *     twins of shared/fixed.ts's JavaScript ones (see there for the format).
 *   adam(params, m, v, sum, out, constants)
 *     sum: Float64Array or Float32Array; out: null or a Float32Array that also receives the new
 *     weights (the outgoing frame's payload, so no separate copy is needed); constants: a
 *     Float64Array laid out by gf_adam_constant. The update is PyTorch's float32 Adam on the
 *     gradient fround(sum[i] · (1/divisor)) (see coordinator/optimizer.ts).
 */
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <pthread.h>
#include <unistd.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include "ganfleet_napi.h"
#include "ganfleet_reduce.h"

#if defined(__GNUC__) && !defined(__clang__) && (defined(__x86_64__) || defined(__i386__))
#define SIMD_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define SIMD_CLONES
#endif


/*
 * acc[i] = ((x0 (+ acc[i] unless first)) + x1) + … + x_{k−1}, x_j = shard j's element i as float,
 * in float64, shard by shard in the given order; a non-zero result when a sum is NaN or ±Inf (any
 * non-finite element in any shard makes its sum non-finite, as float32 values cannot overflow a
 * float64 sum of fewer than 2^900 terms). One pass over acc per 8 shards: each pass reads its
 * shards as separate streams (measured: 8 streams at once run 2–3× faster than 8 passes, and than
 * summing block by block through a buffer). Shards are never padded with zeros: −0 + 0 is +0.
 * One kernel per wire dtype (DEC decodes shard j's element i to float) and fan-in K.
 */
#define ADD_FANIN(NAME, T, K, DEC, LOAD, SUM)                                                       \
  SIMD_CLONES                                                                                       \
  static int NAME##_##K(double *restrict acc, const T *const *g, const double *sc, size_t lo, size_t hi, bool first) { \
    (void)sc;                                                                                       \
    const T *restrict q0 = g[0];                                                                    \
    const double sc0 = sc ? sc[0] : 1;                                                              \
    (void)sc0;                                                                                      \
    LOAD                                                                                            \
    int bad = 0;                                                                                    \
    if (first) {                                                                                    \
      for (size_t i = lo; i < hi; i++) {                                                            \
        double s = DEC(0);                                                                          \
        SUM                                                                                         \
        bad |= (s - s) != 0;                                                                        \
        acc[i] = s;                                                                                 \
      }                                                                                             \
    } else {                                                                                        \
      for (size_t i = lo; i < hi; i++) {                                                            \
        double s = acc[i] + DEC(0);                                                                 \
        SUM                                                                                         \
        bad |= (s - s) != 0;                                                                        \
        acc[i] = s;                                                                                 \
      }                                                                                             \
    }                                                                                               \
    return bad;                                                                                     \
  }

static inline float bf16_float(uint16_t h) {
  const uint32_t u = (uint32_t)h << 16;
  float x;
  memcpy(&x, &u, sizeof x);
  return x;
}

/*
 * IEEE half → float, exactly, without a table (so the loop vectorizes) and without touching a
 * float subnormal (an operand that is one costs a microcode assist per element): normal halves by
 * rebiasing the exponent in the integer bits (+112 << 23), subnormal ones as m · 2^−24, Inf and NaN
 * with the float's all-ones exponent. Equal to shared/dtype.ts's f16Table for every h but NaN
 * payloads (a NaN only ever fails the finiteness check; tests/unit/reduce-kernels.test.ts checks all).
 */
static inline float half_float(uint16_t h) {
  const uint32_t em = h & 0x7fffu;
  const float sub = (float)(int32_t)em * 0x1p-24f;
  uint32_t bs;
  memcpy(&bs, &sub, sizeof bs);
  /* Masks, not branches: the kinds of value come in no predictable order. */
  const uint32_t isSub = 0u - (uint32_t)(em < 0x0400u);
  const uint32_t isInf = 0u - (uint32_t)(em >= 0x7c00u);
  const uint32_t normal = (em << 13) + (112u << 23);
  const uint32_t special = (em << 13) | 0x7f800000u;
  const uint32_t b = (bs & isSub) | (special & isInf) | (normal & ~(isSub | isInf)) | ((uint32_t)(h & 0x8000u) << 16);
  float f;
  memcpy(&f, &b, sizeof f);
  return f;
}

/* Shard j's element i as float: float32 as is; bf16 widened; f16 converted, times 2^−e. */
#define DEC_F32(j) (q##j[i])
#define DEC_BF16(j) bf16_float(q##j[i])
#define DEC_F16(j) ((float)((double)half_float(q##j[i]) * sc##j))
#define P(T, j) const T *restrict q##j = g[j]; const double sc##j = sc ? sc[j] : 1; (void)sc##j;
#define KERNELS(NAME, T, DEC)                                                                         \
  ADD_FANIN(NAME, T, 1, DEC, , )                                                                    \
  ADD_FANIN(NAME, T, 2, DEC, P(T, 1), s += DEC(1);)                                                 \
  ADD_FANIN(NAME, T, 4, DEC, P(T, 1) P(T, 2) P(T, 3), s += DEC(1); s += DEC(2); s += DEC(3);)       \
  ADD_FANIN(NAME, T, 8, DEC, P(T, 1) P(T, 2) P(T, 3) P(T, 4) P(T, 5) P(T, 6) P(T, 7),               \
            s += DEC(1); s += DEC(2); s += DEC(3); s += DEC(4); s += DEC(5); s += DEC(6); s += DEC(7);)
KERNELS(add_f32, float, DEC_F32)
KERNELS(add_bf16, uint16_t, DEC_BF16)
KERNELS(add_f16, uint16_t, DEC_F16)
#undef P

/* One multi-shard add: its arguments, and the range of elements a thread takes. */
typedef struct {
  double *acc;
  const void *const *g;
  const double *scale; /* f16: 2^−e per shard; NULL otherwise */
  size_t k;
  gf_dtype dtype;
  bool first;
} add_job;

#define FANIN_CALL(NAME, T)                                                                           \
  (left >= 8 ? NAME##_8 : left >= 4 ? NAME##_4 : left >= 2 ? NAME##_2 : NAME##_1)(                   \
      j->acc, (const T *const *)j->g + at, j->scale ? j->scale + at : NULL, lo, hi, f)

static int add_range(const void *ctx, size_t lo, size_t hi) {
  const add_job *j = ctx;
  int bad = 0;
  for (size_t at = 0; at < j->k;) {
    const size_t left = j->k - at;
    const bool f = j->first && at == 0;
    switch (j->dtype) {
      case GF_DTYPE_F32: bad |= FANIN_CALL(add_f32, float); break;
      case GF_DTYPE_F16: bad |= FANIN_CALL(add_f16, uint16_t); break;
      case GF_DTYPE_BF16: bad |= FANIN_CALL(add_bf16, uint16_t); break;
      case GF_DTYPE_COUNT: break; /* js_add admits only the codes above */
    }
    at += left >= 8 ? 8 : left >= 4 ? 4 : left >= 2 ? 2 : 1;
  }
  return bad;
}

/*
 * Splitting an elementwise loop over threads: each element's arithmetic is the same whoever does
 * it, so the results are bit-identical for any thread count. Helper threads are started per call
 * (tens of µs, against ≈ 1 ms of work), so nothing outlives a call. Ranges of at least
 * MIN_PER_THREAD elements; at most `threads` of them.
 */
#define MIN_PER_THREAD 65536
#define MAX_THREADS 16
static int threads = 1;

typedef int (*range_fn)(const void *ctx, size_t lo, size_t hi);
typedef struct {
  range_fn fn;
  const void *ctx;
  size_t lo, hi;
  int result;
} range_task;

static void *run_task(void *arg) {
  range_task *t = arg;
  t->result = t->fn(t->ctx, t->lo, t->hi);
  return NULL;
}

static int parallel_for(range_fn fn, const void *ctx, size_t n) {
  size_t parts = n / MIN_PER_THREAD;
  if (parts > (size_t)threads) parts = (size_t)threads;
  if (parts <= 1) return fn(ctx, 0, n);
  range_task tasks[MAX_THREADS];
  pthread_t ids[MAX_THREADS];
  bool started[MAX_THREADS] = {false};
  const size_t step = (n / parts + 15) & ~(size_t)15;
  for (size_t p = 0; p < parts; p++) {
    const size_t lo = p * step < n ? p * step : n, hi = (p + 1) * step < n && p + 1 < parts ? (p + 1) * step : n;
    tasks[p] = (range_task){fn, ctx, lo, hi, 0};
  }
  for (size_t p = 1; p < parts; p++) started[p] = pthread_create(&ids[p], NULL, run_task, &tasks[p]) == 0;
  run_task(&tasks[0]);
  int result = tasks[0].result;
  for (size_t p = 1; p < parts; p++) {
    if (started[p]) pthread_join(ids[p], NULL);
    else run_task(&tasks[p]); /* could not start a thread: do its part here */
    result |= tasks[p].result;
  }
  return result;
}

SIMD_CLONES
static bool finite_f32(const float *restrict g, size_t n) {
  int bad = 0;
  for (size_t i = 0; i < n; i++) bad |= (g[i] - g[i]) != 0;
  return bad == 0;
}

/* 16-bit floats: non-finite ⇔ all exponent bits set (f16: 0x7c00, bf16: 0x7f80). */
SIMD_CLONES
static bool finite_u16(const uint16_t *restrict g, size_t n, uint16_t expMask) {
  int bad = 0;
  for (size_t i = 0; i < n; i++) bad |= (g[i] & expMask) == expMask;
  return bad == 0;
}

/* The constants of one Adam step, as coordinator/optimizer.ts computes them (all but the mean's
 * scale rounded to float, as PyTorch's float32 kernels take them). */
typedef struct {
  double inv; /* 1 / divisor: the mean is fround(sum · inv) */
  float stepSize, bc2Sqrt, beta1, beta2, c1, c2, eps;
} adam_k;

/* PyTorch's float32 Adam, operation for operation: g is the mean gradient rounded to float. */
static inline float adam_one(float *restrict p, float *restrict m, float *restrict v, float g, const adam_k *k) {
  const float mi = k->beta1 * *m + k->c1 * g;
  const float vi = k->beta2 * *v + k->c2 * g * g;
  *m = mi;
  *v = vi;
  return *p = *p - (k->stepSize * mi) / (sqrtf(vi) / k->bc2Sqrt + k->eps);
}

typedef struct {
  float *p, *m, *v, *out;
  const void *sum;
  bool sum64;
  adam_k k;
} adam_job;

/* One loop per (sum type × with/without a copy of the new weights into `out`, e.g. a frame). */
#define ADAM_LOOP(NAME, SUM_T, OUT_STORE)                                                             \
  SIMD_CLONES                                                                                         \
  static void NAME(float *restrict p, float *restrict m, float *restrict v, const SUM_T *restrict sum, \
                   float *restrict out, size_t lo, size_t hi, adam_k k) {                             \
    (void)out;                                                                                        \
    for (size_t i = lo; i < hi; i++) {                                                                \
      const float x = adam_one(p + i, m + i, v + i, (float)((double)sum[i] * k.inv), &k);             \
      OUT_STORE;                                                                                      \
    }                                                                                                 \
  }
ADAM_LOOP(adam_f64, double, (void)x)
ADAM_LOOP(adam_f32, float, (void)x)
ADAM_LOOP(adam_f64_out, double, out[i] = x)
ADAM_LOOP(adam_f32_out, float, out[i] = x)

static int adam_range(const void *ctx, size_t lo, size_t hi) {
  const adam_job *j = ctx;
  if (j->sum64) (j->out ? adam_f64_out : adam_f64)(j->p, j->m, j->v, j->sum, j->out, lo, hi, j->k);
  else (j->out ? adam_f32_out : adam_f32)(j->p, j->m, j->v, j->sum, j->out, lo, hi, j->k);
  return 0;
}

/* A grad's typed array kind for each wire dtype: what add and finite check their grads against. */
static napi_typedarray_type dtype_kind(gf_dtype d) {
  return d == GF_DTYPE_F32 ? napi_float32_array : napi_uint16_array;
}

/* Argument i: a dtype code (gf_dtype). */
static bool get_dtype(gf_call *c, size_t i, gf_dtype *out) {
  int32_t d = 0;
  if (!gf_int32(c, i, "dtype", &d)) return false;
  if (d < 0 || d >= GF_DTYPE_COUNT) {
    gf_range_error(c, "dtype must be a code in [0, %d), not %d", GF_DTYPE_COUNT, d);
    return false;
  }
  *out = (gf_dtype)d;
  return true;
}

static napi_value js_add(napi_env env, napi_callback_info info) {
  gf_call c;
  gf_array acc = {0};
  gf_dtype dtype = GF_DTYPE_F32;
  bool first = false;
  uint32_t k = 0, ke = 0;
  if (!gf_args(env, info, "add", 5, &c) || !gf_typed(&c, 0, "acc", GF_F64, &acc) || !gf_list(&c, 1, "grads", &k) ||
      !get_dtype(&c, 2, &dtype) || !gf_list(&c, 3, "scaleExps", &ke) || !gf_bool(&c, 4, "first", &first))
    return NULL;
  if (k == 0 || k > GF_MAX_SHARDS || ke != k)
    return gf_range_error(&c, "takes 1 to %d grads with one scale exponent each, not %u and %u", GF_MAX_SHARDS, k, ke);
  const void *g[GF_MAX_SHARDS];
  double scale[GF_MAX_SHARDS];
  for (uint32_t j = 0; j < k; j++) {
    gf_array gj = {0};
    int32_t e = 0;
    if (!gf_typed_at(&c, 1, j, "grads", GF_F32 | GF_U16, &gj) || !gf_int32_at(&c, 3, j, "scaleExps", &e)) return NULL;
    if (gj.length != acc.length || gj.kind != dtype_kind(dtype))
      return gf_range_error(&c, "grads[%u] is a %s of %zu, acc holds %zu and dtype %d takes %s", j,
                            gf_kind_name(gj.kind), gj.length, acc.length, dtype, gf_kind_name(dtype_kind(dtype)));
    g[j] = gj.data;
    scale[j] = ldexp(1.0, -e);
  }
  const add_job job = {acc.data, g, dtype == GF_DTYPE_F16 ? scale : NULL, k, dtype, first};
  return gf_boolean(env, parallel_for(add_range, &job, acc.length) == 0);
}

static napi_value js_finite(napi_env env, napi_callback_info info) {
  gf_call c;
  gf_array g = {0};
  gf_dtype dtype = GF_DTYPE_F32;
  if (!gf_args(env, info, "finite", 2, &c) || !gf_typed(&c, 0, "grad", GF_F32 | GF_U16, &g) ||
      !get_dtype(&c, 1, &dtype))
    return NULL;
  if (g.kind != dtype_kind(dtype))
    return gf_range_error(&c, "grad is a %s, dtype %d takes %s", gf_kind_name(g.kind), dtype,
                          gf_kind_name(dtype_kind(dtype)));
  bool ok = false;
  switch (dtype) {
    case GF_DTYPE_F32: ok = finite_f32(g.data, g.length); break;
    case GF_DTYPE_F16: ok = finite_u16(g.data, g.length, 0x7c00); break;
    case GF_DTYPE_BF16: ok = finite_u16(g.data, g.length, 0x7f80); break;
    case GF_DTYPE_COUNT: break; /* get_dtype admits only the codes above */
  }
  return gf_boolean(env, ok);
}

static napi_value js_adam(napi_env env, napi_callback_info info) {
  gf_call c;
  gf_array p = {0}, m = {0}, v = {0}, s = {0}, o = {0}, kc = {0};
  if (!gf_args(env, info, "adam", 6, &c) || !gf_typed(&c, 0, "params", GF_F32, &p) ||
      !gf_typed(&c, 1, "m", GF_F32, &m) || !gf_typed(&c, 2, "v", GF_F32, &v) ||
      !gf_typed(&c, 3, "sum", GF_F64 | GF_F32, &s) || !gf_typed_or_null(&c, 4, "out", GF_F32, &o) ||
      !gf_typed(&c, 5, "constants", GF_F64, &kc))
    return NULL;
  if (m.length != p.length || v.length != p.length || s.length != p.length || (o.data != NULL && o.length != p.length))
    return gf_range_error(&c, "params, m, v, sum and out must have equal lengths (%zu, %zu, %zu, %zu, %zu)", p.length,
                          m.length, v.length, s.length, o.data != NULL ? o.length : p.length);
  if (kc.length != GF_ADAM_LENGTH)
    return gf_range_error(&c, "constants must hold %d numbers, not %zu", GF_ADAM_LENGTH, kc.length);
  const double *x = kc.data;
  const adam_k k = {
      1.0 / x[GF_ADAM_DIVISOR], (float)x[GF_ADAM_STEP_SIZE], (float)x[GF_ADAM_BC2_SQRT], (float)x[GF_ADAM_BETA1],
      (float)x[GF_ADAM_BETA2],  (float)x[GF_ADAM_C1],        (float)x[GF_ADAM_C2],       (float)x[GF_ADAM_EPS],
  };
  const adam_job job = {p.data, m.data, v.data, o.data, s.data, s.kind == napi_float64_array, k};
  parallel_for(adam_range, &job, p.length);
  return NULL;
}

static napi_value js_keep_freed_memory(napi_env env, napi_callback_info info) {
  gf_call c;
  if (!gf_args(env, info, "keepFreedMemory", 0, &c)) return NULL;
  bool ok = false;
#if defined(__GLIBC__)
  ok = mallopt(M_MMAP_THRESHOLD, 32 << 20) == 1;
  ok = mallopt(M_TRIM_THRESHOLD, 128 << 20) == 1 && ok;
#endif
  return gf_boolean(env, ok);
}

static napi_value js_set_threads(napi_env env, napi_callback_info info) {
  gf_call c;
  int32_t n = 0;
  if (!gf_args(env, info, "setThreads", 1, &c) || !gf_int32(&c, 0, "n", &n)) return NULL;
  if (n < 1 || n > MAX_THREADS) return gf_range_error(&c, "n must be in [1, %d], not %d", MAX_THREADS, n);
  threads = n;
  return NULL;
}

static napi_value js_get_threads(napi_env env, napi_callback_info info) {
  gf_call c;
  if (!gf_args(env, info, "getThreads", 0, &c)) return NULL;
  return gf_number(env, threads);
}

/*
 * The exact reduction's integers (shared/fixed.ts has the format and the JavaScript twin): value =
 * hi · 2^32 + lo, both exact integers in doubles. Every operation below is exact but the final
 * T · 2^−s, so these agree with the JavaScript bit for bit whatever the compiler vectorizes.
 */
#define FX_TWO32 4294967296.0
#define FX_ROUNDER 6755399441055744.0
#define FX_CHUNK_LIMIT 2251799813685248.0 /* 2^51 */

/* Tensor t's [offset, length] and shift, checked against n elements. */
static bool fx_layout(gf_call *c, const gf_array *segs, const gf_array *shifts, size_t n) {
  if (segs->length != 2 * shifts->length) {
    gf_range_error(c, "segments must hold 2 numbers per shift (%zu for %zu)", segs->length, shifts->length);
    return false;
  }
  const int32_t *sg = segs->data, *sh = shifts->data;
  for (size_t t = 0; t < shifts->length; t++) {
    if (sg[2 * t] < 0 || sg[2 * t + 1] < 0 || (size_t)sg[2 * t] + (size_t)sg[2 * t + 1] > n || sh[t] < -1000 ||
        sh[t] > 1000) {
      gf_range_error(c, "tensor %zu: [%d, +%d) with shift %d does not fit %zu elements", t, sg[2 * t], sg[2 * t + 1],
                     sh[t], n);
      return false;
    }
  }
  return true;
}

/* Adds one tensor's chunk values as quanta; -1 when all are finite and below the limit, else 0 (NaN/±Inf) or 1. */
SIMD_CLONES static int fx_accumulate_range(double *restrict hi, double *restrict lo, const float *restrict g, size_t n,
                                           double scale) {
  int bad = -1;
  for (size_t i = 0; i < n; i++) {
    const double x = (double)g[i] * scale;
    if (bad < 0 && !(fabs(x) < FX_CHUNK_LIMIT)) bad = isfinite(x) ? 1 : 0;
    const double r = (x + FX_ROUNDER) - FX_ROUNDER;
    const double h = floor(r / FX_TWO32);
    hi[i] += h;
    lo[i] += r - h * FX_TWO32;
  }
  return bad;
}

/* fxAccumulate(hi, lo, grads, chunks, segments, shifts) → -1, or (tensor << 1) | overflow (0: non-finite). */
static napi_value js_fx_accumulate(napi_env env, napi_callback_info info) {
  gf_call c;
  gf_array hi = {0}, lo = {0}, g = {0}, segs = {0}, shifts = {0};
  int32_t chunks = 0;
  if (!gf_args(env, info, "fxAccumulate", 6, &c) || !gf_typed(&c, 0, "hi", GF_F64, &hi) ||
      !gf_typed(&c, 1, "lo", GF_F64, &lo) || !gf_typed(&c, 2, "grads", GF_F32, &g) ||
      !gf_int32(&c, 3, "chunks", &chunks) || !gf_typed(&c, 4, "segments", GF_I32, &segs) ||
      !gf_typed(&c, 5, "shifts", GF_I32, &shifts))
    return NULL;
  const size_t n = hi.length;
  if (lo.length != n || chunks < 0 || g.length != (size_t)chunks * n)
    return gf_range_error(&c, "hi and lo hold %zu and %zu; grads must hold chunks (%d) × %zu, not %zu", hi.length,
                          lo.length, chunks, n, g.length);
  if (!fx_layout(&c, &segs, &shifts, n)) return NULL;
  const int32_t *sg = segs.data, *sh = shifts.data;
  for (int32_t k = 0; k < chunks; k++) {
    const float *gk = (const float *)g.data + (size_t)k * n;
    for (size_t t = 0; t < shifts.length; t++) {
      const size_t at = (size_t)sg[2 * t];
      const int bad = fx_accumulate_range((double *)hi.data + at, (double *)lo.data + at, gk + at,
                                          (size_t)sg[2 * t + 1], ldexp(1.0, sh[t]));
      if (bad >= 0) return gf_number(env, (double)(((int)t << 1) | bad));
    }
  }
  return gf_number(env, -1);
}

/*
 * Adding wire totals: up to FX_FANIN of them in one pass over the accumulator (their int32 values
 * summed in an int64 first, exact), so that each element of lo is read and written once per group
 * instead of once per total. Integer sums, so the same bits as adding them one by one.
 */
#define FX_FANIN 8
SIMD_CLONES static void fx_add_group(double *restrict hi, double *restrict lo, const int32_t *const *w, size_t k,
                                     size_t n, bool first) {
  const int32_t *const w0 = w[0];
  const int32_t *const w1 = k > 1 ? w[1] : NULL, *const w2 = k > 2 ? w[2] : NULL, *const w3 = k > 3 ? w[3] : NULL;
  const int32_t *const w4 = k > 4 ? w[4] : NULL, *const w5 = k > 5 ? w[5] : NULL, *const w6 = k > 6 ? w[6] : NULL;
  const int32_t *const w7 = k > 7 ? w[7] : NULL;
  if (first)
    for (size_t i = 0; i < n; i++) hi[i] = 0;
  switch (k) {
#define FX_GROUP(SUM)                                                                                   \
  if (first)                                                                                            \
    for (size_t i = 0; i < n; i++) lo[i] = (double)(SUM);                                              \
  else                                                                                                  \
    for (size_t i = 0; i < n; i++) lo[i] += (double)(SUM);                                             \
  break;
    case 1: FX_GROUP(w0[i])
    case 2: FX_GROUP((int64_t)w0[i] + w1[i])
    case 3: FX_GROUP((int64_t)w0[i] + w1[i] + w2[i])
    case 4: FX_GROUP((int64_t)w0[i] + w1[i] + w2[i] + w3[i])
    case 5: FX_GROUP((int64_t)w0[i] + w1[i] + w2[i] + w3[i] + w4[i])
    case 6: FX_GROUP((int64_t)w0[i] + w1[i] + w2[i] + w3[i] + w4[i] + w5[i])
    case 7: FX_GROUP((int64_t)w0[i] + w1[i] + w2[i] + w3[i] + w4[i] + w5[i] + w6[i])
    default: FX_GROUP((int64_t)w0[i] + w1[i] + w2[i] + w3[i] + w4[i] + w5[i] + w6[i] + w7[i])
#undef FX_GROUP
  }
}

/* fxAddWires(hi, lo, lows, exIndexes, exHighs, first): adds 1 to GF_MAX_SHARDS wire totals
 * (shared/fixed.ts FixedWire: lists of equal length), or sets the sum to theirs with `first`. */
static napi_value js_fx_add_wires(napi_env env, napi_callback_info info) {
  gf_call c;
  gf_array hi = {0}, lo = {0};
  uint32_t k = 0, ki = 0, kh = 0;
  bool first = false;
  if (!gf_args(env, info, "fxAddWires", 6, &c) || !gf_typed(&c, 0, "hi", GF_F64, &hi) ||
      !gf_typed(&c, 1, "lo", GF_F64, &lo) || !gf_list(&c, 2, "lows", &k) || !gf_list(&c, 3, "exIndexes", &ki) ||
      !gf_list(&c, 4, "exHighs", &kh) || !gf_bool(&c, 5, "first", &first))
    return NULL;
  const size_t n = hi.length;
  if (lo.length != n) return gf_range_error(&c, "hi and lo hold %zu and %zu", n, lo.length);
  if (k == 0 || k > GF_MAX_SHARDS || ki != k || kh != k)
    return gf_range_error(&c, "takes 1 to %d totals in three lists of one length, not %u, %u and %u", GF_MAX_SHARDS,
                          k, ki, kh);
  const int32_t *w[GF_MAX_SHARDS];
  gf_array ei[GF_MAX_SHARDS], eh[GF_MAX_SHARDS];
  for (uint32_t j = 0; j < k; j++) {
    gf_array low = {0};
    ei[j] = (gf_array){0};
    eh[j] = (gf_array){0};
    if (!gf_typed_at(&c, 2, j, "lows", GF_I32, &low) || !gf_typed_at(&c, 3, j, "exIndexes", GF_U32, &ei[j]) ||
        !gf_typed_at(&c, 4, j, "exHighs", GF_I32, &eh[j]))
      return NULL;
    if (low.length != n || ei[j].length != eh[j].length)
      return gf_range_error(&c, "lows[%u] must hold %zu values and exIndexes[%u] as many as exHighs[%u]", j, n, j, j);
    const uint32_t *xi = ei[j].data;
    for (size_t x = 0; x < ei[j].length; x++)
      if (xi[x] >= n || (x > 0 && xi[x] <= xi[x - 1]))
        return gf_range_error(&c, "exIndexes[%u] must increase strictly below %zu (element %zu is %u)", j, n, x,
                              xi[x]);
    w[j] = low.data;
  }
  double *h = hi.data, *l = lo.data;
  for (uint32_t at = 0; at < k; at += FX_FANIN)
    fx_add_group(h, l, w + at, k - at < FX_FANIN ? k - at : FX_FANIN, n, first && at == 0);
  // An exception's low word is its unsigned low half, not a signed value: correct what was added.
  for (uint32_t j = 0; j < k; j++) {
    const uint32_t *xi = ei[j].data;
    const int32_t *xh = eh[j].data;
    for (size_t x = 0; x < ei[j].length; x++) {
      const size_t i = xi[x];
      h[i] += (double)xh[x];
      l[i] += (double)(uint32_t)w[j][i] - (double)w[j][i];
    }
  }
  return NULL;
}

SIMD_CLONES static void fx_normalize(double *restrict hi, double *restrict lo, size_t n) {
  for (size_t i = 0; i < n; i++) {
    const double carry = floor(lo[i] / FX_TWO32);
    hi[i] += carry;
    lo[i] -= carry * FX_TWO32;
  }
}

/* fxNormalize(hi, lo): 0 ≤ lo < 2^32 afterwards. */
static napi_value js_fx_normalize(napi_env env, napi_callback_info info) {
  gf_call c;
  gf_array hi = {0}, lo = {0};
  if (!gf_args(env, info, "fxNormalize", 2, &c) || !gf_typed(&c, 0, "hi", GF_F64, &hi) ||
      !gf_typed(&c, 1, "lo", GF_F64, &lo))
    return NULL;
  if (lo.length != hi.length) return gf_range_error(&c, "hi and lo hold %zu and %zu", hi.length, lo.length);
  fx_normalize(hi.data, lo.data, hi.length);
  return NULL;
}

/* The bits of |x| as an integer: ordered as the values are, for finite x (a total always is). */
static inline int64_t fx_abs_bits(double x) {
  int64_t b;
  memcpy(&b, &x, sizeof b);
  return b & INT64_MAX;
}

/*
 * One tensor's T · 2^−s; returns the largest |value| (compared as integer bits, which vectorizes).
 * hi · 2^32 and lo are exact, so their sum is the one rounding of T whether or not lo was
 * normalized: the sum is read, never written.
 */
SIMD_CLONES static double fx_to_float64_range(const double *restrict hi, const double *restrict lo,
                                              double *restrict out, size_t n, double scale) {
  int64_t m = 0;
  for (size_t i = 0; i < n; i++) {
    out[i] = (hi[i] * FX_TWO32 + lo[i]) * scale;
    const int64_t b = fx_abs_bits(out[i]);
    m = b > m ? b : m;
  }
  double largest;
  memcpy(&largest, &m, sizeof largest);
  return largest;
}

/*
 * fxToFloat64(hi, lo, segments, shifts, out, largest): out[i] = (hi · 2^32 + lo) · 2^−s,
 * and largest[t] = tensor t's largest |out[i]| (largest may be null).
 */
static napi_value js_fx_to_float64(napi_env env, napi_callback_info info) {
  gf_call c;
  gf_array hi = {0}, lo = {0}, segs = {0}, shifts = {0}, out = {0}, largest = {0};
  if (!gf_args(env, info, "fxToFloat64", 6, &c) || !gf_typed(&c, 0, "hi", GF_F64, &hi) ||
      !gf_typed(&c, 1, "lo", GF_F64, &lo) || !gf_typed(&c, 2, "segments", GF_I32, &segs) ||
      !gf_typed(&c, 3, "shifts", GF_I32, &shifts) || !gf_typed(&c, 4, "out", GF_F64, &out) ||
      !gf_typed_or_null(&c, 5, "largest", GF_F64, &largest))
    return NULL;
  const size_t n = hi.length;
  if (lo.length != n || out.length != n)
    return gf_range_error(&c, "hi, lo and out must hold equally many values (%zu, %zu, %zu)", n, lo.length, out.length);
  if (largest.data != NULL && largest.length != shifts.length)
    return gf_range_error(&c, "largest must hold one value per tensor (%zu), not %zu", shifts.length, largest.length);
  if (!fx_layout(&c, &segs, &shifts, n)) return NULL;
  const double *h = hi.data, *l = lo.data;
  double *o = out.data;
  const int32_t *sg = segs.data, *sh = shifts.data;
  for (size_t t = 0; t < shifts.length; t++) {
    const size_t at = (size_t)sg[2 * t];
    const double m = fx_to_float64_range(h + at, l + at, o + at, (size_t)sg[2 * t + 1], ldexp(1.0, -sh[t]));
    if (largest.data != NULL) ((double *)largest.data)[t] = m;
  }
  return NULL;
}

/*
 * Shared memory for workers on the coordinator's host (shared/shm.ts): POSIX segments mapped into
 * both processes, handed to JavaScript as ArrayBuffers over the mapping (unmapped when collected).
 *
 *   shmCreate(name, bytes) → ArrayBuffer: a new segment (O_EXCL: never an existing one), mode 0600.
 *   shmOpen(name, bytes) → ArrayBuffer: an existing segment of exactly `bytes`, owned by this user.
 *   shmUnlink(name) → bool: removes the name (mappings stay valid until unmapped).
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#define SHM_NAME_MAX 250

static void shm_unmap(napi_env env, void *data, void *hint) {
  (void)env;
  munmap(data, (size_t)(uintptr_t)hint);
}

static napi_value shm_buffer(gf_call *c, int fd, size_t bytes) {
  void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  const int err = errno;
  close(fd);
  if (p == MAP_FAILED) return gf_range_error(c, "mmap of %zu bytes failed: %s", bytes, strerror(err));
  napi_value ab;
  if (napi_create_external_arraybuffer(c->env, p, bytes, shm_unmap, (void *)(uintptr_t)bytes, &ab) != napi_ok) {
    munmap(p, bytes);
    return gf_throw(c->env, GF_NAPI_ERROR, c->fn, "cannot wrap the mapping in an ArrayBuffer");
  }
  return ab;
}

static bool shm_args(napi_env env, napi_callback_info info, const char *fn, gf_call *c, char *name, double *bytes) {
  if (!gf_args(env, info, fn, 2, c) || !gf_string(c, 0, "name", name, SHM_NAME_MAX) || !gf_double(c, 1, "bytes", bytes))
    return false;
  if (name[0] != '/' || strchr(name + 1, '/') != NULL) {
    gf_range_error(c, "name must be one '/' followed by a name without '/', not \"%s\"", name);
    return false;
  }
  if (!(*bytes >= 1 && *bytes <= 1073741824.0) || *bytes != (double)(size_t)*bytes) {
    gf_range_error(c, "bytes must be an integer in [1, 2^30], not %g", *bytes);
    return false;
  }
  return true;
}

static napi_value js_shm_create(napi_env env, napi_callback_info info) {
  gf_call c;
  char name[SHM_NAME_MAX];
  double bytes = 0;
  if (!shm_args(env, info, "shmCreate", &c, name, &bytes)) return NULL;
  const int fd = shm_open(name, O_CREAT | O_EXCL | O_RDWR, 0600);
  if (fd < 0) return gf_range_error(&c, "shm_open(%s) failed: %s", name, strerror(errno));
  /* The umask may have taken bits away, never added any: make it exactly 0600. */
  if (fchmod(fd, 0600) != 0 || ftruncate(fd, (off_t)bytes) != 0) {
    const int err = errno;
    close(fd);
    shm_unlink(name);
    return gf_range_error(&c, "cannot size %s to %g bytes: %s", name, bytes, strerror(err));
  }
  return shm_buffer(&c, fd, (size_t)bytes);
}

static napi_value js_shm_open(napi_env env, napi_callback_info info) {
  gf_call c;
  char name[SHM_NAME_MAX];
  double bytes = 0;
  if (!shm_args(env, info, "shmOpen", &c, name, &bytes)) return NULL;
  const int fd = shm_open(name, O_RDWR, 0);
  if (fd < 0) return gf_range_error(&c, "shm_open(%s) failed: %s", name, strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0 || st.st_size != (off_t)bytes || st.st_uid != geteuid() || (st.st_mode & 0077) != 0) {
    close(fd);
    return gf_range_error(&c, "%s is not a segment of %g bytes owned by this user with mode 0600", name, bytes);
  }
  return shm_buffer(&c, fd, (size_t)bytes);
}

static napi_value js_shm_unlink(napi_env env, napi_callback_info info) {
  gf_call c;
  char name[SHM_NAME_MAX];
  if (!gf_args(env, info, "shmUnlink", 1, &c) || !gf_string(&c, 0, "name", name, SHM_NAME_MAX)) return NULL;
  return gf_boolean(env, shm_unlink(name) == 0);
}

/*
 * A TCP socket's limit on bytes written and not yet sent (worker/egress.ts): with it small, a
 * socket is writable only while its kernel queue is short, so that the process, not the kernel,
 * decides which frame goes next. Node has no API for it; the fd comes from the socket's handle.
 *
 *   tcpNotsentLowat(fd, bytes) → number: sets TCP_NOTSENT_LOWAT to `bytes` (≥ 1; 0: leave it) and
 *     returns the value read back.
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

static napi_value js_tcp_notsent_lowat(napi_env env, napi_callback_info info) {
  gf_call c;
  int32_t fd = -1, bytes = 0;
  if (!gf_args(env, info, "tcpNotsentLowat", 2, &c) || !gf_int32(&c, 0, "fd", &fd) ||
      !gf_int32(&c, 1, "bytes", &bytes))
    return NULL;
  if (fd < 0) return gf_range_error(&c, "fd must be ≥ 0, not %d", fd);
  if (bytes < 0) return gf_range_error(&c, "bytes must be ≥ 0, not %d", bytes);
  int v = bytes;
  if (bytes > 0 && setsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &v, sizeof v) != 0)
    return gf_range_error(&c, "setsockopt(%d, TCP_NOTSENT_LOWAT) failed: %s", fd, strerror(errno));
  socklen_t len = sizeof v;
  if (getsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &v, &len) != 0)
    return gf_range_error(&c, "getsockopt(%d, TCP_NOTSENT_LOWAT) failed: %s", fd, strerror(errno));
  return gf_number(env, v);
}

/*
 * Bytes a TCP socket's kernel still holds: written and not yet acknowledged by the peer, whether
 * unsent, queued on this host or on the wire (worker/egress.ts keeps their sum over its sockets
 * under a window, so that an urgent frame does not wait behind the kernel's whole backlog).
 *
 *   tcpUnacked(fd) → number
 */
#include <linux/sockios.h>
#include <sys/ioctl.h>

static napi_value js_tcp_unacked(napi_env env, napi_callback_info info) {
  gf_call c;
  int32_t fd = -1;
  if (!gf_args(env, info, "tcpUnacked", 1, &c) || !gf_int32(&c, 0, "fd", &fd)) return NULL;
  if (fd < 0) return gf_range_error(&c, "fd must be ≥ 0, not %d", fd);
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) return gf_range_error(&c, "fd %d is not a socket", fd);
  int n = 0;
  if (ioctl(fd, SIOCOUTQ, &n) != 0)
    return gf_range_error(&c, "ioctl(%d, SIOCOUTQ) failed: %s", fd, strerror(errno));
  return gf_number(env, n);
}

/* The entry points: one line each. */
static const napi_property_descriptor FUNCTIONS[] = {
    GF_FN("add", js_add),
    GF_FN("finite", js_finite),
    GF_FN("adam", js_adam),
    GF_FN("keepFreedMemory", js_keep_freed_memory),
    GF_FN("setThreads", js_set_threads),
    GF_FN("getThreads", js_get_threads),
    GF_FN("fxAccumulate", js_fx_accumulate),
    GF_FN("fxAddWires", js_fx_add_wires),
    GF_FN("fxNormalize", js_fx_normalize),
    GF_FN("fxToFloat64", js_fx_to_float64),
    GF_FN("shmCreate", js_shm_create),
    GF_FN("shmOpen", js_shm_open),
    GF_FN("shmUnlink", js_shm_unlink),
    GF_FN("tcpNotsentLowat", js_tcp_notsent_lowat),
    GF_FN("tcpUnacked", js_tcp_unacked),
};

NAPI_MODULE_INIT() {
  /* Default: a thread per 4 cores online, at most 4: the coordinator's host usually runs workers
   * too, and on 2 cores a helper thread only waits for a core (measured: slower, not faster). */
  const long cores = sysconf(_SC_NPROCESSORS_ONLN);
  threads = cores < 8 ? 1 : cores >= 16 ? 4 : (int)(cores / 4);
  return gf_define(env, exports, GANFLEET_REDUCE_ABI, FUNCTIONS, GF_COUNT(FUNCTIONS));
}
