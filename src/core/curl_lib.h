/* libcurl, opened with dlopen on first use instead of linked.
 *
 * Linking libcurl pulls some thirty shared libraries into every process and
 * made start-up about seven times slower (docs/benchmarks.md), although most
 * scripts never make an HTTP request. Only curl's headers are used at build
 * time; the functions the engine calls are resolved with dlsym into one
 * table, filled once per process. */
#ifndef PO_CURL_LIB_H
#define PO_CURL_LIB_H

#include <curl/curl.h>

typedef struct po_curl_api {
  curl_version_info_data *(*version_info)(CURLversion);
  CURL *(*easy_init)(void);
  CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
  CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
  void (*easy_cleanup)(CURL *);
  const char *(*easy_strerror)(CURLcode);
  struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
  void (*slist_free_all)(struct curl_slist *);
  CURLM *(*multi_init)(void);
  CURLMcode (*multi_setopt)(CURLM *, CURLMoption, ...);
  CURLMcode (*multi_add_handle)(CURLM *, CURL *);
  CURLMcode (*multi_remove_handle)(CURLM *, CURL *);
  CURLMcode (*multi_socket_action)(CURLM *, curl_socket_t, int, int *);
  CURLMsg *(*multi_info_read)(CURLM *, int *);
  CURLMcode (*multi_assign)(CURLM *, curl_socket_t, void *);
  CURLMcode (*multi_cleanup)(CURLM *);
  const char *(*multi_strerror)(CURLMcode);
} po_curl_api;

/* Loads libcurl (POENGINE_CURL_SONAME) once per process, resolves the table
 * and runs curl_global_init; thread-safe. Sets *out to the shared table,
 * which stays valid until the process exits. Returns 0, or PO_EUNAVAIL when
 * the library or one of its functions is missing, or its global init fails;
 * po_curl_load_error() then says why. Later calls return the same outcome. */
int po_curl_load(const po_curl_api **out);

/* Why the last po_curl_load failed ("" if it did not); a static string. */
const char *po_curl_load_error(void);

#endif
