/*
 * The one convention every ganfleet addon follows at its N-API boundary, so that a wrong call
 * from JavaScript is a typed, matchable error and never a read past an array:
 *
 *   - an entry point starts with gf_args (exactly n arguments) and one gf_<kind> check per
 *     argument; each failure throws and returns false, so the entry point just returns NULL;
 *   - wrong count or type: a TypeError with code GF_ERR_ARG; a wrong length, size or code: a
 *     RangeError with GF_ERR_RANGE; a failed N-API call: an Error with GF_ERR_NAPI (the codes are
 *     mirrored in shared/native-addon.ts, where tests match on them);
 *   - constants travel as one typed array whose layout an enum in the addon's own header defines
 *     (mirrored by a `const` object in its TypeScript interface module), never as positional
 *     numbers;
 *   - the module ends with a table of GF_FN entries and NAPI_MODULE_INIT calling gf_define,
 *     which also exports `ABI`, the interface version the loader compares with the one its
 *     JavaScript was written for (shared/native-addon.ts).
 *
 * Everything here is static inline: each addon is its own shared object and includes this once.
 */
#ifndef GANFLEET_NAPI_H
#define GANFLEET_NAPI_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <node_api.h>

#define GF_STR_(x) #x
#define GF_STR(x) GF_STR_(x)
/* The addon's name (build.mjs passes -DNODE_GYP_MODULE_NAME=<name>), the prefix of every message. */
#define GF_ADDON GF_STR(NODE_GYP_MODULE_NAME)

#define GF_ERR_ARG "ERR_NATIVE_ARG"
#define GF_ERR_RANGE "ERR_NATIVE_RANGE"
#define GF_ERR_NAPI "ERR_NATIVE_NAPI"

#define GF_COUNT(array) (sizeof(array) / sizeof((array)[0]))

/* Typed array kinds an argument may be, as a bit mask (napi_typedarray_type values are 0–10). */
#define GF_KIND(t) (1u << (unsigned)(t))
#define GF_I8 GF_KIND(napi_int8_array)
#define GF_U8 GF_KIND(napi_uint8_array)
#define GF_U8C GF_KIND(napi_uint8_clamped_array)
#define GF_I16 GF_KIND(napi_int16_array)
#define GF_U16 GF_KIND(napi_uint16_array)
#define GF_I32 GF_KIND(napi_int32_array)
#define GF_U32 GF_KIND(napi_uint32_array)
#define GF_F32 GF_KIND(napi_float32_array)
#define GF_F64 GF_KIND(napi_float64_array)
#define GF_I64 GF_KIND(napi_bigint64_array)
#define GF_U64 GF_KIND(napi_biguint64_array)

/* Room for the longest argument list; an entry point with more must raise it. */
#define GF_MAX_ARGS 12

/* One call of an entry point: its name (for messages) and its arguments. */
typedef struct {
  napi_env env;
  const char *fn;
  size_t argc;
  napi_value argv[GF_MAX_ARGS];
} gf_call;

/* A typed array argument: its memory, element count and kind. */
typedef struct {
  void *data;
  size_t length;
  napi_typedarray_type kind;
} gf_array;

typedef enum { GF_TYPE_ERROR, GF_RANGE_ERROR, GF_NAPI_ERROR } gf_error_kind;

/*
 * Throws "<addon>.<fn>: <message>" as the typed error of `kind`, unless an exception is already
 * pending. Is NULL, so that an entry point can `return gf_throw(…);`.
 */
__attribute__((format(printf, 4, 5))) static inline napi_value gf_throw(napi_env env, gf_error_kind kind,
                                                                        const char *fn, const char *fmt, ...) {
  bool pending = false;
  if (napi_is_exception_pending(env, &pending) == napi_ok && pending) return NULL;
  char msg[320];
  int at = snprintf(msg, sizeof msg, "%s.%s: ", GF_ADDON, fn);
  if (at < 0 || (size_t)at >= sizeof msg) at = 0;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg + at, sizeof msg - (size_t)at, fmt, ap);
  va_end(ap);
  switch (kind) {
    case GF_TYPE_ERROR:
      napi_throw_type_error(env, GF_ERR_ARG, msg);
      break;
    case GF_RANGE_ERROR:
      napi_throw_range_error(env, GF_ERR_RANGE, msg);
      break;
    case GF_NAPI_ERROR:
      napi_throw_error(env, GF_ERR_NAPI, msg);
      break;
  }
  return NULL;
}

