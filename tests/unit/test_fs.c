/* SPDX-License-Identifier: Apache-2.0 */
/* Files root handles in a directory the VMM's uid can write: links, FIFOs
   and hard links put under the names root opens are never followed,
   opened for data or given away (sys/fs.c, vm/vmmuser.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "state/vmrec.h"
#include "sys/fs.h"
#include "vm/vmmuser.h"

/* A uid and gid of nobody's, for what root would hand out. */
#define OTHER_ID 4000123

struct dirs
{
  char dir[64];    /* the VM directory */
  char victim[96]; /* a file of root's outside it */
};

static void
write_str (const char *path, const char *s)
{
  int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

  assert_true (fd >= 0);
  assert_int_equal (write (fd, s, strlen (s)), (ssize_t) strlen (s));
  close (fd);
}

static void
expect_content (const char *path, const char *want)
{
  char buf[256] = "";
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  ssize_t n;

  assert_true (fd >= 0);
  n = read (fd, buf, sizeof buf - 1);
  close (fd);
  assert_true (n >= 0);
  buf[n] = '\0';
  assert_string_equal (buf, want);
}

static int
setup (void **state)
{
  struct dirs *d = calloc (1, sizeof *d);
  char outside[] = "/tmp/chvm-victim-XXXXXX";

  if (d == NULL)
    return -1;
  snprintf (d->dir, sizeof d->dir, "/tmp/chvm-fs-XXXXXX");
  if (mkdtemp (d->dir) == NULL || mkdtemp (outside) == NULL)
    return -1;
  snprintf (d->victim, sizeof d->victim, "%s/secret", outside);
  write_str (d->victim, "root's\n");
  *state = d;
  return 0;
}

static int
teardown (void **state)
{
  struct dirs *d = *state;
  char outside[96];
  struct err *err = NULL;

  snprintf (outside, sizeof outside, "%s", d->victim);
  *strrchr (outside, '/') = '\0';
  fs_rmtree (d->dir, &err);
  fs_rmtree (outside, &err);
  err_release (&err);
  free (d);
  return 0;
}

static void
in_dir (const struct dirs *d, const char *name, char *out, size_t len)
{
  snprintf (out, len, "%s/%s", d->dir, name);
}

/* The console logger's file: a link to a file of root's is replaced by a
   file of its own, and what the guest prints goes there. */
static void
test_open_log_replaces_symlink (void **state)
{
  struct dirs *d = *state;
  char log[128];
  struct err *err = NULL;
  struct stat st;
  int fd;

  in_dir (d, "console.log", log, sizeof log);
  assert_int_equal (symlink (d->victim, log), 0);
  fd = fs_open_log (log, false, &err);
  assert_true (fd >= 0);
  assert_int_equal (write (fd, "x::0:0::/root:/bin/sh\n", 22), 22);
  close (fd);
  expect_content (d->victim, "root's\n");
  assert_int_equal (lstat (log, &st), 0);
  assert_true (S_ISREG (st.st_mode));

  /* A rotation's truncate empties only its own file. */
  fd = fs_open_log (log, true, &err);
  assert_true (fd >= 0);
  assert_int_equal (fstat (fd, &st), 0);
  assert_int_equal (st.st_size, 0);
  close (fd);
}

/* A hard link to a file of root's and a FIFO under the name are not
   written to (the FIFO would block the logger). */
static void
test_open_log_refuses_hardlink_and_fifo (void **state)
{
  struct dirs *d = *state;
  char log[128], outside_link[128];
  struct err *err = NULL;
  int fd;

  in_dir (d, "console.log", log, sizeof log);
  /* The victim's own directory: a hard link must stay on one filesystem. */
  snprintf (outside_link, sizeof outside_link, "%s", d->victim);
  *strrchr (outside_link, '/') = '\0';
  strncat (outside_link, "/linked", sizeof outside_link - strlen (outside_link) - 1);
  write_str (outside_link, "root's too\n");
  assert_int_equal (link (outside_link, log), 0);
  fd = fs_open_log (log, true, &err);
  assert_true (fd >= 0);
  assert_int_equal (write (fd, "guest\n", 6), 6);
  close (fd);
  expect_content (outside_link, "root's too\n");
  expect_content (log, "guest\n");

  assert_int_equal (unlink (log), 0);
  assert_int_equal (mkfifo (log, 0600), 0);
  alarm (10); /* without the fix, the open blocks */
  fd = fs_open_log (log, false, &err);
  alarm (0);
  assert_true (fd >= 0);
  close (fd);
}

