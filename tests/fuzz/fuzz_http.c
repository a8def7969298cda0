/* The HTTP client's outside input that does not go through libcurl's own
 * parsing: response header lines (on_header in src/core/http.c, reached
 * through http_internal.h) and the URL redaction of error messages
 * (po_http_redact_url).
 *
 * Header lines are fed one by one, each in a buffer of exactly its size and
 * not NUL-terminated, as libcurl hands them over. Properties: header names
 * come back lower-cased; a redacted URL is NUL-terminated inside its buffer
 * and keeps no query string or fragment (which may carry keys), whatever the
 * URL looks like. */
#include "fuzz.h"

#include "http.h"
#include "http_internal.h"

#include <string.h>

static void check_headers(const uint8_t *data, size_t size) {
  po_http_req *r = po_http_headers_new();
  FUZZ_CHECK(r != NULL);
  size_t at = 0;
  while (at < size) {
    const uint8_t *nl = memchr(data + at, '\n', size - at);
    size_t len = nl ? (size_t)(nl - (data + at)) + 1 : size - at;
    char *line = malloc(len);
    FUZZ_CHECK(line != NULL);
    memcpy(line, data + at, len);
    FUZZ_CHECK(po_http_headers_feed(r, line, len) == len);
    free(line);
    at += len;
  }
  long status;
  size_t n;
  char *const *names, *const *values;
  po_http_headers_result(r, &status, &n, &names, &values);
  for (size_t i = 0; i < n; i++) {
    for (const char *p = names[i]; *p; p++) FUZZ_CHECK(!(*p >= 'A' && *p <= 'Z'));
    (void)strlen(values[i]);
  }
  po_http_headers_free(r);
}

static void check_redaction(const uint8_t *data, size_t size) {
  char *url = malloc(size + 1);
  FUZZ_CHECK(url != NULL);
  memcpy(url, data, size);
  url[size] = 0;
  static const size_t sizes[] = {1, 9, 64, 600};
  for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
    char *buf = malloc(sizes[i]);
    FUZZ_CHECK(buf != NULL);
    po_http_redact_url(url, buf, sizes[i]);
    size_t len = strnlen(buf, sizes[i]);
    FUZZ_CHECK(len < sizes[i]);
    FUZZ_CHECK(strpbrk(buf, "?#") == NULL);
    free(buf);
  }
  free(url);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  check_headers(data, size);
  check_redaction(data, size);
  return 0;
}
