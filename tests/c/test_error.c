/* Tests for src/core/error.c: every PO_E code has its own text and its own
 * stable name, the one the Lua layer returns as the third value. */
#include "error.h"
#include "harness.h"

#include <string.h>

static const struct {
  int code;
  const char *name;
} CODES[] = {
  {PO_OK, "OK"}, {PO_ENOMEM, "ENOMEM"}, {PO_EINVAL, "EINVAL"}, {PO_EIO, "EIO"},
  {PO_ETIMEDOUT, "ETIMEDOUT"}, {PO_ECANCELED, "ECANCELED"}, {PO_EJSON, "EJSON"},
  {PO_ETOODEEP, "ETOODEEP"}, {PO_ENOENT, "ENOENT"}, {PO_EUNAVAIL, "EUNAVAIL"},
  {PO_ESTORE, "ESTORE"}, {PO_EMAPFULL, "EMAPFULL"}, {PO_ESCHEMA, "ESCHEMA"}, {PO_EPERM, "EPERM"},
  {PO_EOUTSIDE, "EOUTSIDE"}, {PO_ECONNREFUSED, "ECONNREFUSED"}, {PO_ECONN, "ECONN"}, {PO_ETLS, "ETLS"},
  {PO_EREDIS, "EREDIS"}, {PO_EAUTH, "EAUTH"}, {PO_EUNSUPPORTED, "EUNSUPPORTED"},
};
#define NCODES (sizeof(CODES) / sizeof(CODES[0]))

static void test_names(void) {
  for (size_t i = 0; i < NCODES; i++) CHECK_EQ_STR(po_errname(CODES[i].code), CODES[i].name);
  /* The enum is dense from 0 down to PO_EUNSUPPORTED: the table above is all of it. */
  CHECK_EQ_INT(NCODES, 1 - PO_EUNSUPPORTED);
  CHECK_EQ_STR(po_errname(PO_EUNSUPPORTED - 1), "EUNKNOWN");
  CHECK_EQ_STR(po_errname(1), "EUNKNOWN");
}

static void test_texts(void) {
  for (size_t i = 0; i < NCODES; i++) {
    const char *t = po_strerror(CODES[i].code);
    REQUIRE(t != NULL);
    CHECK(strlen(t) > 0);
    CHECK(strcmp(t, "unknown error") != 0);
    for (size_t j = 0; j < i; j++) CHECK(strcmp(t, po_strerror(CODES[j].code)) != 0); /* each its own */
  }
  CHECK_EQ_STR(po_strerror(PO_ETIMEDOUT), "timed out");
  CHECK_EQ_STR(po_strerror(PO_EUNSUPPORTED - 1), "unknown error");
}

int main(void) {
  RUN(test_names);
  RUN(test_texts);
  return TEST_SUMMARY();
}
