/*
 * vector.c - compact float vectors (`gemini.vector` userdata: n float32 values in one block) and
 * core.decode_embeddings, which decodes an embedding reply (embeddings.c) straight into them.
 *
 *   local v = core.vector{ 0.25, -1, 3 }      -- from a sequence of numbers (#t of them)
 *   #v, v[i]                                  -- 1-based; numbers (float32 widened); nil outside 1..#v
 *   v:dot(w), v:cosine(w), v:norm()           -- sums in double; w a vector of the same length
 *   v:totable()                               -- a fresh table of numbers
 *   tostring(v)                               -- "gemini.vector(768)"
 *   core.decode_embeddings(body)              -- { embedding = { value = v } }
 *                                             -- or { embeddings = { { value = v }, ... } }; or nil, message
 * Vectors are read-only (assignment raises). 768 floats take about 3 KiB, a table of them 12-16 KiB.
 */
#include <float.h>
#include <stdint.h>
#include <string.h>

#include "gemini.h"
#include "embeddings.h"

#define GM_VECTOR_MT "gemini.vector"

typedef struct gm_vector {
  size_t n;
  float v[];
} gm_vector;

/* A userdata without user values where Lua allows it (5.4 gives lua_newuserdata one). */
#if LUA_VERSION_NUM >= 504
#define vec_newuserdata(L, sz) lua_newuserdatauv((L), (sz), 0)
#else
#define vec_newuserdata(L, sz) lua_newuserdata((L), (sz))
#endif

/* sqrt without libm (the core links none): Newton from an exponent-halved guess; x >= 0. */
static double vec_sqrt(double x) {
  double g = 1;
  int k;
  if (!(x > 0)) return 0;
  if (x - x != 0) return x;   /* infinity */
  while (g * g * 4 < x) g *= 2;
  while (g * g > x * 4) g /= 2;
  for (k = 0; k < 8; k++) g = 0.5 * (g + x / g);
  return g;
}

static gm_vector *vec_new(lua_State *L, size_t n) {
  gm_vector *v;
  if (n > (SIZE_MAX - sizeof(gm_vector)) / sizeof(float) || n > (size_t)INT32_MAX)
    luaL_error(L, "gemini.vector: too many values (%lu)", (unsigned long)n);
  v = (gm_vector *)vec_newuserdata(L, sizeof(gm_vector) + n * sizeof(float));
  v->n = n;
  luaL_getmetatable(L, GM_VECTOR_MT);
  lua_setmetatable(L, -2);
  return v;
}

static gm_vector *vec_check(lua_State *L, int idx) {
  return (gm_vector *)luaL_checkudata(L, idx, GM_VECTOR_MT);
}

static int vec_notvector(lua_State *L) {
  return luaL_error(L, "gemini.vector expected");
}

/*** @module gemini.core */

/***
 * A compact float vector from a sequence of numbers (`#t` values, stored as float32).
 * @function vector
 * @tparam {number,...} t
 * @treturn userdata gemini.vector
 */
static int l_vector(lua_State *L) {
  size_t n, i;
  gm_vector *v;
  luaL_checktype(L, 1, LUA_TTABLE);
  n = gm_rawlen(L, 1);
  v = vec_new(L, n);
  for (i = 0; i < n; i++) {
    lua_Number x;
    lua_rawgeti(L, 1, (int)(i + 1));
    if (lua_type(L, -1) != LUA_TNUMBER)
      return luaL_error(L, "bad argument #1 to 'vector' (item %d is a %s, number expected)", (int)(i + 1),
                        luaL_typename(L, -1));
    x = lua_tonumber(L, -1);
    lua_pop(L, 1);
    if ((x > FLT_MAX || x < -FLT_MAX) && x - x == 0)
      return luaL_error(L, "bad argument #1 to 'vector' (item %d is out of the float32 range)", (int)(i + 1));
    v->v[i] = (float)x;
  }
  return 1;
}

/* upvalues: 1 the methods table, 2 the metatable (checked here without a registry lookup) */
static int vec_index(lua_State *L) {
  gm_vector *v = (gm_vector *)lua_touserdata(L, 1);
  int t = lua_type(L, 2);
  if (v == NULL || !lua_getmetatable(L, 1) || !lua_rawequal(L, -1, lua_upvalueindex(2)))
    return vec_notvector(L);
  lua_pop(L, 1);
  if (t == LUA_TNUMBER) {
    lua_Number x = lua_tonumber(L, 2);
    if (x >= 1 && x <= (lua_Number)v->n) {
      size_t i = (size_t)x;
      if ((lua_Number)i == x) {
        lua_pushnumber(L, (lua_Number)v->v[i - 1]);
        return 1;
      }
    }
    lua_pushnil(L);
    return 1;
  }
  if (t == LUA_TSTRING) {
    lua_pushvalue(L, 2);
    lua_rawget(L, lua_upvalueindex(1));
    return 1;
  }
  lua_pushnil(L);
  return 1;
}

static int vec_newindex(lua_State *L) {
  return luaL_error(L, "gemini.vector is read-only (use v:totable() for a mutable copy)");
}

static int vec_len(lua_State *L) {
  gm_vector *v = vec_check(L, 1);
  lua_pushinteger(L, (lua_Integer)v->n);
  return 1;
}

static int vec_tostring(lua_State *L) {
  gm_vector *v = vec_check(L, 1);
  lua_pushfstring(L, "gemini.vector(%d)", (int)v->n);
  return 1;
}

static double vec_dot2(const gm_vector *a, const gm_vector *b) {
  double s = 0;
  size_t i;
  for (i = 0; i < a->n; i++) s += (double)a->v[i] * (double)b->v[i];
  return s;
}

