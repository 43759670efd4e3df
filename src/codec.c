/*
 * codec.c - schema-driven walks over decoded Lua tables, for gemini.json (no JSON parsing here: cjson,
 * vim.json or a user codec still turns text into tables).
 *
 *   local plan = core.codec_plan(desc)        -- compiled once from json.lua's description of gemini.schema
 *   plan:check(name, t, nulls, trust)         -- "clean" | "doubt" | "misfit" (reply check + decode, one pass)
 *   plan:encode(name, value, nulls, exclude)  -- JSON text, or false at anything doubtful
 *
 * Both are the fast paths of json.lua (fast_ok + decode_needed, and fast_fields), with the same results;
 * whatever they are unsure of goes back to json.lua's Lua walks, which raise or name the precise error.
 * A plan is one userdata block (messages and fields, no pointers to free) plus a uservalue table holding
 * the Lua strings and key lookup tables it refers to; the encoder's growing buffer is Lua userdata in a
 * fixed stack slot, so a memory error (a longjmp) leaves nothing to free.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gemini.h"

#define CD_MT "gemini.core.codec_plan"
#define CD_MAXDEPTH 64       /* the Lua walks' limit: deeper messages are not checked (a doubt) */
#define CD_MAXKEYS 64        /* fields present in one encoded object beyond this: a doubt */

/* field kinds; the names are what json.lua's description uses */
enum { K_MSG, K_INT, K_INT64, K_FLOAT, K_STRING, K_FMASK, K_ENUM, K_BOOL, K_ANY, K_OTHER };
static const char *const kind_names[] = { "message", "int", "int64", "float", "string", "fieldmask", "enum",
                                          "bool", "any", "other", NULL };

/* uservalue slots */
enum { UV_NAMES = 1, UV_LOOKUPS, UV_STRINGS, UV_ENUMS, UV_NULL, UV_PRE, UV_N = UV_PRE };

typedef struct cd_field {
  const char *pre;         /* "\"json\":" (a Lua string kept alive by the uservalue) */
  size_t prelen;
  int kind, repeated;
  int msg;                 /* message index, or -1 (not a message, or not in the plan) */
  int en;                  /* 1-based enum index (names checked), or 0 */
  int group;               /* oneof: 1 + the message-local index of its first member, or 0 */
  int twins;               /* json name differs from the proto name */
} cd_field;

typedef struct cd_msg {
  int first, n;            /* fields[first .. first+n-1] in schema order */
  int ambiguous;           /* a json name of one field is the proto name of another: the encoder doubts */
} cd_msg;

typedef struct cd_plan {
  int nmsg, nfield, closed;
  cd_field *fields;        /* inside this block */
  cd_msg *msgs;
} cd_plan;

/* ---------------------------------------------------------------------------------------------- */
/* helpers shared by both walks */

/* t[i] pushed, its type returned (5.3+ lua_rawgeti returns it: one API call less per array item) */
#if LUA_VERSION_NUM >= 503
#define rawgeti_type(L, idx, i) lua_rawgeti((L), (idx), (lua_Integer)(i))
#else
static int rawgeti_type(lua_State *L, int idx, size_t i) {
  lua_rawgeti(L, idx, (int)i);
  return lua_type(L, -1);
}
#endif

static cd_plan *cd_self(lua_State *L) {
  cd_plan *p = (cd_plan *)lua_touserdata(L, 1);
  if (p == NULL || !lua_getmetatable(L, 1) || !lua_rawequal(L, -1, lua_upvalueindex(1)))
    luaL_error(L, "gemini.core: codec plan expected");
  lua_pop(L, 1);
  if (p->closed) luaL_error(L, "gemini.core: codec plan is closed");
  return p;
}

/* the field of a lookup-table value (NULL if out of range: the uservalue is reachable through the debug
   library, so its contents are checked where they index C memory) */
static const cd_field *field_at(const cd_plan *p, lua_Integer g) {
  return g >= 0 && g < p->nfield ? &p->fields[g] : NULL;
}

static int has_mt(lua_State *L, int idx) {
  if (!lua_getmetatable(L, idx)) return 0;
  lua_pop(L, 1);
  return 1;
}

/* Lua's `v == floor(v)`: true for infinities, false for NaN (no libm: the core links none) */
static int integral(lua_Number d) {
  if (d != d) return 0;
  if (d >= 4503599627370496.0 || d <= -4503599627370496.0) return 1;
  return d == (lua_Number)(long long)d;
}

static int finite(lua_Number d) {
  return d == d && d - d == 0;
}

/* the string matches ^%-?%d+$ */
static int int_text(const char *s, size_t n) {
  size_t i = (n > 0 && s[0] == '-') ? 1 : 0;
  if (i == n) return 0;
  for (; i < n; i++)
    if (s[i] < '0' || s[i] > '9') return 0;
  return 1;
}

/* ---------------------------------------------------------------------------------------------- */
/* reply check + decode (json.lua fast_ok and decode_needed in one pass) */

typedef struct walk {
  lua_State *L;
  const cd_plan *p;
  int lookups;             /* stack index of the lookup tables (message index + 1 -> { key = field }) */
  int nulls;               /* stack index of the codec null (nil: none) */
  int trust;               /* arrays have only the keys 1..n (a table fresh from cjson / vim.json) */
  int dirty;               /* something only decode_fields handles: a null, an Any, an unknown object... */
  int deep;                /* a subtree went past CD_MAXDEPTH: the rest of the walk is skipped (decode_fields,
                              which ends on cycles, takes the whole reply), so a table reachable along many
                              paths (a cycle through a recursive message) costs no more than one path */
} walk;

