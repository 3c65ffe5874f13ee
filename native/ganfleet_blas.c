/*
 * ganfleet's optional native kernel pack: single-precision GEMM through OpenBLAS, exposed to
 * Node through N-API (plain C, no node-addon-api needed). worker/kernels/ registers it with tfjs
 * as the BatchMatMul and _FusedMatMul kernels of the wasm or cpu backend. The interface (activation
 * codes, ABI) is ganfleet_blas.h; the argument checks and errors follow ganfleet_napi.h.
 *
 *   gemm(transA, transB, m, n, k, a, b, c, bias, act, alpha)
 *     c[m×n] = act(op(a)·op(b) + bias), op(x) = xᵀ when trans is set; a, b, c are Float32Arrays
 *     (views into wasm memory or plain arrays), bias is null, a Float32Array of n values
 *     (broadcast over rows) or of 1 value; act: a gf_activation, alpha leakyrelu's slope (tanh is
 *     not one of tfjs's fused activations: ganfleet's train step asks for it only when these
 *     kernels are registered).
 *   setThreads(n) / getThreads(): OpenBLAS's thread count.
 *   config(): OpenBLAS's build description.
 */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cblas.h>
#include "ganfleet_napi.h"
#include "ganfleet_blas.h"

/*
 * tanh in float32, four lanes at a time with GCC vector extensions (plain SSE2 on x86-64): an odd
 * polynomial below 0.625 and 1 − 2/(e^{2|x|} + 1) above, both after Cephes' tanhf, with Cephes'
 * expf for the exponential. Relative error < 1e-7 against double tanh; ±inf → ±1, NaN stays NaN;
 * about 5× faster than tfjs-wasm's Tanh and 8× glibc's tanhf here.
 */
typedef float v4f __attribute__((vector_size(16)));
typedef int32_t v4i __attribute__((vector_size(16)));

static inline v4f tanh_v4(v4f x) {
  const v4i sign = (v4i)x & (v4i){INT32_MIN, INT32_MIN, INT32_MIN, INT32_MIN};
  const v4f ax = (v4f)((v4i)x ^ sign);
  const v4i lt = ax < 20.0f;
  const v4f t = 2.0f * (v4f)((lt & (v4i)ax) | (~lt & (v4i)(v4f){20.0f, 20.0f, 20.0f, 20.0f}));
  /* e^t for 0 <= t <= 40 */
  const v4i n = __builtin_convertvector(t * 1.44269504088896341f + 0.5f, v4i);
  const v4f fn = __builtin_convertvector(n, v4f);
  v4f r = t - fn * 0.693359375f;
  r = r + fn * 2.12194440e-4f;
  const v4f r2 = r * r;
  const v4f p = (((((1.9875691500e-4f * r + 1.3981999507e-3f) * r + 8.3334519073e-3f) * r + 4.1665795894e-2f) * r +
                  1.6666665459e-1f) * r + 5.0000001201e-1f) * r2 + r + 1.0f;
  const v4f s = p * (v4f)((n + 127) << 23);
  const v4f big = 1.0f - 2.0f / (s + 1.0f);
  const v4f z = x * x;
  const v4f small =
      ((((-5.70498872745e-3f * z + 2.06390887954e-2f) * z - 5.37397155531e-2f) * z + 1.33314422036e-1f) * z -
       3.33332819422e-1f) * z * ax + ax;
  const v4i use_big = ax >= 0.625f;
  return (v4f)(((use_big & (v4i)big) | (~use_big & (v4i)small)) | sign);
}

static void tanh_inplace(float *c, size_t len) {
  size_t i = 0;
  for (; i + 4 <= len; i += 4) {
    v4f v;
    memcpy(&v, c + i, sizeof v);
    v = tanh_v4(v);
    memcpy(c + i, &v, sizeof v);
  }
  for (; i < len; i++) {
    const v4f v = {c[i], 0.0f, 0.0f, 0.0f};
    c[i] = tanh_v4(v)[0];
  }
}