/* In an entry point (where `env` is in scope): a failed N-API call throws GF_ERR_NAPI and returns NULL. */
#define GF_CHECK(call)                                                      \
  do {                                                                      \
    if ((call) != napi_ok) {                                                \
      gf_throw(env, GF_NAPI_ERROR, __func__, "N-API call failed: %s", #call); \
      return NULL;                                                          \
    }                                                                       \
  } while (0)

static inline const char *gf_kind_name(napi_typedarray_type t) {
  switch (t) {
    case napi_int8_array: return "Int8Array";
    case napi_uint8_array: return "Uint8Array";
    case napi_uint8_clamped_array: return "Uint8ClampedArray";
    case napi_int16_array: return "Int16Array";
    case napi_uint16_array: return "Uint16Array";
    case napi_int32_array: return "Int32Array";
    case napi_uint32_array: return "Uint32Array";
    case napi_float32_array: return "Float32Array";
    case napi_float64_array: return "Float64Array";
    case napi_bigint64_array: return "BigInt64Array";
    case napi_biguint64_array: return "BigUint64Array";
    default: return "typed array"; /* kinds newer Node headers add */
  }
}

/* What a value is, for "must be X, not Y". */
static inline const char *gf_what(napi_env env, napi_value v) {
  bool is = false;
  napi_typedarray_type t;
  if (napi_is_typedarray(env, v, &is) == napi_ok && is &&
      napi_get_typedarray_info(env, v, &t, NULL, NULL, NULL, NULL) == napi_ok)
    return gf_kind_name(t);
  if (napi_is_array(env, v, &is) == napi_ok && is) return "array";
  napi_valuetype type;
  if (napi_typeof(env, v, &type) != napi_ok) return "?";
  switch (type) {
    case napi_undefined: return "undefined";
    case napi_null: return "null";
    case napi_boolean: return "boolean";
    case napi_number: return "number";
    case napi_string: return "string";
    case napi_symbol: return "symbol";
    case napi_object: return "object";
    case napi_function: return "function";
    case napi_external: return "external";
    case napi_bigint: return "bigint";
    default: return "?";
  }
}

/* "name" for an argument, "name[j]" for element j of an array argument (j < 0: the argument). */
static inline const char *gf_label(char *buf, size_t size, const char *name, int64_t j) {
  if (j < 0) return name;
  snprintf(buf, size, "%s[%lld]", name, (long long)j);
  return buf;
}

static inline bool gf_fail_type(gf_call *c, napi_value v, const char *name, int64_t j, const char *want) {
  char buf[64];
  gf_throw(c->env, GF_TYPE_ERROR, c->fn, "%s must be %s, got %s", gf_label(buf, sizeof buf, name, j), want,
           gf_what(c->env, v));
  return false;
}

/* The call's arguments into c; throws GF_ERR_ARG unless there are exactly n. */
static inline bool gf_args(napi_env env, napi_callback_info info, const char *fn, size_t n, gf_call *c) {
  c->env = env;
  c->fn = fn;
  c->argc = GF_MAX_ARGS;
  if (n > GF_MAX_ARGS || napi_get_cb_info(env, info, &c->argc, c->argv, NULL, NULL) != napi_ok) {
    gf_throw(env, GF_NAPI_ERROR, fn, "cannot read the arguments");
    return false;
  }
  if (c->argc != n) {
    gf_throw(env, GF_TYPE_ERROR, fn, "takes %zu argument%s, got %zu", n, n == 1 ? "" : "s", c->argc);
    return false;
  }
  return true;
}

static inline bool gf_typed_value(gf_call *c, napi_value v, const char *name, int64_t j, unsigned kinds,
                                  gf_array *out) {
  bool is = false;
  napi_typedarray_type t = napi_int8_array;
  if (napi_is_typedarray(c->env, v, &is) != napi_ok || !is ||
      napi_get_typedarray_info(c->env, v, &t, &out->length, &out->data, NULL, NULL) != napi_ok ||
      (unsigned)t >= 32 || (kinds & GF_KIND(t)) == 0) {
    char want[160] = "a ";
    size_t at = 2;
    for (unsigned k = 0; k < 32; k++) {
      if ((kinds & (1u << k)) == 0) continue;
      const int w = snprintf(want + at, sizeof want - at, "%s%s", at > 2 ? " or " : "",
                             gf_kind_name((napi_typedarray_type)k));
      if (w < 0 || (size_t)w >= sizeof want - at) break;
      at += (size_t)w;
    }
    return gf_fail_type(c, v, name, j, want);
  }
  out->kind = t;
  return true;
}

/* Argument i: a typed array of one of `kinds` (GF_F32 | GF_U16, …). */
static inline bool gf_typed(gf_call *c, size_t i, const char *name, unsigned kinds, gf_array *out) {
  return gf_typed_value(c, c->argv[i], name, -1, kinds, out);
}

/* Argument i: null (out->data NULL, length 0) or a typed array of one of `kinds`. */
static inline bool gf_typed_or_null(gf_call *c, size_t i, const char *name, unsigned kinds, gf_array *out) {
  napi_valuetype t;
  if (napi_typeof(c->env, c->argv[i], &t) == napi_ok && t == napi_null) {
    *out = (gf_array){NULL, 0, napi_int8_array};
    return true;
  }
  return gf_typed_value(c, c->argv[i], name, -1, kinds, out);
}

static inline bool gf_int32_value(gf_call *c, napi_value v, const char *name, int64_t j, int32_t *out) {
  double d;
  if (napi_get_value_double(c->env, v, &d) != napi_ok) return gf_fail_type(c, v, name, j, "an integer");
  if (!(d >= INT32_MIN && d <= INT32_MAX) || d != (double)(int32_t)d) {
    char buf[64];
    gf_throw(c->env, GF_RANGE_ERROR, c->fn, "%s must be an int32, not %g", gf_label(buf, sizeof buf, name, j), d);
    return false;
  }
  *out = (int32_t)d;
  return true;
}

/* Argument i: a number that is an integer in int32's range. */
static inline bool gf_int32(gf_call *c, size_t i, const char *name, int32_t *out) {
  return gf_int32_value(c, c->argv[i], name, -1, out);
}

/* Argument i: a number. */
static inline bool gf_double(gf_call *c, size_t i, const char *name, double *out) {
  if (napi_get_value_double(c->env, c->argv[i], out) != napi_ok)
    return gf_fail_type(c, c->argv[i], name, -1, "a number");
  return true;
}

/* Argument i: a boolean. */
static inline bool gf_bool(gf_call *c, size_t i, const char *name, bool *out) {
  if (napi_get_value_bool(c->env, c->argv[i], out) != napi_ok)
    return gf_fail_type(c, c->argv[i], name, -1, "a boolean");
  return true;
}

/* Argument i: a bigint that fits int64 without loss. */
static inline bool gf_bigint64(gf_call *c, size_t i, const char *name, int64_t *out) {
  bool lossless = false;
  if (napi_get_value_bigint_int64(c->env, c->argv[i], out, &lossless) != napi_ok)
    return gf_fail_type(c, c->argv[i], name, -1, "a bigint");
  if (!lossless) {
    gf_throw(c->env, GF_RANGE_ERROR, c->fn, "%s must fit in int64", name);
    return false;
  }
  return true;
}

/* Argument i: a string of at most size − 1 bytes (UTF-8), into buf. */
static inline bool gf_string(gf_call *c, size_t i, const char *name, char *buf, size_t size) {
  size_t len = 0;
  if (napi_get_value_string_utf8(c->env, c->argv[i], NULL, 0, &len) != napi_ok)
    return gf_fail_type(c, c->argv[i], name, -1, "a string");
  if (len + 1 > size) {
    gf_throw(c->env, GF_RANGE_ERROR, c->fn, "%s is %zu bytes long, at most %zu allowed", name, len, size - 1);
    return false;
  }
  return napi_get_value_string_utf8(c->env, c->argv[i], buf, size, &len) == napi_ok;
}

/* Argument i: a JavaScript array; its length into *length. */
static inline bool gf_list(gf_call *c, size_t i, const char *name, uint32_t *length) {
  bool is = false;
  if (napi_is_array(c->env, c->argv[i], &is) != napi_ok || !is ||
      napi_get_array_length(c->env, c->argv[i], length) != napi_ok)
    return gf_fail_type(c, c->argv[i], name, -1, "an array");
  return true;
}

static inline bool gf_element(gf_call *c, size_t i, uint32_t j, napi_value *out) {
  if (napi_get_element(c->env, c->argv[i], j, out) == napi_ok) return true;
  gf_throw(c->env, GF_NAPI_ERROR, c->fn, "cannot read element %u of argument %zu", j, i);
  return false;
}

/* Element j of array argument i (see gf_list): a typed array of one of `kinds`. */
static inline bool gf_typed_at(gf_call *c, size_t i, uint32_t j, const char *name, unsigned kinds, gf_array *out) {
  napi_value v;
  return gf_element(c, i, j, &v) && gf_typed_value(c, v, name, j, kinds, out);
}

/* Element j of array argument i (see gf_list): an integer in int32's range. */
static inline bool gf_int32_at(gf_call *c, size_t i, uint32_t j, const char *name, int32_t *out) {
  napi_value v;
  return gf_element(c, i, j, &v) && gf_int32_value(c, v, name, j, out);
}

/* Throws GF_ERR_RANGE for call c: a length, size or code the entry point does not take. Is NULL. */
#define gf_range_error(c, ...) gf_throw((c)->env, GF_RANGE_ERROR, (c)->fn, __VA_ARGS__)

/* Return values: NULL (an exception is then pending) when N-API fails. */
static inline napi_value gf_boolean(napi_env env, bool b) {
  napi_value r;
  return napi_get_boolean(env, b, &r) == napi_ok ? r : NULL;
}

static inline napi_value gf_number(napi_env env, double x) {
  napi_value r;
  return napi_create_double(env, x, &r) == napi_ok ? r : NULL;
}

/* One entry point of the module table. */
#define GF_FN(js_name, c_fn) {js_name, NULL, c_fn, NULL, NULL, NULL, napi_enumerable, NULL}

/* The module's exports: the read-only number `ABI` and the entry points in fns. */
static inline napi_value gf_define(napi_env env, napi_value exports, int32_t abi, const napi_property_descriptor *fns,
                                   size_t n) {
  napi_value v;
  if (napi_create_int32(env, abi, &v) != napi_ok) return NULL;
  const napi_property_descriptor abi_prop = {"ABI", NULL, NULL, NULL, NULL, v, napi_enumerable, NULL};
  if (napi_define_properties(env, exports, 1, &abi_prop) != napi_ok) return NULL;
  if (napi_define_properties(env, exports, n, fns) != napi_ok) return NULL;
  return exports;
}

#endif
