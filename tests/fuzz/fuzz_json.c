/* The JSON decode path: the strict validator (src/core/json_check.c), its
 * string measurer and number shortener, cJSON building the tree, and
 * po.json.decode/encode through the binding (src/bind/bind_json.c); and the
 * encoder's scalar writers on arbitrary bytes.
 *
 * Properties: whatever the validator accepts, cJSON parses, and every string
 * cJSON decodes has the length the validator measured; the shortened text is
 * still valid; a string or number the encoder writes is valid JSON that reads
 * back as the same bytes or value; decode(encode(v)) encodes to the same
 * text as v. */
#include "fuzz.h"
#include "fuzz_lua.h"

#include "error.h"
#include "json_check.h"
#include "strbuf.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

static const char checker[] =
    "local json = require('poengine').json\n"
    "return function(s)\n"
    "  local v, err, code = json.decode(s)\n"
    "  if v == nil then\n"
    "    assert(type(err) == 'string' and code == 'EJSON', tostring(err))\n"
    "    return\n"
    "  end\n"
    "  local ok, text = pcall(json.encode, v, { sort_keys = true })\n"
    "  if not ok then\n" /* infinities (1e999) and the like: refused, not crashed on */
    "    assert(type(text) == 'string' and text:find('po.json.encode', 1, true), text)\n"
    "    return\n"
    "  end\n"
    "  local v2, err2 = json.decode(text)\n"
    "  assert(err2 == nil, err2)\n"
    "  assert(json.encode(v2, { sort_keys = true }) == text, 'encode(decode(encode(v))) differs')\n"
    "end\n";

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  fuzz_lua_init(checker);
  return 0;
}

/* Compares cJSON's strings, in document order, with the measured lengths. */
static void compare_lengths(const cJSON *it, const size_t *lens, size_t n, size_t *next) {
  for (const cJSON *ch = it->child; ch; ch = ch->next) {
    if (it->type & cJSON_Object) {
      FUZZ_CHECK(*next < n && strlen(ch->string) == lens[*next]);
      ++*next;
    }
    if (ch->type & cJSON_String) {
      FUZZ_CHECK(*next < n && strlen(ch->valuestring) == lens[*next]);
      ++*next;
    }
    compare_lengths(ch, lens, n, next);
  }
}

static void check_text(const char *text, size_t len) {
  po_json_check_result r;
  int rc = po_json_check(text, len, PO_JSON_MAX_DEPTH, &r);
  FUZZ_CHECK(rc == 0 || rc == PO_EJSON || rc == PO_ETOODEEP);
  if (rc != 0) {
    FUZZ_CHECK(r.error_reason != NULL && r.error_offset <= len);
    return;
  }
  size_t *lens = malloc((r.string_count + 1) * sizeof *lens);
  FUZZ_CHECK(lens != NULL);
  FUZZ_CHECK(po_json_string_lengths(text, len, lens, r.string_count) == 0);

  po_strbuf short_text;
  po_strbuf_init(&short_text);
  FUZZ_CHECK(po_json_shorten_numbers(text, len, &short_text) == 0);
  po_json_check_result r2;
  FUZZ_CHECK(po_json_check(short_text.data ? short_text.data : "", short_text.len, PO_JSON_MAX_DEPTH, &r2) == 0);
  FUZZ_CHECK(r2.string_count == r.string_count && !r2.has_long_number);

  cJSON *tree = cJSON_ParseWithLengthOpts(short_text.data, short_text.len, NULL, 0);
  FUZZ_CHECK(tree != NULL);
  if (!r.has_nul_escape) {
    size_t next = 0;
    if (tree->type & cJSON_String) {
      FUZZ_CHECK(r.string_count == 1 && strlen(tree->valuestring) == lens[0]);
      next = 1;
    }
    compare_lengths(tree, lens, r.string_count, &next);
    FUZZ_CHECK(next == r.string_count);
  }
  cJSON_Delete(tree);
  po_strbuf_free(&short_text);
  free(lens);
}

static void check_writers(const uint8_t *data, size_t size) {
  po_strbuf out;
  po_strbuf_init(&out);
  FUZZ_CHECK(po_json_append_string(&out, (const char *)data, size) == 0);
  po_json_check_result r;
  FUZZ_CHECK(po_json_check(out.data, out.len, 1, &r) == 0 && r.string_count == 1);
  size_t len = 0;
  FUZZ_CHECK(po_json_string_lengths(out.data, out.len, &len, 1) == 0 && len == size);
  po_strbuf_free(&out);

  if (size >= 8) {
    double d;
    memcpy(&d, data, sizeof d);
    char buf[PO_JSON_NUMBER_BUF];
    size_t n;
    int rc = po_json_format_number(d, buf, sizeof buf, &n);
    FUZZ_CHECK(isfinite(d) ? rc == 0 : rc == PO_EINVAL);
    if (rc == 0) {
      FUZZ_CHECK(n < sizeof buf && buf[n] == 0 && po_json_check(buf, n, 0, &r) == 0);
      double back = strtod(buf, NULL);
      FUZZ_CHECK(back == d && signbit(back) == signbit(d));
    }
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  check_text((const char *)data, size);
  check_writers(data, size);
  fuzz_lua_check(data, size);
  return 0;
}