static napi_value gemm(napi_env env, napi_callback_info info) {
  gf_call c;
  bool ta = false, tb = false;
  int32_t m = 0, n = 0, k = 0, act = 0;
  double alpha = 0;
  gf_array a = {0}, b = {0}, out = {0}, bias = {0};
  if (!gf_args(env, info, "gemm", 11, &c) || !gf_bool(&c, 0, "transA", &ta) || !gf_bool(&c, 1, "transB", &tb) ||
      !gf_int32(&c, 2, "m", &m) || !gf_int32(&c, 3, "n", &n) || !gf_int32(&c, 4, "k", &k) ||
      !gf_typed(&c, 5, "a", GF_F32, &a) || !gf_typed(&c, 6, "b", GF_F32, &b) || !gf_typed(&c, 7, "c", GF_F32, &out) ||
      !gf_typed_or_null(&c, 8, "bias", GF_F32, &bias) || !gf_int32(&c, 9, "act", &act) ||
      !gf_double(&c, 10, "alpha", &alpha))
    return NULL;
  if (m < 0 || n < 0 || k < 0 || a.length < (size_t)m * k || b.length < (size_t)k * n ||
      out.length < (size_t)m * n || (bias.data != NULL && bias.length != (size_t)n && bias.length != 1))
    return gf_range_error(&c, "sizes do not match: m %d, n %d, k %d, a %zu, b %zu, c %zu, bias %zu", m, n, k, a.length,
                          b.length, out.length, bias.length);
  if (act < 0 || act >= GF_ACT_COUNT) return gf_range_error(&c, "act must be in [0, %d), not %d", GF_ACT_COUNT, act);
  if (m == 0 || n == 0) return NULL;
  float *C = out.data;
  const float *B0 = bias.data;
  const size_t mn = (size_t)m * n;
  float beta = 0.0f;
  if (B0 != NULL) {
    if (bias.length == 1) {
      for (size_t i = 0; i < mn; i++) C[i] = B0[0];
    } else {
      for (int32_t i = 0; i < m; i++) memcpy(C + (size_t)i * n, B0, (size_t)n * sizeof(float));
    }
    beta = 1.0f;
  }
  if (k == 0) {
    if (B0 == NULL) memset(C, 0, mn * sizeof(float));
  } else {
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, k, 1.0f, a.data,
                ta ? m : k, b.data, tb ? k : n, beta, C, n);
  }
  const float s = (float)alpha;
  switch ((gf_activation)act) {
    case GF_ACT_LINEAR:
      break;
    case GF_ACT_RELU:
      for (size_t i = 0; i < mn; i++) C[i] = C[i] < 0.0f ? 0.0f : C[i];
      break;
    case GF_ACT_LEAKYRELU:
      for (size_t i = 0; i < mn; i++) C[i] = C[i] < 0.0f ? s * C[i] : C[i];
      break;
    case GF_ACT_RELU6:
      for (size_t i = 0; i < mn; i++) C[i] = C[i] < 0.0f ? 0.0f : (C[i] > 6.0f ? 6.0f : C[i]);
      break;
    case GF_ACT_SIGMOID:
      for (size_t i = 0; i < mn; i++) C[i] = 1.0f / (1.0f + expf(-C[i]));
      break;
    case GF_ACT_ELU:
      for (size_t i = 0; i < mn; i++) C[i] = C[i] < 0.0f ? expf(C[i]) - 1.0f : C[i];
      break;
    case GF_ACT_TANH:
      tanh_inplace(C, mn);
      break;
    case GF_ACT_COUNT:
      break; /* refused above */
  }
  return NULL;
}

static napi_value set_threads(napi_env env, napi_callback_info info) {
  gf_call c;
  int32_t t = 1;
  if (!gf_args(env, info, "setThreads", 1, &c) || !gf_int32(&c, 0, "n", &t)) return NULL;
  if (t < 1) return gf_range_error(&c, "n must be at least 1, not %d", t);
  openblas_set_num_threads(t);
  return NULL;
}

static napi_value get_threads(napi_env env, napi_callback_info info) {
  gf_call c;
  if (!gf_args(env, info, "getThreads", 0, &c)) return NULL;
  return gf_number(env, openblas_get_num_threads());
}

static napi_value config(napi_env env, napi_callback_info info) {
  gf_call c;
  if (!gf_args(env, info, "config", 0, &c)) return NULL;
  const char *s = openblas_get_config();
  const char *core = openblas_get_corename();
  char buf[512];
  snprintf(buf, sizeof buf, "%s; core %s", s ? s : "?", core ? core : "?");
  napi_value r;
  GF_CHECK(napi_create_string_utf8(env, buf, NAPI_AUTO_LENGTH, &r));
  return r;
}


