#include "deps.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <dlfcn.h>
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
  void *lib = dlopen(POENGINE_CURL_SONAME, RTLD_LAZY | RTLD_LOCAL);
  if (!lib) return NULL;
  typedef curl_version_info_data *(*version_info_fn)(CURLversion);
  version_info_fn info;
  *(void **)&info = dlsym(lib, "curl_version_info");
  /* The library stays loaded: the version string lives inside it. */
  return info ? info(CURLVERSION_NOW)->version : NULL;
}