/* A FIFO planted in a snapshot being written neither blocks the fsync of
   the tree nor is opened. */
static void
test_fsync_tree_skips_fifo (void **state)
{
  struct dirs *d = *state;
  char path[128];
  struct err *err = NULL;

  in_dir (d, "memory-ranges", path, sizeof path);
  write_str (path, "data");
  in_dir (d, "state.json", path, sizeof path);
  assert_int_equal (mkfifo (path, 0600), 0);
  in_dir (d, "config.json", path, sizeof path);
  assert_int_equal (symlink (d->victim, path), 0);
  alarm (10); /* without the fix, opening the FIFO blocks forever */
  assert_int_equal (fs_fsync_tree (d->dir, &err), 0);
  alarm (0);
}

/* A snapshot's config.json is read by root from a directory the VMM's uid
   writes: a symlink to root's file is refused, a FIFO neither blocks nor
   reads, a regular file reads whole. */
static void
test_read_small_regular_refuses_links (void **state)
{
  struct dirs *d = *state;
  char path[128], *text = NULL;
  struct err *err = NULL;
  size_t len = 0;

  in_dir (d, "config.json", path, sizeof path);
  assert_int_equal (symlink (d->victim, path), 0);
  assert_true (fs_read_small_regular (path, 1024, &text, &len, &err) < 0);
  assert_null (text);
  err_release (&err);
  in_dir (d, "state.json", path, sizeof path);
  assert_int_equal (mkfifo (path, 0600), 0);
  alarm (10); /* opening a FIFO for reading would block forever */
  assert_true (fs_read_small_regular (path, 1024, &text, &len, &err) < 0);
  alarm (0);
  err_release (&err);
  in_dir (d, "memory-ranges", path, sizeof path);
  write_str (path, "data");
  assert_int_equal (fs_read_small_regular (path, 1024, &text, &len, &err), 0);
  assert_int_equal (len, 4);
  assert_string_equal (text, "data");
  free (text);
}

/* rmtree removes a link to a directory outside as the link, not what is
   below it. */
static void
test_rmtree_does_not_follow (void **state)
{
  struct dirs *d = *state;
  char path[256], sub[128], outside[96];
  struct err *err = NULL;
  struct stat st;

  snprintf (outside, sizeof outside, "%s", d->victim);
  *strrchr (outside, '/') = '\0';
  snprintf (sub, sizeof sub, "%s/snapshot", d->dir);
  assert_int_equal (mkdir (sub, 0700), 0);
  snprintf (path, sizeof path, "%s/escape", sub);
  assert_int_equal (symlink (outside, path), 0);
  snprintf (path, sizeof path, "%s/fifo", sub);
  assert_int_equal (mkfifo (path, 0600), 0);
  assert_int_equal (fs_rmtree (sub, &err), 0);
  assert_true (lstat (sub, &st) < 0 && errno == ENOENT);
  expect_content (d->victim, "root's\n");
  assert_int_equal (fs_rmtree (sub, &err), 0); /* gone is fine */
}

/* An unpacked root filesystem nests deep (node_modules): removed whole. */
static void
test_rmtree_deep (void **state)
{
  struct dirs *d = *state;
  char path[4096];
  struct err *err = NULL;
  struct stat st;
  size_t n;

  n = (size_t) snprintf (path, sizeof path, "%s/rootfs", d->dir);
  assert_int_equal (mkdir (path, 0700), 0);
  for (int i = 0; i < 40; i++)
    {
      n += (size_t) snprintf (path + n, sizeof path - n, "/node_modules");
      assert_int_equal (mkdir (path, 0700), 0);
    }
  snprintf (path + n, sizeof path - n, "/index.js");
  write_str (path, "x");
  snprintf (path, sizeof path, "%s/rootfs", d->dir);
  assert_int_equal (fs_rmtree (path, &err), 0);
  assert_true (lstat (path, &st) < 0 && errno == ENOENT);
}