/*
 * The exact step: a whole phase of the seed's MLP GAN for the exact reduction (shared/fixed.ts),
 * chunk by chunk. Every chunk is computed on its own — its own products, with OpenBLAS on one
 * thread, whose results would otherwise depend on the shard around the chunk and on OpenBLAS's
 * thread count — so its float32 gradient is a property of the chunk. Chunks are spread over our
 * own threads instead, each adding its chunks' quanta into its own integers; integer sums do not
 * care which thread added what, so the result is the same bits for any thread count.
 *
 *   exactPhase(dims, genW, disW, real, z, segments, shifts, low, exIndex, exHigh, stats, slope) → status
 *     dims: Int32Array [phase (0 D, 1 G), n, chunk, threads, gen layers, dis layers, then
 *     (in, out, act) per layer, G's then D's]; genW, disW: the flat weights (manifest layout);
 *     real: the D phase's images (n × in), else null; z: n × G's inputs; segments, shifts: the
 *     phase network's tensors and quanta; low, exIndex, exHigh: the total as it travels (FixedWire:
 *     low words, and the elements that need their high word too; exIndex and exHigh have room for
 *     every element); stats: Float64Array(4) receiving Σ loss, Σ D(real), Σ D(G(z)) in quanta of
 *     2^−STATS_SHIFT and the number of wide elements; slope: LeakyReLU's.
 *     status: -1, or (tensor << 1) | (1 overflow, 0 NaN/±Inf), as fxAccumulate.
 */
#include <pthread.h>

#define ES_MAX_LAYERS 8
#define ES_MAX_THREADS 16
#define ES_STATS_SHIFT 24
#define ES_TWO32 4294967296.0
#define ES_ROUNDER 6755399441055744.0
#define ES_LIMIT 2251799813685248.0 /* 2^51 */

typedef struct {
  int in, out, act;
} es_layer;

typedef struct {
  int phase, n, chunk, threads, nl[2];
  es_layer layers[2][ES_MAX_LAYERS]; /* [0] G, [1] D */
  const float *w[2];                 /* flat weights */
  size_t woff[2][ES_MAX_LAYERS], boff[2][ES_MAX_LAYERS];
  const float *real, *z;
  const int32_t *segs, *shifts;
  size_t ntensors, size;
  float slope;
} es_job;

/* One thread's buffers and integers (its chunks' quanta: int64 holds any sum of MAX_CHUNKS of them). */
typedef struct {
  const es_job *job;
  int index;
  int64_t *acc;
  double stats[3];
  float *act[2][ES_MAX_LAYERS + 1]; /* layer outputs; [k][0] the input */
  float *dy, *dx, *scratch;
  int status;
} es_worker;

/* y[rows × out] = act(x·Wᵀ + b) for layer l of network k. */
static void es_dense(const es_job *j, int k, int l, const float *x, float *y, int rows) {
  const es_layer *L = &j->layers[k][l];
  const float *W = j->w[k] + j->woff[k][l], *b = j->w[k] + j->boff[k][l];
  for (int r = 0; r < rows; r++) memcpy(y + (size_t)r * L->out, b, (size_t)L->out * sizeof(float));
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, L->out, L->in, 1.0f, x, L->in, W, L->in, 1.0f, y, L->out);
  const size_t len = (size_t)rows * L->out;
  const float slope = j->slope;
  switch (L->act) {
    /* NaN stays NaN (as in PyTorch): a bad input must surface as a non-finite gradient. */
    case GF_ACT_RELU:
      for (size_t i = 0; i < len; i++) y[i] = y[i] < 0.0f ? 0.0f : y[i];
      break;
    case GF_ACT_LEAKYRELU:
      for (size_t i = 0; i < len; i++) y[i] = y[i] < 0.0f ? slope * y[i] : y[i];
      break;
    case GF_ACT_TANH:
      tanh_inplace(y, len);
      break;
    default:
      break;
  }
}

#if defined(__GNUC__) && !defined(__clang__) && (defined(__x86_64__) || defined(__i386__))
#define ES_SIMD_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define ES_SIMD_CLONES
#endif

typedef double v4d __attribute__((vector_size(32)));
typedef int64_t v4l __attribute__((vector_size(32)));

