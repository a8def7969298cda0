/* The collector's cycle records (lua/poengine/metrics/record.lua, stored
 * one per entry of a record log, src/core/reclog.c): the decoder reads
 * whatever bytes a damaged store holds.
 *
 * Properties: decode never raises; it returns a record or nil and a
 * message; a decoded record encodes again (or is refused with a message
 * naming the field), and that encoding decodes to a record that encodes to
 * as many bytes, with the same fields. The decoder is Lua, which libFuzzer cannot see into, so
 * this target relies on its seeds (records the encoder wrote) and on
 * mutation. */
#include "fuzz.h"
#include "fuzz_lua.h"

static const char checker[] =
    "local record = require 'poengine.metrics.record'\n"
    "local function same(a, b)\n" /* NaN equals NaN here; tables are compared by type */
    "  return a == b or (a ~= a and b ~= b) or (type(a) == 'table' and type(b) == 'table')\n"
    "end\n"
    "return function(s)\n"
    "  local ok, rec, err = pcall(record.decode, s)\n"
    "  assert(ok, 'decode raised: ' .. tostring(rec))\n"
    "  if rec == nil then\n"
    "    assert(type(err) == 'string', 'no message for a refused record')\n"
    "    return\n"
    "  end\n"
    "  assert(type(rec) == 'table')\n"
    "  local fast = assert(record.decode(s, true))\n"
    "  local ok2, bytes = pcall(record.encode, rec)\n"
    "  if not ok2 then return end\n" /* metadata the encoder refuses */
    "  local again = assert(record.decode(bytes))\n"
    /* A table's pairs order may change on the way round: compare sizes. */
    "  assert(#record.encode(again) == #bytes, 'encode(decode(encode(r))) differs in size')\n"
    "  for _, k in ipairs(record.numeric_fields) do\n"
    "    assert(same(rec[k], again[k]) and same(rec[k], fast[k]), k .. ' changed')\n"
    "  end\n"
    "  assert(again.error == (rec.error ~= nil and tostring(rec.error) or nil), 'error changed')\n" /* stored as text */
    "  for _, k in ipairs { 'cycle_id', 'success', 'score', 'best_score' } do\n"
    "    assert(same(rec[k], again[k]), k .. ' changed on the way round')\n"
    "  end\n"
    "end\n";

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  fuzz_lua_init(checker);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_lua_check(data, size);
  return 0;
}
