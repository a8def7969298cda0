/* JSON under injected allocation failures (tests/c/fault.h). In C: escaping
 * a string, shortening long numbers and growing a buffer fail with
 * PO_ENOMEM and leave the buffer as it was. In Lua (po_runtime_new, run
 * in-process): po.json.encode raises "po.json.encode: out of memory" and
 * encodes right on the next call; po.json.decode of long numbers returns
 * nil, message, "ENOMEM". Each allocation fails once in turn. Also here,
 * as it needs C: a light userdata other than po.json.null is refused. */
#include <errno.h>
#include <lauxlib.h>
#include <lua.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "fault.h"
#include "harness.h"
#include "json_check.h"
#include "runtime.h"
#include "strbuf.h"

/* ---- the core ------------------------------------------------------------ */

/* The buffer holds prefix, and what was appended is want or nothing. */
static int appended_whole_or_nothing(const po_strbuf *b, int rc, long fired, const char *prefix, const char *want) {
  size_t p = strlen(prefix), w = strlen(want);
  if (b->len < p || memcmp(b->data, prefix, p) != 0) return 0;
  if (rc == 0) return b->len == p + w && memcmp(b->data + p, want, w) == 0;
  return fired && rc == PO_ENOMEM && b->len == p;
}

/* Runs once(nth) for nth = 1, 2, ... (1: the call fault_arm'ed inside
 * failed, 0: no fault was reached, -1: wrong); returns the runs that had a
 * fault, or -1. */
static long sweep_c(int (*once)(long nth)) {
  for (long nth = 1; nth <= 100; nth++) {
    int r = once(nth);
    if (r <= 0) return r < 0 ? -1 : nth - 1;
  }
  return -1;
}

/* Control bytes, each escaped to six bytes, between runs of plain text of
 * `run` bytes: the output outgrows the room reserved for the plain length,
 * inside an escape (run 0) or inside a run of plain text (run 10). */
static char escaped_input[512], escaped_want[1024];

static void append_run(char *s, size_t run) {
  size_t n = strlen(s);
  memcpy(s + n, "abcdefghij", run);
  s[n + run] = '\0';
}

static void make_escape_case(size_t run) {
  strcpy(escaped_input, "tab\t \"quoted\" back\\slash nl\n ");
  strcpy(escaped_want, "\"tab\\t \\\"quoted\\\" back\\\\slash nl\\n ");
  for (int i = 0; i < 30; i++) {
    append_run(escaped_input, run);
    append_run(escaped_want, run);
    strcat(escaped_input, "\x01");
    strcat(escaped_want, "\\u0001");
  }
  strcat(escaped_want, "\"");
}

static int escape_once(long nth) {
  po_strbuf b;
  po_strbuf_init(&b);
  if (po_strbuf_append(&b, "x=", 2) != 0) return -1;
  fault_arm("malloc", nth, 0, ENOMEM);
  int rc = po_json_append_string(&b, escaped_input, strlen(escaped_input));
  long fired = fault_fired();
  fault_disarm();
  int ok = appended_whole_or_nothing(&b, rc, fired, "x=", escaped_want);
  po_strbuf_free(&b);
  if (!ok) return -1;
  return fired ? 1 : 0;
}

/* po_json_append_string grows once for the plain length, then again as
 * escapes outgrow it: every one of those growths fails once. */
static void escaping_fails_whole(void) {
  make_escape_case(0);
  CHECK_EQ_INT(sweep_c(escape_once), 2);
  make_escape_case(10);
  CHECK_EQ_INT(sweep_c(escape_once), 2);
}

/* 130 digits: past PO_JSON_NUMBER_TEXT_MAX, and too long for the stack copy */
static char long_number[131];

static int shorten_once(long nth) {
  char text[512], kept[81];
  memset(kept, 'k', 80);
  kept[80] = '\0';
  snprintf(text, sizeof text, "[\"%s\",%s,-%s]", kept, long_number, long_number);
  po_strbuf b;
  po_strbuf_init(&b);
  if (po_strbuf_append(&b, "prefix", 6) != 0) return -1;
  fault_arm("malloc", nth, 0, ENOMEM);
  int rc = po_json_shorten_numbers(text, strlen(text), &b);
  long fired = fault_fired();
  fault_disarm();
  int ok = appended_whole_or_nothing(&b, rc, fired, "prefix",
                                     "[\"kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk\","
                                     "1.111111111111111e+129,-1.111111111111111e+129]");
  if (!ok) fprintf(stderr, "shorten, call %ld failing: rc %d, %.*s\n", nth, rc, (int)b.len, b.data);
  po_strbuf_free(&b);
  if (!ok) return -1;
  return fired ? 1 : 0;
}