/*
 * acc[i] += round(values[i] · scale), four at a time; non-zero when some |value · scale| is not
 * below 2^51 (or NaN). round(x) for |x| < 2^51 is the bits of x + 1.5·2^52 less those of 1.5·2^52:
 * half to even, as shared/fixed.ts rounds.
 */
ES_SIMD_CLONES static int64_t es_quanta_range(int64_t *restrict acc, const float *restrict values, size_t len,
                                              double scale) {
  const v4d rounder = {ES_ROUNDER, ES_ROUNDER, ES_ROUNDER, ES_ROUNDER};
  const v4d limit = {ES_LIMIT, ES_LIMIT, ES_LIMIT, ES_LIMIT};
  const v4l abs_mask = {INT64_MAX, INT64_MAX, INT64_MAX, INT64_MAX};
  v4l rb, bad = {0, 0, 0, 0};
  memcpy(&rb, &rounder, sizeof rb);
  size_t i = 0;
  for (; i + 4 <= len; i += 4) {
    const v4d x = (v4d){values[i], values[i + 1], values[i + 2], values[i + 3]} * scale;
    v4l xb;
    memcpy(&xb, &x, sizeof xb);
    v4d ax;
    const v4l axb = xb & abs_mask;
    memcpy(&ax, &axb, sizeof ax);
    bad |= ~(ax < limit);
    const v4d r = x + rounder;
    v4l q, a;
    memcpy(&q, &r, sizeof q);
    memcpy(&a, acc + i, sizeof a);
    a += q - rb;
    memcpy(acc + i, &a, sizeof a);
  }
  int64_t any = bad[0] | bad[1] | bad[2] | bad[3];
  for (; i < len; i++) {
    const double x = (double)values[i] * scale;
    any |= !(fabs(x) < ES_LIMIT);
    const double r = x + ES_ROUNDER;
    int64_t q;
    memcpy(&q, &r, sizeof q);
    acc[i] += q - rb[0];
  }
  return any;
}

/* Adds tensor t's values into the thread's integers as quanta; false (status set) on a bad value. */
static bool es_quanta(es_worker *w, size_t t, const float *values) {
  const es_job *j = w->job;
  const size_t at = (size_t)j->segs[2 * t], len = (size_t)j->segs[2 * t + 1];
  const double scale = ldexp(1.0, j->shifts[t]);
  if (es_quanta_range(w->acc + at, values, len, scale) == 0) return true;
  for (size_t i = 0; i < len; i++) {
    const double x = (double)values[i] * scale;
    if (!(fabs(x) < ES_LIMIT)) {
      w->status = (int)(t << 1) | (isfinite(x) ? 1 : 0);
      break;
    }
  }
  return false;
}

/*
 * Backward through network k from ∂loss/∂output in w->dy (rows × last out), its outputs in
 * w->act[k]; with `grads`, each layer's weight and bias gradients go in as quanta (tensors 2l, 2l+1);
 * leaves ∂loss/∂input in w->dy when `want_dx`.
 */
static bool es_backward(es_worker *w, int k, int rows, bool grads, bool want_dx) {
  const es_job *j = w->job;
  for (int l = j->nl[k] - 1; l >= 0; l--) {
    const es_layer *L = &j->layers[k][l];
    const float *y = w->act[k][l + 1], *x = w->act[k][l];
    float *dpre = w->dy;
    const size_t len = (size_t)rows * L->out;
    const float slope = j->slope;
    switch (L->act) {
      case GF_ACT_RELU:
        for (size_t i = 0; i < len; i++) dpre[i] = y[i] > 0.0f ? dpre[i] : 0.0f;
        break;
      case GF_ACT_LEAKYRELU:
        for (size_t i = 0; i < len; i++) dpre[i] = y[i] > 0.0f ? dpre[i] : dpre[i] * slope;
        break;
      case GF_ACT_TANH:
        for (size_t i = 0; i < len; i++) dpre[i] *= 1.0f - y[i] * y[i];
        break;
      default:
        break;
    }
    if (grads) {
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, L->out, L->in, rows, 1.0f, dpre, L->out, x, L->in, 0.0f,
                  w->scratch, L->in);
      if (!es_quanta(w, (size_t)(2 * l), w->scratch)) return false;
      float *db = w->scratch;
      for (int o = 0; o < L->out; o++) db[o] = 0.0f;
      for (int r = 0; r < rows; r++)
        for (int o = 0; o < L->out; o++) db[o] += dpre[(size_t)r * L->out + o];
      if (!es_quanta(w, (size_t)(2 * l + 1), db)) return false;
    }
    if (l > 0 || want_dx) {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, L->in, L->out, 1.0f, dpre, L->out,
                  j->w[k] + j->woff[k][l], L->in, 0.0f, w->dx, L->in);
      float *t = w->dy;
      w->dy = w->dx;
      w->dx = t;
    }
  }
  return true;
}