/* `nulls ~= nil and v == nulls`, with __eq where Lua would use it */
static int w_isnull(walk *w, int idx) {
  lua_State *L = w->L;
  int t;
  if (lua_isnil(L, w->nulls)) return 0;
  if (lua_rawequal(L, idx, w->nulls)) return 1;
  t = lua_type(L, idx);
  if (t != lua_type(L, w->nulls) || (t != LUA_TTABLE && t != LUA_TUSERDATA)) return 0;
#if LUA_VERSION_NUM >= 502
  return lua_compare(L, idx, w->nulls, LUA_OPEQ);
#else
  return lua_equal(L, idx, w->nulls);
#endif
}

static int is_float_word(const char *s, size_t n) {
  return (n == 3 && memcmp(s, "NaN", 3) == 0) || (n == 8 && memcmp(s, "Infinity", 8) == 0) ||
         (n == 9 && memcmp(s, "-Infinity", 9) == 0);
}

/* An integer-typed value at idx: 0 when it does not fit, 1 when it fits as it is, 2 when it fits and its
 * decoded form is pushed (decode_scalar: numeric strings through tonumber, then math.tointeger where it
 * exists, so 3.0 becomes 3 on 5.3+) */
static int int_value(lua_State *L, int idx) {
  int t = lua_type(L, idx);
  if (t == LUA_TNUMBER) {
#if LUA_VERSION_NUM >= 503
    int ok;
    lua_Integer n;
    if (lua_isinteger(L, idx)) return 1;
    if (!integral(lua_tonumber(L, idx))) return 0;
    n = lua_tointegerx(L, idx, &ok);
    if (ok) {
      lua_pushinteger(L, n);
      return 2;
    }
    return 1;
#else
    return integral(lua_tonumber(L, idx));
#endif
  }
  if (t == LUA_TSTRING) {
    size_t n;
    const char *s = lua_tolstring(L, idx, &n);
    if (!int_text(s, n)) return 0;
#if LUA_VERSION_NUM >= 503
    if (lua_stringtonumber(L, s) != n + 1) return 1;   /* cannot happen for ^-?%d+$; keep the text */
    if (!lua_isinteger(L, -1)) {
      int ok;
      lua_Integer k = lua_tointegerx(L, -1, &ok);
      if (ok) {
        lua_pop(L, 1);
        lua_pushinteger(L, k);
      }
    }
#else
    lua_pushnumber(L, lua_tonumber(L, idx));
#endif
    return 2;
  }
  return 0;
}

/* a scalar of kind k (not a message) fits: fast_ok's quick tests and scalar_ok */
static int scalar_fits(lua_State *L, int kind, int idx) {
  int t = lua_type(L, idx);
  switch (kind) {
  case K_FLOAT:
    if (t == LUA_TNUMBER) return 1;
    if (t == LUA_TSTRING) {
      size_t n;
      const char *s = lua_tolstring(L, idx, &n);
      return is_float_word(s, n);
    }
    return 0;
  case K_STRING: case K_FMASK:
    return t == LUA_TSTRING;
  case K_ENUM:
    return t == LUA_TSTRING || t == LUA_TNUMBER;
  case K_BOOL:
    return t == LUA_TBOOLEAN;
  default:
    return 1;
  }
}

static int check_msg(walk *w, int msg, int tidx, int depth);

/* a repeated field's value at vidx (a table); 1 fits */
static int check_list(walk *w, const cd_field *f, int vidx, int depth) {
  lua_State *L = w->L;
  size_t n, i;
  if (has_mt(L, vidx)) return 0;          /* #, [] and pairs could run metamethods: Lua decides */
  n = gm_rawlen(L, vidx);
  if (n > 0x7fffffff) return 0;
  if (!w->trust || n == 0) {
    lua_pushnil(L);
    while (lua_next(L, vidx) != 0) {
      if (lua_type(L, -2) != LUA_TNUMBER) {
        lua_pop(L, 2);
        return 0;
      }
      lua_pop(L, 1);
    }
  }
  switch (f->kind) {
  case K_OTHER:
    return 1;
  case K_ANY:
    w->dirty = 1;
    return 1;
  case K_MSG:
    for (i = 1; i <= n; i++) {
      int ok = rawgeti_type(L, vidx, i) == LUA_TTABLE && check_msg(w, f->msg, lua_gettop(L), depth + 1);
      lua_pop(L, 1);
      if (!ok) return 0;
    }
    return 1;
  case K_INT: case K_INT64:
    for (i = 1; i <= n; i++) {
      int r;
      lua_rawgeti(L, vidx, (int)i);
      r = int_value(L, lua_gettop(L));
      if (r == 0) {
        lua_pop(L, 1);
        return 0;
      }
      if (r == 2) {
        lua_rawseti(L, vidx, (int)i);
      }
      lua_pop(L, 1);
    }
    return 1;
  case K_FLOAT:   /* the embedding vectors: 76,800 numbers in a batchEmbedText reply */
    for (i = 1; i <= n; i++) {
      int ok = rawgeti_type(L, vidx, i) == LUA_TNUMBER || scalar_fits(L, K_FLOAT, -1);
      lua_pop(L, 1);
      if (!ok) return 0;
    }
    return 1;
  default:
    for (i = 1; i <= n; i++) {
      int ok;
      lua_rawgeti(L, vidx, (int)i);
      ok = scalar_fits(L, f->kind, -1);
      lua_pop(L, 1);
      if (!ok) return 0;
    }
    return 1;
  }
}