/* fs_give hands over a plain file; a link, a FIFO or a hard-linked file is
   refused and left as it was. */
static void
test_give_refuses_links (void **state)
{
  struct dirs *d = *state;
  char path[128];
  struct err *err = NULL;
  struct stat st;

  if (geteuid () != 0)
    skip ();
  in_dir (d, "events.json", path, sizeof path);
  assert_int_equal (symlink (d->victim, path), 0);
  assert_true (fs_give (path, OTHER_ID, OTHER_ID, -1, false, &err) < 0);
  assert_int_equal (err->status, EPERM);
  err_release (&err);
  assert_int_equal (stat (d->victim, &st), 0);
  assert_int_equal (st.st_uid, 0);

  assert_int_equal (unlink (path), 0);
  write_str (path, "{}");
  assert_int_equal (fs_give (path, OTHER_ID, OTHER_ID, 0640, true, &err), 0);
  assert_int_equal (stat (path, &st), 0);
  assert_int_equal (st.st_uid, OTHER_ID);
  assert_int_equal (st.st_mode & 07777, 0640);
  assert_int_equal (fs_give ("/nonexistent/x", 1, 1, -1, false, &err), 0);
}

/* Every restore prepares the VM dir for its VMM uid: a link the uid put at
   events.json must not hand root's file to the uid. */
static void
test_vmmuser_prepare_with_planted_links (void **state)
{
  struct dirs *d = *state;
  struct vm_record *r;
  char root[] = "/tmp/chvm-root-XXXXXX", vms[96], path[128];
  struct err *err = NULL;
  struct stat st;

  if (geteuid () != 0)
    skip ();
  r = calloc (1, sizeof *r);
  assert_non_null (r);
  assert_non_null (mkdtemp (root));
  snprintf (vms, sizeof vms, "%s/vms", root);
  assert_int_equal (mkdir (vms, 0700), 0);
  r->vmm_uid = OTHER_ID;
  in_dir (d, "events.json", path, sizeof path);
  assert_int_equal (symlink (d->victim, path), 0);
  in_dir (d, "upper.img", r->upper_disk, sizeof r->upper_disk);
  write_str (r->upper_disk, "");
  in_dir (d, "config.img", r->config_disk, sizeof r->config_disk);
  write_str (r->config_disk, "");

  assert_int_equal (vmmuser_prepare (root, d->dir, r, &err), 0);
  assert_int_equal (stat (d->victim, &st), 0);
  assert_int_equal (st.st_uid, 0);
  assert_true (lstat (path, &st) < 0); /* the link is gone, the VMM makes the file */
  assert_int_equal (stat (r->upper_disk, &st), 0);
  assert_int_equal (st.st_uid, OTHER_ID);
  assert_int_equal (stat (r->config_disk, &st), 0);
  assert_int_equal (st.st_uid, 0);
  assert_int_equal (st.st_gid, OTHER_ID);

  /* A link at the upper disk's name: refused, the victim untouched. */
  assert_int_equal (unlink (r->upper_disk), 0);
  assert_int_equal (symlink (d->victim, r->upper_disk), 0);
  assert_true (vmmuser_prepare (root, d->dir, r, &err) < 0);
  err_release (&err);
  assert_int_equal (stat (d->victim, &st), 0);
  assert_int_equal (st.st_uid, 0);
  fs_rmtree (root, &err);
  free (r);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_open_log_replaces_symlink, setup, teardown),
    cmocka_unit_test_setup_teardown (test_open_log_refuses_hardlink_and_fifo, setup, teardown),
    cmocka_unit_test_setup_teardown (test_fsync_tree_skips_fifo, setup, teardown),
    cmocka_unit_test_setup_teardown (test_read_small_regular_refuses_links, setup, teardown),
    cmocka_unit_test_setup_teardown (test_rmtree_does_not_follow, setup, teardown),
    cmocka_unit_test_setup_teardown (test_rmtree_deep, setup, teardown),
    cmocka_unit_test_setup_teardown (test_give_refuses_links, setup, teardown),
    cmocka_unit_test_setup_teardown (test_vmmuser_prepare_with_planted_links, setup, teardown),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