static inline double es_softplus(double x) { return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)); }
static inline double es_sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }
static inline double es_quantum(double x) { return (x * 16777216.0 + ES_ROUNDER) - ES_ROUNDER; }

/* One chunk of `c` samples from sample s. */
static bool es_chunk(es_worker *w, int s, int c) {
  const es_job *j = w->job;
  const es_layer *G = j->layers[0], *D = j->layers[1];
  const int ng = j->nl[0], nd = j->nl[1];
  const int zin = G[0].in, img = D[0].in;
  memcpy(w->act[0][0], j->z + (size_t)s * zin, (size_t)c * zin * sizeof(float));
  for (int l = 0; l < ng; l++) es_dense(j, 0, l, w->act[0][l], w->act[0][l + 1], c);
  const float *fake = w->act[0][ng];
  const int rows = j->phase == 0 ? 2 * c : c;
  /* D's input: [real; fake] in the D phase, the fakes alone in the G phase. */
  if (j->phase == 0) {
    memcpy(w->act[1][0], j->real + (size_t)s * img, (size_t)c * img * sizeof(float));
    memcpy(w->act[1][0] + (size_t)c * img, fake, (size_t)c * img * sizeof(float));
  } else {
    memcpy(w->act[1][0], fake, (size_t)c * img * sizeof(float));
  }
  for (int l = 0; l < nd; l++) es_dense(j, 1, l, w->act[1][l], w->act[1][l + 1], rows);
  const float *logit = w->act[1][nd];
  double loss = 0, dreal = 0, dfake = 0;
  for (int r = 0; r < rows; r++) {
    const bool is_real = j->phase == 0 && r < c;
    const float label = j->phase == 1 || is_real ? 1.0f : 0.0f;
    const float p = 1.0f / (1.0f + expf(-logit[r]));
    w->dy[r] = p - label;
    const double l = logit[r];
    loss += label == 1.0f ? es_softplus(-l) : es_softplus(l);
    if (is_real) dreal += es_sigmoid(l);
    else dfake += es_sigmoid(l);
  }
  if (!(fabs(loss) < 1e8 && fabs(dreal) < 1e8 && fabs(dfake) < 1e8)) {
    w->status = 0;
    return false;
  }
  w->stats[0] += es_quantum(loss);
  w->stats[1] += es_quantum(dreal);
  w->stats[2] += es_quantum(dfake);
  if (j->phase == 0) return es_backward(w, 1, rows, true, false);
  if (!es_backward(w, 1, rows, false, true)) return false;
  /* G's output gradient is D's input gradient. */
  return es_backward(w, 0, c, true, false);
}

static void *es_run(void *arg) {
  es_worker *w = arg;
  const es_job *j = w->job;
  for (int s = w->index * j->chunk; s < j->n && w->status < 0; s += j->threads * j->chunk) {
    const int c = j->n - s < j->chunk ? j->n - s : j->chunk;
    if (!es_chunk(w, s, c)) break;
  }
  return NULL;
}

