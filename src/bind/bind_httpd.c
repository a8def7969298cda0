/* The C half of po.http.serve (src/core/httpd.c): a server userdata whose
 * requests reach one Lua function as (handle, req), where req is a plain
 * table and handle answers it (lua/poengine/http.lua routes and runs the
 * handlers). An open server is anchored in the registry, so it listens until
 * closed whether or not a variable still holds it; the servers of a state
 * close when the state does. */
#include "bind.h"
#include "bind_loop.h"

#include "error.h"
#include "httpd.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SERVER_TYPE "poengine.httpd"
#define REQUEST_TYPE "poengine.httpd_request"

typedef struct server {
  po_httpd *httpd;            /* NULL once closed */
  po_lua_callback *on_request;
  int anchor;                 /* registry ref to this userdata while open */
  struct server *prev, *next; /* in the state's list of open servers */
  struct server_list *list;
} server;

typedef struct server_list {
  server *head;
  int hooked; /* its close hook is registered */
} server_list;

typedef struct request_box {
  po_httpd_req *req; /* NULL once released */
} request_box;

static void server_close(lua_State *L, server *s) {
  if (!s->httpd) return;
  po_httpd_free(s->httpd);
  s->httpd = NULL;
  po_lua_callback_free(s->on_request);
  s->on_request = NULL;
  if (s->prev)
    s->prev->next = s->next;
  else
    s->list->head = s->next;
  if (s->next) s->next->prev = s->prev;
  s->prev = s->next = NULL;
  luaL_unref(L, LUA_REGISTRYINDEX, s->anchor);
  s->anchor = LUA_NOREF;
}

static void close_all(lua_State *L, void *ud) {
  server_list *list = ud;
  while (list->head) server_close(L, list->head);
}

static const char list_key = 0;

static server_list *state_servers(lua_State *L) {
  lua_pushlightuserdata(L, (void *)&list_key);
  lua_rawget(L, LUA_REGISTRYINDEX);
  server_list *list = lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (!list) {
    /* Lua's memory, anchored before the hook that may raise is registered:
     * nothing leaks when it does, and the next call registers it. */
    lua_pushlightuserdata(L, (void *)&list_key);
    list = lua_newuserdata(L, sizeof *list);
    *list = (server_list){0};
    lua_rawset(L, LUA_REGISTRYINDEX);
  }
  if (!list->hooked) {
    po_lua_loop_on_close(L, close_all, list);
    list->hooked = 1;
  }
  return list;
}

/* ---- requests ---- */

static void push_pairs(lua_State *L, po_httpd_req *req, size_t (*count)(const po_httpd_req *),
                       const po_httpd_pair *(*get)(const po_httpd_req *, size_t)) {
  size_t n = count(req);
  lua_createtable(L, 0, (int)n);
  for (size_t i = 0; i < n; i++) {
    const po_httpd_pair *p = get(req, i);
    lua_pushlstring(L, p->name, p->name_len);
    lua_pushlstring(L, p->value, p->value_len);
    lua_rawset(L, -3);
  }
}

static void set_string(lua_State *L, const char *field, const char *value) {
  lua_pushstring(L, value);
  lua_setfield(L, -2, field);
}

/* Pushes the handle (which releases the request when collected) and the
 * request table. */
static int push_request(lua_State *L, void *data) {
  po_httpd_req *req = data;
  request_box *box = lua_newuserdata(L, sizeof *box);
  box->req = req;
  luaL_getmetatable(L, REQUEST_TYPE);
  lua_setmetatable(L, -2);
  lua_createtable(L, 0, 8);
  set_string(L, "method", po_httpd_req_method(req));
  set_string(L, "path", po_httpd_req_path(req));
  set_string(L, "query_string", po_httpd_req_query_string(req));
  set_string(L, "remote", po_httpd_req_remote(req));
  size_t len;
  const char *body = po_httpd_req_body(req, &len);
  lua_pushlstring(L, body, len);
  lua_setfield(L, -2, "body");
  push_pairs(L, req, po_httpd_req_query_count, po_httpd_req_query);
  lua_setfield(L, -2, "query");
  push_pairs(L, req, po_httpd_req_header_count, po_httpd_req_header);
  lua_setfield(L, -2, "headers");
  return 2;
}

static void on_request(po_httpd_req *req, void *ud) {
  server *s = ud;
  po_lua_callback_call(s->on_request, push_request, req);
}

static po_httpd_req *check_request(lua_State *L, const char *fn) {
  request_box *box = luaL_checkudata(L, 1, REQUEST_TYPE);
  if (!box->req) luaL_error(L, "%s: the request was released", fn);
  return box->req;
}

static int check_status(lua_State *L, int idx, const char *fn) {
  lua_Number n = luaL_checknumber(L, idx);
  if (n != floor(n) || n < 100 || n > 599) luaL_error(L, "%s: status must be an integer from 100 to 599", fn);
  return (int)n;
}

