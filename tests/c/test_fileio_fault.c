/* fileio under injected faults (tests/c/fault.h): every allocation, write
 * and fsync of an atomic write fails once in turn, and each time the call
 * reports it and the target keeps its old content whole. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "fault.h"
#include "fileio.h"
#include "harness.h"
#include "runtime.h"

#include <lauxlib.h>

static char dir[64];
static po_root *root;

static const char *content_now(po_strbuf *b) {
  int err = 0;
  if (po_file_read(root, "f.txt", b, &err) != 0 || po_strbuf_append(b, "", 1) != 0) return NULL;
  return b->data;
}

/* The directory holds f.txt alone: no temporary file was left behind. */
static int only_target_left(void) {
  char cmd[160];
  snprintf(cmd, sizeof cmd, "test \"$(ls -A %s)\" = f.txt", dir);
  return system(cmd) == 0;
}

/* Writes "new" over "old": either it worked and the file says "new", or it
 * failed with PO_ENOMEM or PO_EIO (errno reported) and the file is whole,
 * old or new (new when only the directory's fsync failed, after the rename:
 * the content is there, its durability is not promised). Either way no
 * temporary file is left. */
static int replace(void *arg) {
  int sync = *(int *)arg;
  int err = 0;
  int rc = po_file_write(root, "f.txt", "new", 3, sync, &err);
  long fired = fault_fired();
  po_strbuf b;
  po_strbuf_init(&b);
  fault_disarm();
  const char *now = content_now(&b);
  int ok;
  if (rc == 0)
    ok = now && strcmp(now, "new") == 0;
  else
    ok = fired && now && (strcmp(now, "old") == 0 || strcmp(now, "new") == 0) &&
         (rc == PO_ENOMEM || (rc == PO_EIO && err != 0));
  ok = ok && only_target_left();
  if (!ok) fprintf(stderr, "replace: rc %d errno %d content %s\n", rc, err, now ? now : "(none)");
  po_strbuf_free(&b);
  int e2 = 0;
  po_file_write(root, "f.txt", "old", 3, 0, &e2);
  return ok ? 0 : 1;
}

static void setup(void) {
  strcpy(dir, "/tmp/po-fileio-fault-XXXXXX");
  REQUIRE(mkdtemp(dir) != NULL);
  int err = 0;
  REQUIRE(po_root_open(dir, 0, &root, &err) == 0);
  REQUIRE(po_file_write(root, "f.txt", "old", 3, 0, &err) == 0);
}

static void every_allocation_fails_once(void) {
  int sync = 1;
  long runs = fault_sweep("malloc", ENOMEM, replace, &sync, 200);
  CHECK(runs >= 1);
}

static void every_write_fails_once(void) {
  int sync = 1;
  long runs = fault_sweep("write", EIO, replace, &sync, 50);
  CHECK(runs >= 1);
}

static void every_fsync_fails_once(void) {
  int sync = 1;
  /* the file's fsync and the directory's */
  CHECK_EQ_INT(fault_sweep("fsync", EIO, replace, &sync, 50), 2);
}

static void every_open_fails_once(void) {
  int sync = 1;
  CHECK(fault_sweep("open", EIO, replace, &sync, 50) >= 1);
}

static void every_close_fails_once(void) {
  int sync = 1;
  /* the temporary file's close and, unseen, the directory's */
  CHECK(fault_sweep("close", EIO, replace, &sync, 50) >= 1);
}

/* A write that needs its parents, each mkdir failing in turn: PO_EIO with
 * the errno, and no file; or the file with its content. */
static int write_deep(void *arg) {
  (void)arg;
  int err = 0;
  int rc = po_file_write(root, "a/b/c.txt", "deep", 4, 0, &err);
  fault_disarm();
  po_strbuf b;
  po_strbuf_init(&b);
  int err2 = 0;
  int rrc = po_file_read(root, "a/b/c.txt", &b, &err2);
  int ok = rc == 0 ? rrc == 0 && b.len == 4 && memcmp(b.data, "deep", 4) == 0
                   : rc == PO_EIO && err == EROFS && rrc == PO_EIO && err2 == ENOENT;
  po_strbuf_free(&b);
  char cmd[160];
  snprintf(cmd, sizeof cmd, "rm -rf %s/a", dir);
  ok = ok && system(cmd) == 0;
  return ok ? 0 : 1;
}

static void every_mkdir_fails_once(void) { CHECK_EQ_INT(fault_sweep("mkdir", EROFS, write_deep, NULL, 20), 2); }

/* Reading a file bigger than one read: each allocation and each read
 * failing in turn gives PO_ENOMEM, or PO_EIO with the errno, or the whole
 * content. */
enum { BIG = 200000 };
static char big[BIG];

