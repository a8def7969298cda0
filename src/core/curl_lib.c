#include "curl_lib.h"

#include "error.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>

#ifndef POENGINE_CURL_SONAME
#define POENGINE_CURL_SONAME "libcurl.so.4"
#endif

static po_curl_api api;
static int load_rc = PO_EUNAVAIL;
static char load_error[256];
static pthread_once_t load_once = PTHREAD_ONCE_INIT;

/* Resolves one symbol into a function-pointer slot; records the first miss. */
static int resolve(void *lib, const char *name, void *slot) {
  void *sym = dlsym(lib, name);
  if (!sym) {
    if (!load_error[0]) snprintf(load_error, sizeof load_error, "%s lacks %s", POENGINE_CURL_SONAME, name);
    return 0;
  }
  *(void **)slot = sym;
  return 1;
}

static void load(void) {
  void *lib = dlopen(POENGINE_CURL_SONAME, RTLD_LAZY | RTLD_LOCAL);
  if (!lib) {
    const char *why = dlerror();
    snprintf(load_error, sizeof load_error, "cannot load %s: %s", POENGINE_CURL_SONAME, why ? why : "unknown error");
    return;
  }
  CURLcode (*global_init)(long) = NULL;
  int ok = resolve(lib, "curl_global_init", &global_init);
  ok &= resolve(lib, "curl_version_info", &api.version_info);
  ok &= resolve(lib, "curl_easy_init", &api.easy_init);
  ok &= resolve(lib, "curl_easy_setopt", &api.easy_setopt);
  ok &= resolve(lib, "curl_easy_getinfo", &api.easy_getinfo);
  ok &= resolve(lib, "curl_easy_cleanup", &api.easy_cleanup);
  ok &= resolve(lib, "curl_easy_strerror", &api.easy_strerror);
  ok &= resolve(lib, "curl_slist_append", &api.slist_append);
  ok &= resolve(lib, "curl_slist_free_all", &api.slist_free_all);
  ok &= resolve(lib, "curl_multi_init", &api.multi_init);
  ok &= resolve(lib, "curl_multi_setopt", &api.multi_setopt);
  ok &= resolve(lib, "curl_multi_add_handle", &api.multi_add_handle);
  ok &= resolve(lib, "curl_multi_remove_handle", &api.multi_remove_handle);
  ok &= resolve(lib, "curl_multi_socket_action", &api.multi_socket_action);
  ok &= resolve(lib, "curl_multi_info_read", &api.multi_info_read);
  ok &= resolve(lib, "curl_multi_assign", &api.multi_assign);
  ok &= resolve(lib, "curl_multi_cleanup", &api.multi_cleanup);
  ok &= resolve(lib, "curl_multi_strerror", &api.multi_strerror);
  if (!ok) return; /* the library stays loaded: dlclose of libcurl is not safe */
  if (global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
    snprintf(load_error, sizeof load_error, "curl_global_init failed");
    return;
  }
  load_rc = 0;
}

int po_curl_load(const po_curl_api **out) {
  pthread_once(&load_once, load);
  if (load_rc == 0 && out) *out = &api;
  return load_rc;
}

const char *po_curl_load_error(void) { return load_error; }