/* The headers table at idx (name = string or number) as pairs, in a
 * userdata left on the stack; the strings stay alive in the table. */
static po_httpd_pair *check_headers(lua_State *L, int idx, const char *fn, size_t *n) {
  *n = 0;
  if (lua_isnoneornil(L, idx)) return NULL;
  luaL_checktype(L, idx, LUA_TTABLE);
  size_t count = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    count++;
    lua_pop(L, 1);
  }
  lua_createtable(L, (int)count, 0); /* keeps numbers turned to strings alive */
  int keep = lua_gettop(L);
  po_httpd_pair *pairs = lua_newuserdata(L, (count ? count : 1) * sizeof *pairs);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    if (lua_type(L, -2) != LUA_TSTRING) luaL_error(L, "%s: header names must be strings", fn);
    int vt = lua_type(L, -1);
    if (vt != LUA_TSTRING && vt != LUA_TNUMBER)
      luaL_error(L, "%s: header '%s' must be a string or a number, got %s", fn, lua_tostring(L, -2),
                 lua_typename(L, vt));
    po_httpd_pair *p = &pairs[*n];
    p->name = lua_tolstring(L, -2, &p->name_len);
    p->value = lua_tolstring(L, -1, &p->value_len); /* a number becomes a string on the stack only */
    lua_rawseti(L, keep, (int)++*n);
  }
  return pairs;
}

static int answer_result(lua_State *L, int rc, const char *fn) {
  if (rc == 0) {
    lua_pushboolean(L, 1);
    return 1;
  }
  if (rc == PO_ECONN) return po_push_error(L, rc, "closed");
  if (rc == PO_EINVAL) return luaL_error(L, "%s: already answered, or a header name or value is invalid", fn);
  return po_push_error(L, rc, "%s: %s", fn, po_strerror(rc));
}

/* handle:respond(status, headers, body) -> true | nil, "closed", "ECONN" */
static int l_respond(lua_State *L) {
  static const char fn[] = "request:respond";
  po_httpd_req *req = check_request(L, fn);
  int status = check_status(L, 2, fn);
  size_t len = 0;
  const char *body = luaL_optlstring(L, 4, "", &len);
  size_t n;
  po_httpd_pair *headers = check_headers(L, 3, fn, &n);
  return answer_result(L, po_httpd_respond(req, status, headers, n, body, len), fn);
}

/* handle:stream(status, headers) -> true | nil, "closed", "ECONN" */
static int l_stream(lua_State *L) {
  static const char fn[] = "request:stream";
  po_httpd_req *req = check_request(L, fn);
  int status = check_status(L, 2, fn);
  size_t n;
  po_httpd_pair *headers = check_headers(L, 3, fn, &n);
  return answer_result(L, po_httpd_stream_start(req, status, headers, n), fn);
}

/* handle:write(s) -> true | nil, "closed", "ECONN" */
static int l_write(lua_State *L) {
  static const char fn[] = "stream:write";
  request_box *box = luaL_checkudata(L, 1, REQUEST_TYPE);
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  if (!box->req) return po_push_error(L, PO_ECONN, "closed");
  int rc = po_httpd_stream_write(box->req, data, len);
  if (rc == PO_EINVAL) return luaL_error(L, "%s: the stream has not started or has ended", fn);
  return answer_result(L, rc, fn);
}

/* handle:finish(): ends a stream, if one is open. */
static int l_finish(lua_State *L) {
  request_box *box = luaL_checkudata(L, 1, REQUEST_TYPE);
  if (box->req) po_httpd_stream_end(box->req);
  return 0;
}

/* handle:closed() -> true once the client or the server has gone. */
static int l_closed(lua_State *L) {
  request_box *box = luaL_checkudata(L, 1, REQUEST_TYPE);
  lua_pushboolean(L, !box->req || po_httpd_req_closed(box->req));
  return 1;
}

/* handle:release(), also __gc: a request never answered gets a 500. */
static int l_release(lua_State *L) {
  request_box *box = luaL_checkudata(L, 1, REQUEST_TYPE);
  po_httpd_req_release(box->req);
  box->req = NULL;
  return 0;
}

/* ---- servers ---- */

static server *check_server(lua_State *L) { return luaL_checkudata(L, 1, SERVER_TYPE); }

static int l_server_close(lua_State *L) {
  server_close(L, check_server(L));
  return 0;
}

static int l_server_port(lua_State *L) {
  server *s = check_server(L);
  if (!s->httpd) return 0;
  lua_pushinteger(L, po_httpd_port(s->httpd));
  return 1;
}

static void set_number(lua_State *L, const char *field, double v) {
  lua_pushnumber(L, v);
  lua_setfield(L, -2, field);
}