static int read_big(void *arg) {
  (void)arg;
  po_strbuf b;
  po_strbuf_init(&b);
  int err = 0;
  int rc = po_file_read(root, "big", &b, &err);
  int ok = rc == 0 ? b.len == BIG && memcmp(b.data, big, BIG) == 0 : rc == PO_ENOMEM || (rc == PO_EIO && err == EIO);
  po_strbuf_free(&b);
  return ok ? 0 : 1;
}

static int fallback;

static void reads_under_faults(void) {
  for (int i = 0; i < BIG; i++) big[i] = (char)('a' + i % 26);
  int err = 0;
  REQUIRE(po_file_write(root, "big", big, BIG, 0, &err) == 0);
  CHECK(fault_sweep("malloc", ENOMEM, read_big, NULL, 50) >= 1);
  CHECK(fault_sweep("read", EIO, read_big, NULL, 50) >= 2);
  /* opens beneath the root: openat2, or open after the realpath check */
  CHECK_EQ_INT(fault_sweep("open", EIO, read_big, NULL, 50), fallback ? 1 : 0);
  char path[96];
  snprintf(path, sizeof path, "%s/big", dir);
  unlink(path);
}

/* Opening a root with create, each allocation and mkdir failing in turn:
 * PO_ENOMEM or PO_EIO (the errno set), or a root that works. */
static int open_new_root(void *arg) {
  const char *path = arg;
  po_root *r = NULL;
  int err = 0;
  int rc = po_root_open(path, 1, &r, &err);
  fault_disarm();
  int ok;
  if (rc == 0) {
    int e2 = 0;
    ok = po_file_write(r, "x", "x", 1, 0, &e2) == 0;
  } else {
    ok = r == NULL && (rc == PO_ENOMEM || (rc == PO_EIO && err != 0));
  }
  po_root_close(r);
  char cmd[160];
  snprintf(cmd, sizeof cmd, "rm -rf %s/new", dir);
  ok = ok && system(cmd) == 0;
  return ok ? 0 : 1;
}

static void root_open_under_faults(void) {
  char path[96];
  snprintf(path, sizeof path, "%s/new/root", dir);
  CHECK(fault_sweep("malloc", ENOMEM, open_new_root, path, 50) >= 3);
  CHECK(fault_sweep("mkdir", EROFS, open_new_root, path, 50) >= 1);
  /* relative to the working directory */
  char cwd[4096];
  REQUIRE(getcwd(cwd, sizeof cwd));
  REQUIRE(chdir(dir) == 0);
  CHECK(fault_sweep("malloc", ENOMEM, open_new_root, "new/root", 50) >= 3);
  CHECK(chdir(cwd) == 0);
}

/* A root whose path no longer resolves (the working directory removed
 * under a relative root): PO_EIO with ENOENT, nothing left open. */
static void root_in_a_removed_directory(void) {
  char gone[96], cwd[4096];
  snprintf(gone, sizeof gone, "%s/gone", dir);
  REQUIRE(getcwd(cwd, sizeof cwd));
  REQUIRE(mkdir(gone, 0777) == 0);
  REQUIRE(chdir(gone) == 0);
  REQUIRE(rmdir(gone) == 0);
  po_root *r = NULL;
  int err = 0;
  CHECK_EQ_INT(po_root_open(".", 0, &r, &err), PO_EIO);
  CHECK_EQ_INT(err, ENOENT);
  CHECK(r == NULL);
  CHECK(chdir(cwd) == 0);
}

/* Without a root, the start directory that cannot be opened is PO_EIO. */
static void no_root_and_no_start_directory(void) {
  char path[96];
  snprintf(path, sizeof path, "%s/plain.txt", dir);
  fault_arm("open", 1, 0, EMFILE);
  int err = 0;
  CHECK_EQ_INT(po_file_write(NULL, path, "x", 1, 0, &err), PO_EIO);
  CHECK_EQ_INT(err, EMFILE);
  fault_disarm();
  CHECK_EQ_INT(po_file_write(NULL, path, "x", 1, 0, &err), 0);
  unlink(path);
}

/* po.files.write and po.files.read under a root, each of poengine's
 * allocations failing in turn: a call raises "out of memory", or each file
 * comes back done or failed with ENOMEM, never wrong. */