static void shortening_fails_whole(void) {
  memset(long_number, '1', 130);
  /* the buffer grows for the string, then for the second number; each
   * number's digits are copied to the heap */
  CHECK_EQ_INT(sweep_c(shorten_once), 4);
}

static void repeat_fails_whole(void) {
  po_strbuf b;
  po_strbuf_init(&b);
  REQUIRE(po_strbuf_append(&b, "ab", 2) == 0);
  fault_arm("malloc", 1, 0, ENOMEM);
  CHECK_EQ_INT(po_strbuf_append_repeat(&b, ' ', 1000), PO_ENOMEM);
  CHECK_EQ_INT(po_strbuf_append_char(&b, 'c'), 0); /* within the capacity it has */
  fault_disarm();
  CHECK(b.len == 3 && memcmp(b.data, "abc", 3) == 0);
  po_strbuf_free(&b);
}

/* ---- the Lua bindings ------------------------------------------------------ */

/* A fresh state per run, so the encoder's buffers start empty. setup defines
 * attempt() (run with the fault armed, under pcall) and check(ok, ...)
 * (run after, returning nil when right or what was wrong). */
static long sweep_lua(const char *setup) {
  for (long nth = 1; nth <= 200; nth++) {
    lua_State *L = po_runtime_new();
    if (!L) return -1;
    if (luaL_dostring(L, setup) != 0) {
      fprintf(stderr, "setup: %s\n", lua_tostring(L, -1));
      lua_close(L);
      return -1;
    }
    lua_getglobal(L, "check");
    lua_getglobal(L, "pcall");
    lua_getglobal(L, "attempt");
    fault_arm("malloc", nth, 0, ENOMEM);
    lua_call(L, 1, LUA_MULTRET);
    long fired = fault_fired();
    fault_disarm();
    lua_call(L, lua_gettop(L) - 1, 1);
    const char *wrong = lua_tostring(L, -1);
    if (wrong) fprintf(stderr, "with allocation %ld failing: %s\n", nth, wrong);
    int ok = wrong == NULL;
    lua_close(L);
    if (!ok) return -1;
    if (!fired) return nth - 1;
  }
  fprintf(stderr, "sweep_lua: still failing after 200 runs\n");
  return -1;
}

/* A document that grows the output buffer several times and, sorted, the
 * key list (64 slots at first) twice: 150 keys, numbers among them. */
#define ENCODE_SETUP                                                                    \
  "local po = require 'poengine'\n"                                                    \
  "value = { list = {}, nested = { deeper = { 'a\\nb', true, false } } }\n"            \
  "for i = 1, 150 do value['key' .. i] = ('v'):rep(i) end\n"                          \
  "for i = 1, 40 do value.list[i] = i + 0.5 end\n"                                    \
  "value[3.25] = 'number key'\n"

static const char *encode_sorted =
    ENCODE_SETUP
    "opts = { indent = 2, sort_keys = true }\n"
    "function attempt() return po.json.encode(value, opts) end\n"
    "function check(ok, got)\n"
    "  local want = po.json.encode(value, opts)\n"
    "  if #want < 10000 then return 'too short a document: ' .. #want end\n"
    "  if ok then return got ~= want and 'a different text' or nil end\n"
    "  if got ~= 'po.json.encode: out of memory' then return 'raised ' .. tostring(got) end\n"
    "end\n";

static const char *encode_compact =
    ENCODE_SETUP
    "value[3.25] = nil\n"
    "function attempt() return po.json.encode(value) end\n"
    "function check(ok, got)\n"
    "  local want = po.json.encode(value)\n"
    "  if ok then return got ~= want and 'a different text' or nil end\n"
    "  if got ~= 'po.json.encode: out of memory' then return 'raised ' .. tostring(got) end\n"
    "end\n";

static const char *decode_long_numbers =
    "local po = require 'poengine'\n"
    "text = '{\"big\": ' .. ('7'):rep(200) .. ', \"small\": [1, 2]}'\n"
    "function attempt() return po.json.decode(text) end\n"
    "function check(ok, v, msg, code)\n"
    "  if not ok then return 'raised ' .. tostring(v) end\n"
    "  if v == nil then\n"
    "    if msg ~= 'po.json.decode: out of memory' or code ~= 'ENOMEM' then\n"
    "      return 'returned nil, ' .. tostring(msg) .. ', ' .. tostring(code) end\n"
    "    v = po.json.decode(text)\n"
    "  end\n"
    "  if v.big ~= 7.7777777777777777e199 or v.small[2] ~= 2 then return 'decoded wrong' end\n"
    "end\n";

