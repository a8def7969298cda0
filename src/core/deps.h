/* Versions of the libraries the engine runs on, for `poengine --version`. */
#ifndef PO_DEPS_H
#define PO_DEPS_H

/* "0.9.24"; a static string. */
const char *po_lmdb_version(void);

/* "1.7.15"; a static string. */
const char *po_cjson_version(void);

/* "7.88.1", or NULL when libcurl cannot be loaded. libcurl is loaded on first
 * use rather than linked: it pulls in some thirty shared libraries, which
 * would multiply the start-up time of every script, most of which never make
 * an HTTP request. */
const char *po_curl_version(void);

#endif