/* fast_ok: 1 when the table at tidx fits message msg (converting its integers in place), 0 at a misfit or
 * anything the Lua walk must judge (a metatable) */
static int check_msg(walk *w, int msg, int tidx, int depth) {
  lua_State *L = w->L;
  const cd_plan *p = w->p;
  int lk;
  if (w->deep) return 1;
  if (msg < 0 || depth > CD_MAXDEPTH) {
    w->dirty = 1;
    if (msg >= 0) w->deep = 1;
    return 1;
  }
  if (has_mt(L, tidx)) return 0;
  luaL_checkstack(L, 8, "gemini.core: codec walk");
  lua_rawgeti(L, w->lookups, msg + 1);
  lk = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, tidx) != 0) {
    int vidx = lk + 2;
    const cd_field *f = NULL;
    if (w_isnull(w, vidx)) {
      w->dirty = 1;
      lua_pop(L, 1);
      continue;
    }
    if (lua_type(L, lk + 1) == LUA_TSTRING) {
      lua_pushvalue(L, lk + 1);
      lua_rawget(L, lk);
      if (lua_type(L, -1) == LUA_TNUMBER) f = field_at(p, lua_tointeger(L, -1));
      lua_pop(L, 1);
    }
    if (f == NULL) {
      if (lua_type(L, vidx) == LUA_TTABLE) w->dirty = 1;
    } else if (f->repeated) {
      if (lua_type(L, vidx) != LUA_TTABLE || !check_list(w, f, vidx, depth)) goto misfit;
    } else {
      switch (f->kind) {
      case K_MSG:
        if (lua_type(L, vidx) != LUA_TTABLE || !check_msg(w, f->msg, vidx, depth + 1)) goto misfit;
        break;
      case K_INT: case K_INT64: {
        int r = int_value(L, vidx);
        if (r == 0) goto misfit;
        if (r == 2) {
          lua_pushvalue(L, lk + 1);
          lua_insert(L, -2);
          lua_rawset(L, tidx);
        }
        break;
      }
      case K_ANY:
        w->dirty = 1;
        break;
      default:
        if (!scalar_fits(L, f->kind, vidx)) goto misfit;
      }
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return 1;
misfit:
  lua_settop(L, lk - 1);
  return 0;
}

/*** @module gemini.core */

/* push the message index of `name` (at idx) from the plan, or return -1 */
static int msg_of(lua_State *L, const cd_plan *p, int uv, int idx) {
  int m = -1;
  if (lua_type(L, idx) != LUA_TSTRING) return -1;
  lua_rawgeti(L, uv, UV_NAMES);
  lua_pushvalue(L, idx);
  lua_rawget(L, -2);
  if (lua_type(L, -1) == LUA_TNUMBER && lua_tointeger(L, -1) >= 0 && lua_tointeger(L, -1) < p->nmsg)
    m = (int)lua_tointeger(L, -1);
  lua_pop(L, 2);
  return m;
}

/***
 * Checks a decoded reply against schema message `name` and decodes it in place, in one pass (the C
 * side of `gemini.json`'s `shape_error` + `decode_message`). Integer-typed fields become Lua integers
 * (numeric strings too) exactly as the Lua decoder converts them.
 * @function codec_plan:check
 * @tparam string name message name, e.g. "GenerateTextResponse"
 * @tparam table t the decoded reply (changed in place)
 * @param nulls the codec's null value (or nil)
 * @tparam boolean trust arrays in `t` have only the keys 1..n (a table fresh from cjson or vim.json)
 * @treturn string "clean" (fits and is decoded), "doubt" (fits, but holds something only the Lua decoder
 * handles: a null, an Any, an object under an unknown field, nesting past 64) or "misfit" (does not fit,
 * or holds a metatable: the Lua check names the field)
 */
static int l_check(lua_State *L) {
  walk w;
  int msg;
  w.p = cd_self(L);
  w.L = L;
  lua_settop(L, 5);        /* 1 plan, 2 name, 3 t, 4 nulls, 5 trust */
  if (lua_type(L, 2) != LUA_TSTRING) return luaL_argerror(L, 2, "message name expected");
  w.trust = lua_toboolean(L, 5);
  w.nulls = 4;
  w.dirty = 0;
  w.deep = 0;
  gm_getuv(L, 1);          /* 6 */
  lua_rawgeti(L, 6, UV_LOOKUPS);
  w.lookups = 7;
  msg = msg_of(L, w.p, 6, 2);
  if (lua_type(L, 3) != LUA_TTABLE || !check_msg(&w, msg, 3, 0)) lua_pushliteral(L, "misfit");
  else if (w.dirty) lua_pushliteral(L, "doubt");
  else lua_pushliteral(L, "clean");
  return 1;
}

/* ---------------------------------------------------------------------------------------------- */
/* encoder fast path (json.lua fast_fields) */

typedef struct enc {
  lua_State *L;
  const cd_plan *p;
  int lookups, strings, enums, mnull, nulls, exclude, slot;   /* stack indexes */
  int nulls_mt;            /* the codec null is a table with a metatable: `v == nulls` may run __eq */
  char *b;                 /* the output: `init`, then the userdata at `slot` */
  size_t n, cap;
  char init[512];
} enc;

static void put(enc *e, const char *s, size_t n) {
  if (e->cap - e->n < n) {
    size_t cap = e->cap;
    char *nb;
    while (cap - e->n < n) {
      if (cap > ((size_t)-1) / 2) luaL_error(e->L, "gemini.core: JSON text too large");
      cap *= 2;
    }
#if LUA_VERSION_NUM >= 504
    nb = (char *)lua_newuserdatauv(e->L, cap, 0);
#else
    nb = (char *)lua_newuserdata(e->L, cap);
#endif
    memcpy(nb, e->b, e->n);
    lua_replace(e->L, e->slot);   /* the previous block is garbage now */
    e->b = nb;
    e->cap = cap;
  }
  memcpy(e->b + e->n, s, n);
  e->n += n;
}

static void putc1(enc *e, char c) {
  if (e->n < e->cap) e->b[e->n++] = c;
  else put(e, &c, 1);
}

/* json.lua quote(): `"`, `\` and control characters (Lua's %c: iscntrl) escaped */
static void put_quoted(enc *e, const char *s, size_t n) {
  size_t i, run = 0;
  putc1(e, '"');
  for (i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    const char *esc = NULL;
    char u[8];
    if (c >= 0x20 && c != '"' && c != '\\' && c != 0x7f && (c < 0x80 || !iscntrl(c))) continue;
    switch (c) {
    case '"': esc = "\\\""; break;
    case '\\': esc = "\\\\"; break;
    case '\b': esc = "\\b"; break;
    case '\f': esc = "\\f"; break;
    case '\n': esc = "\\n"; break;
    case '\r': esc = "\\r"; break;
    case '\t': esc = "\\t"; break;
    default:
      snprintf(u, sizeof u, "\\u%04x", (unsigned)c);
      esc = u;
    }
    put(e, s + run, i - run);
    put(e, esc, strlen(esc));
    run = i + 1;
  }
  put(e, s + run, n - run);
  putc1(e, '"');
}

/* json.lua number() for a finite number at idx (the caller checked) */
static void put_number(enc *e, int idx) {
  lua_State *L = e->L;
  char tmp[64];
  lua_Number d;
  int p;
#if LUA_VERSION_NUM >= 503
  if (lua_isinteger(L, idx)) {
    snprintf(tmp, sizeof tmp, LUA_INTEGER_FMT, (LUAI_UACINT)lua_tointeger(L, idx));
    put(e, tmp, strlen(tmp));
    return;
  }
#endif
  d = lua_tonumber(L, idx);
  if (integral(d) && d > -9007199254740992.0 && d < 9007199254740992.0) {
    snprintf(tmp, sizeof tmp, "%.0f", (double)d);
  } else {
    for (p = 15; p <= 17; p++) {
      snprintf(tmp, sizeof tmp, "%.*g", p, (double)d);
      if (p == 17 || strtod(tmp, NULL) == (double)d) break;
    }
  }
  put(e, tmp, strlen(tmp));
}

/* json.lua is_integral() */
static int lua_integral(lua_State *L, int idx) {
  lua_Number d;
#if LUA_VERSION_NUM >= 503
  if (lua_isinteger(L, idx)) return 1;
  d = lua_tonumber(L, idx);
  return integral(d) && d > -9223372036854775808.0 && d < 9223372036854775808.0;
#else
  d = lua_tonumber(L, idx);
  return integral(d);
#endif
}

static int enc_msg(enc *e, int msg, int vidx, int depth, int top);

/* the value at idx is `json.null` or the codec's null: 1 yes, 0 no, -1 doubt (an __eq could decide) */
static int enc_isnull(enc *e, int idx) {
  lua_State *L = e->L;
  int t = lua_type(L, idx);
  if (lua_rawequal(L, idx, e->mnull)) return 1;
  if (lua_toboolean(L, e->nulls) && lua_rawequal(L, idx, e->nulls)) return 1;
  if (t == LUA_TTABLE) {
    if (has_mt(L, idx)) return -1;
    if (e->nulls_mt) return -1;
  } else if (t == LUA_TUSERDATA) {
    return -1;
  }
  return 0;
}

/* fast_scalar: 1 written, 0 doubt */
static int enc_scalar(enc *e, const cd_field *f, int idx, int depth) {
  lua_State *L = e->L;
  int t = lua_type(L, idx), isnull = enc_isnull(e, idx);
  size_t n;
  const char *s;
  if (isnull < 0) return 0;
  if (isnull) {
    put(e, "null", 4);
    return 1;
  }
  switch (f->kind) {
  case K_STRING:
    if (t != LUA_TSTRING) return 0;
    s = lua_tolstring(L, idx, &n);
    put_quoted(e, s, n);
    return 1;
  case K_INT: case K_INT64:
    if (t == LUA_TSTRING && f->kind == K_INT64) {
      s = lua_tolstring(L, idx, &n);
      if (int_text(s, n)) {
        put_quoted(e, s, n);
        return 1;
      }
    }
    if (t != LUA_TNUMBER || !lua_integral(L, idx) || !finite(lua_tonumber(L, idx))) return 0;
    if (f->kind == K_INT64) putc1(e, '"');
    put_number(e, idx);
    if (f->kind == K_INT64) putc1(e, '"');
    return 1;
  case K_FLOAT:
    if (t != LUA_TNUMBER || !finite(lua_tonumber(L, idx))) return 0;
    put_number(e, idx);
    return 1;
  case K_BOOL:
    if (t != LUA_TBOOLEAN) return 0;
    if (lua_toboolean(L, idx)) put(e, "true", 4);
    else put(e, "false", 5);
    return 1;
  case K_ENUM:
    if (t == LUA_TSTRING) {
      if (f->en > 0) {
        int known;
        lua_rawgeti(L, e->enums, f->en);
        lua_pushvalue(L, idx);
        lua_rawget(L, -2);
        known = !lua_isnil(L, -1);
        lua_pop(L, 2);
        if (!known) return 0;
      }
      s = lua_tolstring(L, idx, &n);
      put_quoted(e, s, n);
      return 1;
    }
    if (t == LUA_TNUMBER && finite(lua_tonumber(L, idx)) && lua_integral(L, idx)) {
      put_number(e, idx);
      return 1;
    }
    return 0;
  case K_MSG:
    if (t != LUA_TTABLE) return 0;
    return enc_msg(e, f->msg, idx, depth + 1, 0);
  default:
    return 0;
  }
}

/* a repeated field's value: a sequence without a metatable (json.lua is_sequence) */
static int enc_list(enc *e, const cd_field *f, int vidx, int depth) {
  lua_State *L = e->L;
  size_t n, count = 0, i;
  if (lua_type(L, vidx) != LUA_TTABLE || has_mt(L, vidx)) return 0;
  n = gm_rawlen(L, vidx);
  if (n > 0x7fffffff) return 0;
  lua_pushnil(L);
  while (lua_next(L, vidx) != 0) {
    lua_Number k;
    lua_pop(L, 1);
    if (lua_type(L, -1) != LUA_TNUMBER) {
      lua_pop(L, 1);
      return 0;
    }
    k = lua_tonumber(L, -1);
    if (!(k >= 1 && k <= (lua_Number)n) || k != (lua_Number)(size_t)k) {
      lua_pop(L, 1);
      return 0;
    }
    count++;
  }
  if (count != n) return 0;
  putc1(e, '[');
  for (i = 1; i <= n; i++) {
    int ok;
    if (i > 1) putc1(e, ',');
    lua_rawgeti(L, vidx, (int)i);
    ok = enc_scalar(e, f, lua_gettop(L), depth);
    lua_pop(L, 1);
    if (!ok) return 0;
  }
  putc1(e, ']');
  return 1;
}

/* fields[g] has a value in the table at vidx (by json name, or by proto name) */
static int present(enc *e, int g, int vidx) {
  lua_State *L = e->L;
  int r;
  lua_rawgeti(L, e->strings, 2 * g + 1);
  lua_rawget(L, vidx);
  r = !lua_isnil(L, -1);
  lua_pop(L, 1);
  if (r || !e->p->fields[g].twins) return r;
  lua_rawgeti(L, e->strings, 2 * g + 2);
  lua_rawget(L, vidx);
  r = !lua_isnil(L, -1);
  lua_pop(L, 1);
  return r;
}

/* fast_fields: 1 written, 0 doubt. `top`: the exclude set applies (the request body itself) */
static int enc_msg(enc *e, int msg, int vidx, int depth, int top) {
  lua_State *L = e->L;
  const cd_plan *p = e->p;
  const cd_msg *m;
  int lk, k, npresent = 0, first = 1;
  int seen[CD_MAXKEYS];    /* field index, 2 * g + (0: by json name, 1: by proto name) */
  if (msg < 0 || depth > CD_MAXDEPTH || has_mt(L, vidx)) return 0;
  m = &p->msgs[msg];
  if (m->ambiguous) return 0;
  luaL_checkstack(L, 8, "gemini.core: codec walk");
  lua_rawgeti(L, e->lookups, msg + 1);
  lk = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, vidx) != 0) {
    int g, j;
    const cd_field *f;
    lua_pop(L, 1);
    if (lua_type(L, -1) != LUA_TSTRING) goto doubt;
    lua_pushvalue(L, -1);
    lua_rawget(L, lk);
    if (lua_type(L, -1) != LUA_TNUMBER || (f = field_at(p, lua_tointeger(L, -1))) == NULL) goto doubt;
    g = (int)(f - p->fields);
    lua_pop(L, 1);
    if (top && !lua_isnil(L, e->exclude)) {
      int out;
      lua_rawgeti(L, e->strings, 2 * g + 1);
      lua_gettable(L, e->exclude);
      out = lua_toboolean(L, -1);
      lua_pop(L, 1);
      if (out) goto doubt;
    }
    if (f->twins) {
      int both;
      lua_rawgeti(L, e->strings, 2 * g + 1);
      lua_rawget(L, vidx);
      lua_rawgeti(L, e->strings, 2 * g + 2);
      lua_rawget(L, vidx);
      both = !lua_isnil(L, -1) && !lua_isnil(L, -2);
      lua_pop(L, 2);
      if (both) goto doubt;
    }
    if (f->group) {
      for (j = m->first; j < m->first + m->n; j++)
        if (j != g && p->fields[j].group == f->group && present(e, j, vidx)) goto doubt;
    }
    if (npresent == CD_MAXKEYS) goto doubt;
    /* which key holds the value (json.lua reads value[f.json], then value[f.name]; both set is a doubt
       above): the key itself, unless a field's json name is another one's proto name (ambiguous) */
    lua_rawgeti(L, e->strings, 2 * g + 1);
    j = lua_rawequal(L, -1, -2) ? 0 : 1;
    lua_pop(L, 1);
    for (k = 0; k < npresent; k++)
      if (seen[k] / 2 == g) goto doubt;
    seen[npresent++] = 2 * g + j;
  }
  lua_pop(L, 1);           /* the lookup table */
  /* schema order */
  for (k = 1; k < npresent; k++) {
    int x = seen[k], j = k;
    while (j > 0 && seen[j - 1] > x) {
      seen[j] = seen[j - 1];
      j--;
    }
    seen[j] = x;
  }
  putc1(e, '{');
  for (k = 0; k < npresent; k++) {
    int g = seen[k] / 2, ok;
    const cd_field *f = &p->fields[g];
    if (!first) putc1(e, ',');
    first = 0;
    put(e, f->pre, f->prelen);
    lua_rawgeti(L, e->strings, seen[k] + 1);
    lua_rawget(L, vidx);
    ok = f->repeated ? enc_list(e, f, lua_gettop(L), depth) : enc_scalar(e, f, lua_gettop(L), depth);
    lua_pop(L, 1);
    if (!ok) return 0;
  }
  putc1(e, '}');
  return 1;