static napi_value exact_phase(napi_env env, napi_callback_info info) {
  gf_call c;
  gf_array dims = {0}, gw = {0}, dw = {0}, real = {0}, z = {0}, segs = {0}, shifts = {0}, low = {0}, exi = {0},
           exh = {0}, stats = {0};
  double slope = 0;
  if (!gf_args(env, info, "exactPhase", 12, &c) || !gf_typed(&c, 0, "dims", GF_I32, &dims) ||
      !gf_typed(&c, 1, "genW", GF_F32, &gw) || !gf_typed(&c, 2, "disW", GF_F32, &dw) ||
      !gf_typed_or_null(&c, 3, "real", GF_F32, &real) || !gf_typed(&c, 4, "z", GF_F32, &z) ||
      !gf_typed(&c, 5, "segments", GF_I32, &segs) || !gf_typed(&c, 6, "shifts", GF_I32, &shifts) ||
      !gf_typed(&c, 7, "low", GF_I32, &low) || !gf_typed(&c, 8, "exIndex", GF_U32, &exi) ||
      !gf_typed(&c, 9, "exHigh", GF_I32, &exh) || !gf_typed(&c, 10, "stats", GF_F64, &stats) ||
      !gf_double(&c, 11, "slope", &slope))
    return NULL;
  const int32_t *d = dims.data;
  es_job j = {0};
  if (dims.length < 6) return gf_range_error(&c, "dims must hold at least 6 numbers, not %zu", dims.length);
  j.phase = d[0], j.n = d[1], j.chunk = d[2], j.threads = d[3], j.nl[0] = d[4], j.nl[1] = d[5];
  if (j.phase < 0 || j.phase > 1 || j.n < 1 || j.chunk < 1 || j.threads < 1 || j.threads > ES_MAX_THREADS ||
      j.nl[0] < 1 || j.nl[0] > ES_MAX_LAYERS || j.nl[1] < 1 || j.nl[1] > ES_MAX_LAYERS ||
      dims.length != 6 + 3 * (size_t)(j.nl[0] + j.nl[1]))
    return gf_range_error(&c, "dims: phase %d, n %d, chunk %d, threads %d (1–%d), layers %d and %d (1–%d each)",
                          j.phase,
                          j.n, j.chunk, j.threads, ES_MAX_THREADS, j.nl[0], j.nl[1], ES_MAX_LAYERS);
  size_t widest = 0;
  const gf_array *weights[2] = {&gw, &dw};
  for (int k = 0, at = 6; k < 2; k++) {
    size_t off = 0;
    for (int l = 0; l < j.nl[k]; l++, at += 3) {
      es_layer *L = &j.layers[k][l];
      L->in = d[at], L->out = d[at + 1], L->act = d[at + 2];
      if (L->in < 1 || L->out < 1 || L->act < 0 || L->act >= GF_ACT_COUNT || (l > 0 && L->in != j.layers[k][l - 1].out))
        return gf_range_error(&c, "network %d layer %d: %d → %d, activation %d", k, l, L->in, L->out, L->act);
      j.woff[k][l] = off;
      off += (size_t)L->in * L->out;
      j.boff[k][l] = off;
      off += (size_t)L->out;
      widest = widest > (size_t)L->in ? widest : (size_t)L->in;
      widest = widest > (size_t)L->out ? widest : (size_t)L->out;
    }
    if (weights[k]->length != off)
      return gf_range_error(&c, "network %d has %zu weights, its layers need %zu", k, weights[k]->length, off);
    j.w[k] = weights[k]->data;
  }
  const es_layer *G = j.layers[0], *D = j.layers[1];
  if (G[j.nl[0] - 1].out != D[0].in || D[j.nl[1] - 1].out != 1)
    return gf_range_error(&c, "G's output (%d) must be D's input (%d) and D must output 1", G[j.nl[0] - 1].out,
                          D[0].in);
  if (z.length != (size_t)j.n * G[0].in || (j.phase == 0) != (real.data != NULL) ||
      (real.data != NULL && real.length != (size_t)j.n * D[0].in))
    return gf_range_error(&c, "z must hold n × %d values and real n × %d in the D phase only", G[0].in, D[0].in);
  j.size = low.length;
  const size_t trained = j.phase == 0 ? dw.length : gw.length;
  if (exi.length != j.size || exh.length != j.size || j.size != trained || stats.length != 4 ||
      segs.length != 2 * shifts.length ||
      shifts.length != 2 * (size_t)j.nl[j.phase == 0 ? 1 : 0])
    return gf_range_error(&c,
                          "low, exIndex and exHigh must hold the trained network's %zu values, stats 4, "
                          "one shift per tensor",
                          trained);
  const int32_t *sg = segs.data;
  for (size_t t = 0; t < shifts.length; t++)
    if (sg[2 * t] < 0 || sg[2 * t + 1] < 0 || (size_t)sg[2 * t] + (size_t)sg[2 * t + 1] > j.size)
      return gf_range_error(&c, "tensor %zu: [%d, +%d) is outside %zu values", t, sg[2 * t], sg[2 * t + 1], j.size);
  j.real = real.data, j.z = z.data, j.segs = segs.data, j.shifts = shifts.data, j.ntensors = shifts.length;
  j.slope = (float)slope;
  const int chunks = (j.n + j.chunk - 1) / j.chunk;
  const int nt = j.threads < chunks ? j.threads : chunks;
  j.threads = nt;

  es_worker ws[ES_MAX_THREADS];
  memset(ws, 0, sizeof ws);
  const size_t rows = 2 * (size_t)j.chunk;
  bool ok = true;
  for (int t = 0; t < nt && ok; t++) {
    es_worker *w = &ws[t];
    w->job = &j, w->index = t, w->status = -1;
    w->acc = calloc(j.size, sizeof(int64_t));
    for (int k = 0; k < 2; k++)
      for (int l = 0; l <= j.nl[k]; l++) w->act[k][l] = malloc(rows * widest * sizeof(float));
    w->dy = malloc(rows * widest * sizeof(float));
    w->dx = malloc(rows * widest * sizeof(float));
    w->scratch = malloc(widest * widest * sizeof(float));
    ok = w->acc && w->dy && w->dx && w->scratch;
    for (int k = 0; k < 2; k++)
      for (int l = 0; l <= j.nl[k]; l++) ok = ok && w->act[k][l];
  }
  pthread_t tid[ES_MAX_THREADS];
  bool started[ES_MAX_THREADS] = {false};
  /* One OpenBLAS thread per call: its results depend on its thread count. */
  const int blas_threads = openblas_get_num_threads();
  openblas_set_num_threads(1);
  if (ok) {
    for (int t = 1; t < nt; t++) started[t] = pthread_create(&tid[t], NULL, es_run, &ws[t]) == 0;
    es_run(&ws[0]);
    /* A thread that could not start: its chunks run here. */
    for (int t = 1; t < nt; t++) {
      if (started[t]) pthread_join(tid[t], NULL);
      else es_run(&ws[t]);
    }
  }
  openblas_set_num_threads(blas_threads);
  int status = -1;
  double *st = stats.data;
  st[0] = st[1] = st[2] = 0;
  /* The threads' integers into one (exact), then into hi · 2^32 + lo with 0 ≤ lo < 2^32. */
  int64_t *total = ws[0].acc;
  for (int t = 0; t < nt; t++) {
    es_worker *w = &ws[t];
    if (status < 0 && w->status >= 0) status = w->status;
    if (t > 0 && w->acc && total)
      for (size_t i = 0; i < j.size; i++) total[i] += w->acc[i];
    for (int q = 0; q < 3; q++) st[q] += w->stats[q];
  }
  if (ok) {
    /* The wire form: every element's low 32 bits; the high word apart where it is not the sign's. */
    int32_t *lw = low.data, *xh = exh.data;
    uint32_t *xi = exi.data;
    size_t k = 0;
    for (size_t i = 0; i < j.size; i++) {
      const int64_t v = total[i];
      lw[i] = (int32_t)(uint32_t)((uint64_t)v & 0xffffffffu);
      if (v != (int64_t)lw[i]) {
        xi[k] = (uint32_t)i;
        xh[k++] = (int32_t)(v >> 32);
      }
    }
    st[3] = (double)k;
  }
  for (int t = 0; t < nt; t++) {
    es_worker *w = &ws[t];
    free(w->acc);
    for (int k = 0; k < 2; k++)
      for (int l = 0; l <= j.nl[k]; l++) free(w->act[k][l]);
    free(w->dy);
    free(w->dx);
    free(w->scratch);
  }
  if (!ok) return gf_throw(env, GF_NAPI_ERROR, "exactPhase", "out of memory");
  return gf_number(env, status);
}

/* The entry points: one line each. */
static const napi_property_descriptor FUNCTIONS[] = {
    GF_FN("gemm", gemm),
    GF_FN("setThreads", set_threads),
    GF_FN("getThreads", get_threads),
    GF_FN("config", config),
    GF_FN("exactPhase", exact_phase),
};

NAPI_MODULE_INIT() { return gf_define(env, exports, GANFLEET_BLAS_ABI, FUNCTIONS, GF_COUNT(FUNCTIONS)); }