/* srv:stats() -> { requests =, rejected =, active = } (zeros once closed) */
static int l_server_stats(lua_State *L) {
  server *s = check_server(L);
  po_httpd_stats st = {0};
  if (s->httpd) po_httpd_get_stats(s->httpd, &st);
  lua_createtable(L, 0, 3);
  set_number(L, "requests", (double)st.requests);
  set_number(L, "rejected", (double)st.rejected);
  set_number(L, "active", st.active);
  return 1;
}

static double opt_number(lua_State *L, const char *name, double min, double max, int integer) {
  lua_getfield(L, 1, name);
  double v = 0;
  if (!lua_isnil(L, -1)) {
    v = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : NAN;
    if (isnan(v) || v < min || v > max || (integer && v != floor(v)))
      luaL_error(L, "po.http.serve: %s must be %s from %g to %g", name, integer ? "an integer" : "a number", min, max);
  }
  lua_pop(L, 1);
  return v;
}

static const char *opt_string(lua_State *L, const char *name) {
  lua_getfield(L, 1, name);
  const char *s = NULL;
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TSTRING)
      luaL_error(L, "po.http.serve: %s must be a string, got %s", name, luaL_typename(L, -1));
    s = lua_tostring(L, -1);
  }
  lua_pop(L, 1); /* kept alive by the options table */
  return s;
}

/* httpd_serve(opts, on_request) -> server | nil, message, code, where
 * on_request(handle, req) runs for each request that passed the checks. */
static int l_httpd_serve(lua_State *L) {
  static const char *const allowed[] = {"host", "port", "token", "max_connections", "max_header_bytes",
                                        "max_body_bytes", "timeout", NULL};
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  po_check_options(L, 1, "po.http.serve", allowed);
  po_httpd_opts o = {0};
  o.host = opt_string(L, "host");
  o.token = opt_string(L, "token");
  if (o.token && !o.token[0]) luaL_error(L, "po.http.serve: token must not be empty");
  o.port = (int)opt_number(L, "port", 0, 65535, 1);
  o.max_connections = (unsigned)opt_number(L, "max_connections", 1, 1e6, 1);
  o.max_header_bytes = (size_t)opt_number(L, "max_header_bytes", 256, 1 << 24, 1);
  o.max_body_bytes = (size_t)opt_number(L, "max_body_bytes", 1, 1e12, 1);
  o.timeout = opt_number(L, "timeout", 0.001, 86400, 0);
  const char *host = o.host ? o.host : "127.0.0.1";

  server_list *list = state_servers(L);
  po_loop *loop = po_lua_loop(L);
  server *s = lua_newuserdata(L, sizeof *s);
  *s = (server){.anchor = LUA_NOREF, .list = list};
  luaL_getmetatable(L, SERVER_TYPE);
  lua_setmetatable(L, -2);
  s->on_request = po_lua_callback_new(L, 2);
  int rc = po_httpd_new(loop, &o, on_request, s, &s->httpd);
  if (rc) {
    int e = errno;
    po_lua_callback_free(s->on_request);
    s->on_request = NULL;
    int loopback = po_httpd_is_loopback(host);
    if (rc == PO_EINVAL)
      return po_push_error(L, rc, "po.http.serve: cannot listen on '%s': %s", host,
                           loopback < 0  ? "host must be a numeric IPv4 or IPv6 address"
                           : !o.token && !loopback ? "a token is required off loopback"
                                                  : po_strerror(rc));
    if (rc == PO_EIO)
      return po_push_error_named(L, e == EADDRINUSE ? "EADDRINUSE" : "EIO",
                                 "po.http.serve: cannot listen on %s port %d: %s",
                                 host, o.port, strerror(e));
    return po_push_error(L, rc, "po.http.serve: %s", po_strerror(rc));
  }
  lua_pushvalue(L, -1);
  s->anchor = luaL_ref(L, LUA_REGISTRYINDEX);
  s->next = list->head;
  if (list->head) list->head->prev = s;
  list->head = s;
  return 1;
}

void po_open_httpd(lua_State *L) {
  static const luaL_Reg server_methods[] = {
      {"close", l_server_close}, {"port", l_server_port}, {"stats", l_server_stats}, {NULL, NULL}};
  static const luaL_Reg server_meta[] = {{"__gc", l_server_close}, {NULL, NULL}};
  po_register_type(L, SERVER_TYPE, server_methods, server_meta);
  static const luaL_Reg request_methods[] = {{"respond", l_respond}, {"stream", l_stream}, {"write", l_write},
                                             {"finish", l_finish},   {"closed", l_closed}, {"release", l_release},
                                             {NULL, NULL}};
  static const luaL_Reg request_meta[] = {{"__gc", l_release}, {NULL, NULL}};
  po_register_type(L, REQUEST_TYPE, request_methods, request_meta);
  static const luaL_Reg fns[] = {{"httpd_serve", l_httpd_serve}, {NULL, NULL}};
  po_set_funcs(L, fns);
}