doubt:
  lua_settop(L, lk - 1);
  return 0;
}

/***
 * Encodes `value` as schema message `name` (the C side of `gemini.json`'s encoder fast path): fields in
 * schema order under their JSON names, the same bytes as the Lua encoder. Anything doubtful (an unknown
 * or excluded key, a value of the wrong type, a metatable, NaN, a oneof set twice...) returns false, and
 * the Lua encoder then raises the precise error or encodes what this does not.
 * @function codec_plan:encode
 * @tparam string name message name, e.g. "GenerateTextRequest"
 * @tparam table value the request body (JSON or proto field names)
 * @param nulls the codec's null value (written as `null`, like `json.null`)
 * @tparam[opt] table exclude set of JSON field names not accepted here
 * @treturn string|false the JSON text, or false
 */
static int l_encode(lua_State *L) {
  enc e;
  int msg, ok;
  e.p = cd_self(L);
  e.L = L;
  lua_settop(L, 5);        /* 1 plan, 2 name, 3 value, 4 nulls, 5 exclude */
  if (lua_type(L, 2) != LUA_TSTRING) return luaL_argerror(L, 2, "message name expected");
  if (lua_type(L, 3) != LUA_TTABLE || (lua_toboolean(L, 5) && lua_type(L, 5) != LUA_TTABLE)) {
    lua_pushboolean(L, 0);
    return 1;
  }
  if (!lua_toboolean(L, 5)) {
    lua_pushnil(L);
    lua_replace(L, 5);
  }
  e.nulls = 4;
  e.exclude = 5;
  e.nulls_mt = lua_type(L, 4) == LUA_TTABLE && has_mt(L, 4);
  gm_getuv(L, 1);                            /* 6 */
  lua_rawgeti(L, 6, UV_LOOKUPS);             /* 7 */
  lua_rawgeti(L, 6, UV_STRINGS);             /* 8 */
  lua_rawgeti(L, 6, UV_ENUMS);               /* 9 */
  lua_rawgeti(L, 6, UV_NULL);                /* 10 */
  lua_pushnil(L);                            /* 11: the buffer once it outgrows `init` */
  e.lookups = 7;
  e.strings = 8;
  e.enums = 9;
  e.mnull = 10;
  e.slot = 11;
  e.b = e.init;
  e.n = 0;
  e.cap = sizeof e.init;
  msg = msg_of(L, e.p, 6, 2);
  ok = enc_msg(&e, msg, 3, 0, 1);
  if (ok) lua_pushlstring(L, e.b, e.n);
  else lua_pushboolean(L, 0);
  return 1;
}