static const char files_chunk[] =
    "local po = require('poengine')\n"
    "local root = ...\n"
    "local function check(want, ok, res)\n"
    "  if not ok then\n"
    "    if type(res) == 'table' then\n"
    "      local t = {}\n"
    "      for k, v in pairs(res) do t[#t + 1] = tostring(k) .. '=' .. tostring(v) end\n"
    "      res = table.concat(t, ' ')\n"
    "    end\n"
    "    return tostring(res):find('out of memory', 1, true) and 'ok' or 'raised ' .. tostring(res)\n"
    "  end\n"
    "  for i, w in ipairs(want) do\n"
    "    local r = res[i]\n"
    "    if r.code ~= 'ENOMEM' and r.code ~= w.code and r.content ~= w.content and r.ok ~= w.ok then\n"
    "      return 'file ' .. i .. ': ' .. tostring(r.err)\n"
    "    end\n"
    "  end\n"
    "  return 'ok'\n"
    "end\n"
    "outcome = check({ { ok = true }, { ok = true } }, pcall(po.files.write,\n"
    "  { { path = 'w1', content = 'one' }, { path = 'sub/w2', content = 'two' } }, { root = root .. '/lua' }))\n"
    "if outcome ~= 'ok' then return end\n"
    "outcome = check({ { content = 'one' }, { content = 'two' }, { code = 'ENOENT' } },\n"
    "  pcall(po.files.read, { 'w1', 'sub/w2', 'none' }, { root = root .. '/lua' }))\n"
    "if outcome ~= 'ok' then return end\n"
    "local done, err, code = po.write_file(root .. '/lua/single', 'x', { parents = true })\n"
    "if not (done or code == 'ENOMEM') then outcome = 'write_file: ' .. tostring(err) return end\n"
    "local ok\n"
    "ok, err = pcall(po.files.read, { 'a\\0b' })\n"
    "if ok or not (err:find('po.files.read: paths must not contain zero bytes', 1, true)\n"
    "    or err:find('po.files.read: out of memory', 1, true)) then\n"
    "  outcome = 'zero byte: ' .. tostring(err)\n"
    "end\n";

static int lua_files(void *arg) {
  (void)arg;
  lua_State *L = po_runtime_new();
  if (!L) return 0;
  int ok = luaL_loadstring(L, files_chunk) == 0;
  lua_pushstring(L, dir);
  ok = ok && lua_pcall(L, 1, 0, 0) == 0;
  if (ok) {
    lua_getglobal(L, "outcome");
    const char *said = lua_tostring(L, -1);
    ok = said && strcmp(said, "ok") == 0;
    if (!ok) fprintf(stderr, "lua_files: %s\n", said ? said : "(no outcome)");
  } else {
    const char *msg = lua_tostring(L, -1);
    ok = msg && strstr(msg, "out of memory");
    if (!ok) fprintf(stderr, "lua_files: %s\n", msg ? msg : "(no message)");
  }
  lua_close(L);
  char cmd[160];
  snprintf(cmd, sizeof cmd, "rm -rf %s/lua", dir);
  return ok && system(cmd) == 0 ? 0 : 1;
}

static void lua_files_under_failing_allocation(void) {
  CHECK(fault_sweep("malloc", ENOMEM, lua_files, NULL, 400) >= 10);
}

/* A kernel without openat2: the first ENOSYS moves every later open to
 * the realpath checks, and reading works as before. */
static void no_openat2_falls_back(void) {
  fault_always("openat2", ENOSYS);
  fault_count_start();
  po_strbuf b;
  po_strbuf_init(&b);
  const char *now = content_now(&b);
  CHECK(now && strcmp(now, "old") == 0);
  CHECK_EQ_INT(fault_count("openat2"), 1);
  CHECK_EQ_INT(fault_count("open"), 1);
  po_strbuf_free(&b);
  po_strbuf_init(&b);
  now = content_now(&b);
  CHECK(now && strcmp(now, "old") == 0);
  CHECK_EQ_INT(fault_count("openat2"), 1); /* not tried again */
  po_strbuf_free(&b);
  fault_always(NULL, 0);
  po_fileio_force_fallback(0);
  /* openat2 failing otherwise is the open's failure */
  fault_arm("openat2", 1, 0, EACCES);
  int err = 0;
  po_strbuf_init(&b);
  CHECK_EQ_INT(po_file_read(root, "f.txt", &b, &err), PO_EIO);
  CHECK_EQ_INT(err, EACCES);
  fault_disarm();
  po_strbuf_free(&b);
}

/* The same, confined by realpath checks (kernels without openat2). */
static void on_the_fallback(void) {
  po_fileio_force_fallback(1);
  fallback = 1;
  every_allocation_fails_once();
  every_open_fails_once();
  every_write_fails_once();
  every_fsync_fails_once();
  every_mkdir_fails_once();
  reads_under_faults();
  po_fileio_force_fallback(0);
  fallback = 0;
}

int main(void) {
  RUN(setup);
  RUN(every_allocation_fails_once);
  RUN(every_write_fails_once);
  RUN(every_fsync_fails_once);
  RUN(every_open_fails_once);
  RUN(every_close_fails_once);
  RUN(every_mkdir_fails_once);
  RUN(reads_under_faults);
  RUN(root_open_under_faults);
  RUN(root_in_a_removed_directory);
  RUN(no_root_and_no_start_directory);
  RUN(no_openat2_falls_back);
  RUN(on_the_fallback);
  RUN(lua_files_under_failing_allocation);
  po_root_close(root);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd) != 0) return 1;
  return TEST_SUMMARY();
}
