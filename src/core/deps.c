#include "deps.h"

#include "curl_lib.h"

#include <cjson/cJSON.h>
#include <lmdb.h>
#include <stdio.h>

const char *po_lmdb_version(void) {
  static char text[32];
  int major, minor, patch;
  mdb_version(&major, &minor, &patch);
  snprintf(text, sizeof text, "%d.%d.%d", major, minor, patch);
  return text;
}

const char *po_cjson_version(void) { return cJSON_Version(); }

const char *po_curl_version(void) {
  const po_curl_api *curl;
  if (po_curl_load(&curl) != 0) return NULL;
  /* The library stays loaded: the version string lives inside it. */
  return curl->version_info(CURLVERSION_NOW)->version;
}