/* ---------------------------------------------------------------------------------------------- */
/* the plan */

static int l_plan_gc(lua_State *L) {
  cd_plan *p = (cd_plan *)luaL_checkudata(L, 1, CD_MT);
  p->closed = 1;           /* everything else is Lua's: the block itself and the uservalue */
  return 0;
}

static int l_plan_tostring(lua_State *L) {
  cd_plan *p = (cd_plan *)luaL_checkudata(L, 1, CD_MT);
  if (p->closed) lua_pushliteral(L, "gemini.core.codec_plan (closed)");
  else lua_pushfstring(L, "gemini.core.codec_plan (%d messages, %d fields)", p->nmsg, p->nfield);
  return 1;
}

/* a string field of the description table at idx, left on the stack */
static const char *desc_string(lua_State *L, int idx, const char *key, size_t *n, int optional) {
  lua_getfield(L, idx, key);
  if (optional && lua_isnil(L, -1)) return NULL;
  if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "gemini.core: codec description: '%s' must be a string", key);
  return lua_tolstring(L, -1, n);
}

static int desc_index(lua_State *L, int idx, const char *key, int max) {
  int i;
  lua_getfield(L, idx, key);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return 0;
  }
  i = gm_isinteger(L, -1) ? (int)lua_tointeger(L, -1) : 0;
  if (lua_type(L, -1) != LUA_TNUMBER || i < 1 || i > max)
    luaL_error(L, "gemini.core: codec description: '%s' must be an index (1..%d)", key, max);
  lua_pop(L, 1);
  return i;
}