/* Small documents: in each the first write, or the one after the first
 * 64-byte buffer is full, is a different one of the encoder's writes. */
static const char *encode_shapes =
    "local po = require 'poengine'\n"
    "local J, s = po.json, string.rep\n"
    "local sorted = { sort_keys = true }\n"
    "local cases = {\n"
    "  {}, { v = true }, { v = false }, { v = J.null }, { v = 1.5 },\n"
    "  { v = {} }, { v = {}, o = sorted }, { v = J.array() }, { v = { 1 } },\n"
    "  { v = { [1.5] = 1 } }, { v = { [1.5] = 1 }, o = sorted },\n"
    "  { v = { [s('k', 61)] = 1 } },\n"                      /* ':' */
    "  { v = { [s('k', 58)] = 1 }, o = { indent = 2 } },\n"  /* ': ' */
    "  { v = { a = s('v', 57), b = s('w', 57) } },\n"        /* ',' between members */
    "  { v = { a = s('v', 57) } }, { v = { a = s('v', 57) }, o = sorted },\n" /* '}' */
    "  { v = { s('x', 61) } }, { v = { s('x', 61), 1 } },\n" /* ']', ',' between items */
    "  { v = { s('x', 60) }, o = { indent = 0 } },\n"        /* a newline */
    "  { v = { s('s', 55), 't' }, o = { indent = 2 } },\n"   /* an indent */
    "  { v = { [s('k', 59)] = { [1.5] = 1 } } },\n"          /* a number key's opening quote */
    "  { v = { [s('k', 58)] = { [1.5] = 1 } } },\n"          /* its text */
    "  { v = { [s('k', 55)] = { [1.5] = 1 } } },\n"          /* and its closing quote */
    "  { v = { [s('k', 59)] = { [1.5] = 1 } }, o = sorted },\n"
    "  { v = { [s('k', 58)] = { [1.5] = 1 } }, o = sorted },\n"
    "  { v = { [s('k', 55)] = { [1.5] = 1 } }, o = sorted },\n"
    "}\n"
    "NCASES = #cases\n"
    "function attempt() return po.json.encode(cases[CASE].v, cases[CASE].o) end\n"
    "function check(ok, got)\n"
    "  local want = po.json.encode(cases[CASE].v, cases[CASE].o)\n"
    "  if ok then return got ~= want and 'a different text' or nil end\n"
    "  if got ~= 'po.json.encode: out of memory' then return 'raised ' .. tostring(got) end\n"
    "end\n";

static void encode_each_write_fails(void) {
  enum { NCASES = 26 };
  char setup[4096];
  for (int i = 1; i <= NCASES; i++) {
    snprintf(setup, sizeof setup, "CASE = %d\n%s\nassert(NCASES == %d)", i, encode_shapes, NCASES);
    long runs = sweep_lua(setup);
    if (runs < 1) fprintf(stderr, "case %d: %ld runs\n", i, runs);
    CHECK(runs >= 1);
  }
}

static void encode_sorted_and_indented(void) {
  /* the output buffer from 64 bytes to 16 KiB (9), the key list to 64,
   * 128 and 256 slots (3) */
  CHECK_EQ_INT(sweep_lua(encode_sorted), 12);
}

static void encode_compact_unsorted(void) {
  /* the output buffer from 64 bytes to 16 KiB, in fewer steps when a long
   * value comes early: the table's key order decides */
  long runs = sweep_lua(encode_compact);
  CHECK(runs >= 5 && runs <= 9);
}

static void decode_with_long_numbers(void) {
  /* the shortened copy of the text, the heap copy of the 200 digits */
  CHECK_EQ_INT(sweep_lua(decode_long_numbers), 2);
}

static void a_light_userdata_is_refused(void) {
  lua_State *L = po_runtime_new();
  REQUIRE(L);
  REQUIRE(luaL_dostring(L, "local po = require 'poengine'\n"
                           "return function(v) return pcall(po.json.encode, { v, po.json.null }) end") == 0);
  lua_pushlightuserdata(L, &harness_passed);
  lua_call(L, 1, 2);
  CHECK(!lua_toboolean(L, -2));
  CHECK_EQ_STR(lua_tostring(L, -1), "po.json.encode: cannot encode a light userdata at $[1]");
  lua_close(L);
}

int main(void) {
  RUN(escaping_fails_whole);
  RUN(shortening_fails_whole);
  RUN(repeat_fails_whole);
  RUN(encode_sorted_and_indented);
  RUN(encode_compact_unsorted);
  RUN(encode_each_write_fails);
  RUN(decode_with_long_numbers);
  RUN(a_light_userdata_is_refused);
  return TEST_SUMMARY();
}
