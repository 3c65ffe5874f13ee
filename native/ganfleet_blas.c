/*
 * ganfleet's optional native kernel pack: single-precision GEMM through OpenBLAS, exposed to
 * Node through N-API (plain C, no node-addon-api needed). worker/kernels/ registers it with tfjs
 * as the BatchMatMul and _FusedMatMul kernels of the wasm or cpu backend.
 *
 *   gemm(transA, transB, m, n, k, a, b, c, bias, act, alpha)
 *     c[m×n] = act(op(a)·op(b) + bias), op(x) = xᵀ when trans is set; a, b, c are Float32Arrays
 *     (views into wasm memory or plain arrays), bias is null, a Float32Array of n values
 *     (broadcast over rows) or of 1 value; act: 0 linear, 1 relu, 2 leakyrelu(alpha),
 *     3 relu6, 4 sigmoid, 5 elu, 6 tanh (not one of tfjs's fused activations: ganfleet's train
 *     step asks for it only when these kernels are registered).
 *   setThreads(n) / getThreads(): OpenBLAS's thread count.
 *   config(): OpenBLAS's build description.
 */
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <node_api.h>
#include <cblas.h>

#define CHECK(call)                                                                \
  do {                                                                             \
    if ((call) != napi_ok) {                                                       \
      napi_throw_error(env, NULL, "ganfleet_blas: N-API call failed: " #call);    \
      return NULL;                                                                 \
    }                                                                              \
  } while (0)

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
  const v4f small = ((((-5.70498872745e-3f * z + 2.06390887954e-2f) * z - 5.37397155531e-2f) * z + 1.33314422036e-1f) * z -
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

static bool f32_array(napi_env env, napi_value v, float **data, size_t *len) {
  bool is_ta = false;
  if (napi_is_typedarray(env, v, &is_ta) != napi_ok || !is_ta) return false;
  napi_typedarray_type type;
  void *ptr = NULL;
  if (napi_get_typedarray_info(env, v, &type, len, &ptr, NULL, NULL) != napi_ok) return false;
  if (type != napi_float32_array) return false;
  *data = (float *)ptr;
  return true;
}

static napi_value gemm(napi_env env, napi_callback_info info) {
  size_t argc = 11;
  napi_value argv[11];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 11) {
    napi_throw_type_error(env, NULL, "gemm: expected 11 arguments");
    return NULL;
  }
  bool ta = false, tb = false;
  int32_t m = 0, n = 0, k = 0, act = 0;
  double alpha = 0;
  CHECK(napi_get_value_bool(env, argv[0], &ta));
  CHECK(napi_get_value_bool(env, argv[1], &tb));
  CHECK(napi_get_value_int32(env, argv[2], &m));
  CHECK(napi_get_value_int32(env, argv[3], &n));
  CHECK(napi_get_value_int32(env, argv[4], &k));
  float *a = NULL, *b = NULL, *c = NULL, *bias = NULL;
  size_t la = 0, lb = 0, lc = 0, lbias = 0;
  if (!f32_array(env, argv[5], &a, &la) || !f32_array(env, argv[6], &b, &lb) || !f32_array(env, argv[7], &c, &lc)) {
    napi_throw_type_error(env, NULL, "gemm: a, b and c must be Float32Arrays");
    return NULL;
  }
  napi_valuetype bt;
  CHECK(napi_typeof(env, argv[8], &bt));
  if (bt != napi_null && bt != napi_undefined && !f32_array(env, argv[8], &bias, &lbias)) {
    napi_throw_type_error(env, NULL, "gemm: bias must be null or a Float32Array");
    return NULL;
  }
  CHECK(napi_get_value_int32(env, argv[9], &act));
  CHECK(napi_get_value_double(env, argv[10], &alpha));
  if (m < 0 || n < 0 || k < 0 || la < (size_t)m * k || lb < (size_t)k * n || lc < (size_t)m * n ||
      (bias != NULL && lbias != (size_t)n && lbias != 1) || act < 0 || act > 6) {
    napi_throw_range_error(env, NULL, "gemm: sizes do not match");
    return NULL;
  }
  if (m == 0 || n == 0) return NULL;
  const size_t mn = (size_t)m * n;
  float beta = 0.0f;
  if (bias != NULL) {
    if (lbias == 1) {
      for (size_t i = 0; i < mn; i++) c[i] = bias[0];
    } else {
      for (int32_t i = 0; i < m; i++) memcpy(c + (size_t)i * n, bias, (size_t)n * sizeof(float));
    }
    beta = 1.0f;
  }
  if (k == 0) {
    if (bias == NULL) memset(c, 0, mn * sizeof(float));
  } else {
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, k, 1.0f,
                a, ta ? m : k, b, tb ? k : n, beta, c, n);
  }
  const float s = (float)alpha;
  switch (act) {
    case 1:
      for (size_t i = 0; i < mn; i++) c[i] = c[i] < 0.0f ? 0.0f : c[i];
      break;
    case 2:
      for (size_t i = 0; i < mn; i++) c[i] = c[i] < 0.0f ? s * c[i] : c[i];
      break;
    case 3:
      for (size_t i = 0; i < mn; i++) c[i] = c[i] < 0.0f ? 0.0f : (c[i] > 6.0f ? 6.0f : c[i]);
      break;
    case 4:
      for (size_t i = 0; i < mn; i++) c[i] = 1.0f / (1.0f + expf(-c[i]));
      break;
    case 5:
      for (size_t i = 0; i < mn; i++) c[i] = c[i] < 0.0f ? expf(c[i]) - 1.0f : c[i];
      break;
    case 6:
      tanh_inplace(c, mn);
      break;
    default:
      break;
  }
  return NULL;
}

static napi_value set_threads(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t t = 1;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1) {
    napi_throw_type_error(env, NULL, "setThreads: expected a count");
    return NULL;
  }
  CHECK(napi_get_value_int32(env, argv[0], &t));
  if (t < 1) t = 1;
  openblas_set_num_threads(t);
  return NULL;
}

static napi_value get_threads(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value r;
  CHECK(napi_create_int32(env, openblas_get_num_threads(), &r));
  return r;
}

static napi_value config(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value r;
  const char *s = openblas_get_config();
  const char *core = openblas_get_corename();
  char buf[512];
  snprintf(buf, sizeof buf, "%s; core %s", s ? s : "?", core ? core : "?");
  CHECK(napi_create_string_utf8(env, buf, NAPI_AUTO_LENGTH, &r));
  return r;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"gemm", NULL, gemm, NULL, NULL, NULL, napi_enumerable, NULL},
      {"setThreads", NULL, set_threads, NULL, NULL, NULL, napi_enumerable, NULL},
      {"getThreads", NULL, get_threads, NULL, NULL, NULL, napi_enumerable, NULL},
      {"config", NULL, config, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