/* the number of fields in messages[1..nmsg] (the array at idx) */
static size_t count_fields(lua_State *L, int idx, int nmsg) {
  size_t total = 0;
  int i;
  for (i = 1; i <= nmsg; i++) {
    lua_rawgeti(L, idx, i);
    if (lua_type(L, -1) != LUA_TTABLE) luaL_error(L, "gemini.core: codec description: message %d is not a table", i);
    lua_getfield(L, -1, "fields");
    if (lua_type(L, -1) != LUA_TTABLE) luaL_error(L, "gemini.core: codec description: message %d has no fields", i);
    total += gm_rawlen(L, -1);
    if (total > 0x7fffffff / 2 - 2) luaL_error(L, "gemini.core: codec description: too many fields");
    lua_pop(L, 2);
  }
  return total;
}

static int same(lua_State *L, int a, int b) {
  return lua_rawequal(L, a, b);
}

/* one message: fields, lookup table, strings; stack top has the description of message i */
static void build_msg(lua_State *L, cd_plan *p, int i, int nmsg, int nenum, int uv) {
  int md = lua_gettop(L), fl, lk, j, n, first = i == 0 ? 0 : p->msgs[i - 1].first + p->msgs[i - 1].n;
  cd_msg *m = &p->msgs[i];
  luaL_checkstack(L, 12, "gemini.core: codec description");
  lua_getfield(L, md, "fields");
  fl = lua_gettop(L);
  n = (int)gm_rawlen(L, fl);
  m->first = first;
  m->n = n;
  lua_createtable(L, 0, 2 * n);                    /* lookup: key -> global field index */
  lk = lua_gettop(L);
  lua_rawgeti(L, uv, UV_STRINGS);
  lua_rawgeti(L, uv, UV_PRE);
  for (j = 0; j < n; j++) {
    cd_field *f = &p->fields[first + j];
    int fd, g = first + j, k;
    size_t jl, nl;
    const char *js, *ns;
    lua_rawgeti(L, fl, j + 1);
    fd = lua_gettop(L);
    if (lua_type(L, fd) != LUA_TTABLE) luaL_error(L, "gemini.core: codec description: a field is not a table");
    js = desc_string(L, fd, "json", &jl, 0);
    lua_rawseti(L, lk + 1, 2 * g + 1);
    ns = desc_string(L, fd, "name", &nl, 0);
    lua_rawseti(L, lk + 1, 2 * g + 2);
    f->twins = jl != nl || memcmp(js, ns, jl) != 0;
    lua_getfield(L, fd, "kind");
    f->kind = luaL_checkoption(L, -1, NULL, kind_names);
    lua_pop(L, 1);
    lua_getfield(L, fd, "repeated");
    f->repeated = lua_toboolean(L, -1);
    lua_pop(L, 1);
    f->msg = desc_index(L, fd, "message", nmsg) - 1;
    if (f->kind != K_MSG) f->msg = -1;
    f->en = f->kind == K_ENUM ? desc_index(L, fd, "enum", nenum) : 0;
    f->group = 0;
    if (desc_string(L, fd, "oneof", &nl, 1) != NULL) {
      /* the group of the first field of this message with the same oneof name */
      f->group = j + 1;
      for (k = 0; k < j; k++) {
        lua_rawgeti(L, fl, k + 1);
        lua_getfield(L, -1, "oneof");
        if (same(L, -1, -3)) {
          lua_pop(L, 2);
          f->group = k + 1;
          break;
        }
        lua_pop(L, 2);
      }
    }
    lua_pop(L, 1);
    /* "\"json\":" through the encoder's quoting, kept alive in UV_PRE */
    {
      enc e;
      memset(&e, 0, sizeof e);
      e.L = L;
      lua_pushnil(L);
      e.slot = lua_gettop(L);
      e.b = e.init;
      e.cap = sizeof e.init;
      put_quoted(&e, js, jl);
      putc1(&e, ':');
      lua_pushlstring(L, e.b, e.n);
      f->pre = lua_tolstring(L, -1, &f->prelen);
      lua_rawseti(L, lk + 2, g + 1);
      lua_pop(L, 1);
    }
    lua_pop(L, 1);       /* the field description */
  }
  /* lookup: proto names first, json names over them (json.lua: by_json[k] or by_name[k]) */
  for (j = 0; j < n; j++) {
    lua_rawgeti(L, lk + 1, 2 * (first + j) + 2);
    lua_pushinteger(L, first + j);
    lua_rawset(L, lk);
  }
  for (j = 0; j < n; j++) {
    lua_rawgeti(L, lk + 1, 2 * (first + j) + 1);
    lua_pushinteger(L, first + j);
    lua_rawset(L, lk);
  }
  /* ambiguous (json.lua fast_info): by_json[f.name] or by_name[f.json] is another field; both indexes
     keep the last field of a name */
  m->ambiguous = 0;
  for (j = 0; j < n && !m->ambiguous; j++) {
    int k, bj = -1, bn = -1;
    lua_rawgeti(L, lk + 1, 2 * (first + j) + 2);   /* f.name */
    lua_rawgeti(L, lk + 1, 2 * (first + j) + 1);   /* f.json */
    for (k = 0; k < n; k++) {
      lua_rawgeti(L, lk + 1, 2 * (first + k) + 1);
      if (same(L, -1, -3)) bj = k;                  /* a json name equal to f.name */
      lua_pop(L, 1);
      lua_rawgeti(L, lk + 1, 2 * (first + k) + 2);
      if (same(L, -1, -2)) bn = k;                  /* a proto name equal to f.json */
      lua_pop(L, 1);
    }
    lua_pop(L, 2);
    if ((bj >= 0 && bj != j) || (bn >= 0 && bn != j)) m->ambiguous = 1;
  }
  lua_pop(L, 2);                                   /* strings, pre */
  lua_rawgeti(L, uv, UV_LOOKUPS);
  lua_pushvalue(L, lk);
  lua_rawseti(L, -2, i + 1);
  lua_settop(L, md);
}