static void vec_pair(lua_State *L, gm_vector **a, gm_vector **b) {
  *a = vec_check(L, 1);
  *b = vec_check(L, 2);
  if ((*a)->n != (*b)->n)
    luaL_error(L, "gemini.vector: lengths differ (%d and %d)", (int)(*a)->n, (int)(*b)->n);
}

/***
 * Dot product (summed in double).
 * @function vector:dot
 * @tparam userdata w a gemini.vector of the same length
 * @treturn number
 */
static int vec_dot(lua_State *L) {
  gm_vector *a, *b;
  vec_pair(L, &a, &b);
  lua_pushnumber(L, (lua_Number)vec_dot2(a, b));
  return 1;
}

/***
 * Cosine similarity in [-1, 1]; 0 when either vector is all zeros.
 * @function vector:cosine
 * @tparam userdata w a gemini.vector of the same length
 * @treturn number
 */
static int vec_cosine(lua_State *L) {
  gm_vector *a, *b;
  double na, nb;
  vec_pair(L, &a, &b);
  na = vec_sqrt(vec_dot2(a, a));
  nb = vec_sqrt(vec_dot2(b, b));
  lua_pushnumber(L, na == 0 || nb == 0 ? 0 : (lua_Number)(vec_dot2(a, b) / (na * nb)));
  return 1;
}

/***
 * Euclidean norm.
 * @function vector:norm
 * @treturn number
 */
static int vec_norm(lua_State *L) {
  gm_vector *a = vec_check(L, 1);
  lua_pushnumber(L, (lua_Number)vec_sqrt(vec_dot2(a, a)));
  return 1;
}

/***
 * The values as a new table of numbers.
 * @function vector:totable
 * @treturn {number,...}
 */
static int vec_totable(lua_State *L) {
  gm_vector *a = vec_check(L, 1);
  size_t i;
  lua_createtable(L, (int)a->n, 0);
  for (i = 0; i < a->n; i++) {
    lua_pushnumber(L, (lua_Number)a->v[i]);
    lua_rawseti(L, -2, (int)(i + 1));
  }
  return 1;
}

static gm_vector *vec_from(lua_State *L, const gm_emb *r, size_t k) {
  const gm_emb_vec *e = &r->vecs[k];
  gm_vector *v = vec_new(L, e->len);
  if (e->len > 0) memcpy(v->v, r->vals + e->off, e->len * sizeof(float));
  return v;
}

/* { value = <vector> } on the stack */
static void push_embedding(lua_State *L, const gm_emb *r, size_t k) {
  lua_createtable(L, 0, 1);
  vec_from(L, r, k);
  lua_setfield(L, -2, "value");
}

/* Runs under lua_pcall: builds the result table from a decoded reply (light userdata), so that a
 * memory error cannot leak the C buffers. */
static int build_result(lua_State *L) {
  const gm_emb *r = (const gm_emb *)lua_touserdata(L, 1);
  lua_createtable(L, 0, 1);
  if (r->has_single) {
    push_embedding(L, r, r->single);
    lua_setfield(L, -2, "embedding");
  }
  if (r->has_batch) {
    size_t i;
    if (r->batch_count > (size_t)INT32_MAX) return luaL_error(L, "gemini.vector: too many embeddings");
    lua_createtable(L, (int)r->batch_count, 0);
    for (i = 0; i < r->batch_count; i++) {
      push_embedding(L, r, r->batch_first + i);
      lua_rawseti(L, -2, (int)(i + 1));
    }
    lua_setfield(L, -2, "embeddings");
  }
  return 1;
}

/***
 * Decodes an embedText or batchEmbedText reply straight into vectors. Accepts exactly
 * `{"embedding":{"value":[...]}}` and `{"embeddings":[{"value":[...]},...]}` (any whitespace and key
 * order; unknown keys skipped and dropped); anything else returns nil and a message, so the caller can
 * fall back to a general JSON decoder.
 * @function decode_embeddings
 * @tparam string body
 * @treturn[1] table `{ embedding = { value = v } }` or `{ embeddings = { { value = v }, ... } }`
 * @treturn[2] nil
 * @treturn[2] string what did not fit, with a byte offset
 */
static int l_decode_embeddings(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  gm_emb r;
  int rc;
  lua_pushcfunction(L, build_result);          /* allocate before the C buffers exist */
  if (gm_emb_decode(&r, s, n) != 0) {
    gm_emb_free(&r);
    lua_pushnil(L);
    lua_pushfstring(L, "not an embedding reply: %s", r.err);
    return 2;
  }
  lua_pushlightuserdata(L, &r);
  rc = lua_pcall(L, 1, 1, 0);
  gm_emb_free(&r);
  if (rc != 0) return lua_error(L);
  return 1;
}

static const luaL_Reg vec_methods[] = {
  {"dot", vec_dot},
  {"cosine", vec_cosine},
  {"norm", vec_norm},
  {"totable", vec_totable},
  {NULL, NULL}
};

void gm_vector_register(lua_State *L) {
  /* the module table is on top */
  if (luaL_newmetatable(L, GM_VECTOR_MT)) {
    gm_newlib(L, vec_methods);
    lua_pushvalue(L, -2);
    lua_pushcclosure(L, vec_index, 2);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, vec_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushcfunction(L, vec_len);
    lua_setfield(L, -2, "__len");
    lua_pushcfunction(L, vec_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushliteral(L, GM_VECTOR_MT);
    lua_setfield(L, -2, "__name");
    lua_pushliteral(L, "gemini.vector");
    lua_setfield(L, -2, "__metatable");
  }
  lua_pop(L, 1);
  lua_pushcfunction(L, l_vector);
  lua_setfield(L, -2, "vector");
  lua_pushcfunction(L, l_decode_embeddings);
  lua_setfield(L, -2, "decode_embeddings");
}