/***
 * Compiles the schema description that `gemini.json` builds once into a plan for the C walks.
 * `desc = { messages = { { name =, fields = { { json =, name =, kind =, repeated =, message =, enum =,
 * oneof = }, ... } }, ... }, enums = { { "NAME", ... }, ... }, null = json.null }`: `kind` is one of
 * message int int64 float string fieldmask enum bool any other; `message` and `enum` are indexes into
 * `messages` and `enums` (nil: not in the schema).
 * @function codec_plan
 * @tparam table desc
 * @treturn userdata gemini.core.codec_plan, with `check` and `encode`
 */
static int l_codec_plan(lua_State *L) {
  int nmsg, nenum, i, uv, msgs, enums;
  size_t nfield, size;
  cd_plan *p;
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  lua_getfield(L, 1, "messages");
  msgs = 2;
  lua_getfield(L, 1, "enums");
  enums = 3;
  if (lua_type(L, msgs) != LUA_TTABLE) return luaL_argerror(L, 1, "messages must be a table");
  if (lua_type(L, enums) != LUA_TTABLE) return luaL_argerror(L, 1, "enums must be a table");
  if (gm_rawlen(L, msgs) > 0x7fffff || gm_rawlen(L, enums) > 0x7fffff)
    return luaL_argerror(L, 1, "too many messages or enums");
  nmsg = (int)gm_rawlen(L, msgs);
  nenum = (int)gm_rawlen(L, enums);
  nfield = count_fields(L, msgs, nmsg);
  size = sizeof(cd_plan) + nfield * sizeof(cd_field) + (size_t)nmsg * sizeof(cd_msg);
  p = (cd_plan *)gm_newuserdata(L, size);          /* 4 */
  memset(p, 0, size);
  p->nmsg = nmsg;
  p->nfield = (int)nfield;
  p->fields = (cd_field *)(void *)(p + 1);           /* sizes are multiples of the alignment */
  p->msgs = (cd_msg *)(void *)(p->fields + nfield);
  p->closed = 1;                                     /* until built */
  lua_createtable(L, UV_N, 0);                       /* 5: the uservalue */
  uv = 5;
  lua_createtable(L, 0, nmsg);
  lua_rawseti(L, uv, UV_NAMES);
  lua_createtable(L, nmsg, 0);
  lua_rawseti(L, uv, UV_LOOKUPS);
  lua_createtable(L, (int)(2 * nfield), 0);
  lua_rawseti(L, uv, UV_STRINGS);
  lua_createtable(L, (int)nfield, 0);
  lua_rawseti(L, uv, UV_PRE);
  lua_createtable(L, nenum, 0);                      /* enums: index -> set of value names */
  for (i = 1; i <= nenum; i++) {
    int j, n;
    lua_rawgeti(L, enums, i);
    if (lua_type(L, -1) != LUA_TTABLE) return luaL_argerror(L, 1, "an enum is not a table");
    n = (int)gm_rawlen(L, -1);
    lua_createtable(L, 0, n);
    for (j = 1; j <= n; j++) {
      lua_rawgeti(L, -2, j);
      if (lua_type(L, -1) != LUA_TSTRING) return luaL_argerror(L, 1, "enum value names must be strings");
      lua_pushboolean(L, 1);
      lua_rawset(L, -3);
    }
    lua_rawseti(L, -3, i);
    lua_pop(L, 1);
  }
  lua_rawseti(L, uv, UV_ENUMS);
  lua_getfield(L, 1, "null");
  lua_rawseti(L, uv, UV_NULL);
  lua_rawgeti(L, uv, UV_NAMES);                      /* 6 */
  for (i = 0; i < nmsg; i++) {
    lua_rawgeti(L, msgs, i + 1);
    size_t nl;
    (void)desc_string(L, -1, "name", &nl, 0);
    lua_pushinteger(L, i);
    lua_rawset(L, 6);
    build_msg(L, p, i, nmsg, nenum, uv);
    lua_pop(L, 1);
  }
  lua_settop(L, 5);
  gm_setuv(L, 4);
  p->closed = 0;
  luaL_getmetatable(L, CD_MT);
  lua_setmetatable(L, 4);
  return 1;
}

static const luaL_Reg plan_methods[] = {
  {"check", l_check},
  {"encode", l_encode},
  {NULL, NULL}
};

void gm_codec_register(lua_State *L) {
  /* the module table is on top */
  if (luaL_newmetatable(L, CD_MT)) {
    int i;
    lua_createtable(L, 0, 2);
    for (i = 0; plan_methods[i].name != NULL; i++) {
      lua_pushvalue(L, -2);                           /* the metatable: methods check their self with it */
      lua_pushcclosure(L, plan_methods[i].func, 1);
      lua_setfield(L, -2, plan_methods[i].name);
    }
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_plan_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, l_plan_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushliteral(L, CD_MT);
    lua_setfield(L, -2, "__name");
    lua_pushliteral(L, CD_MT);
    lua_setfield(L, -2, "__metatable");
  }
  lua_pop(L, 1);
  lua_pushcfunction(L, l_codec_plan);
  lua_setfield(L, -2, "codec_plan");
}
