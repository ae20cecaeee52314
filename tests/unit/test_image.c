/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for host-tool/image.c: the OCI parsers with good and hostile
   inputs, source specs, image.json round trips, and the cache's lookup,
   listing and removal on a hand-made state dir (import itself needs umoci
   and mkfs, and is covered by tests/integration/test_image.py). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "image/image.h"

#define HEX_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define HEX_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define HEX_AB "abababababababababababababababababababababababababababababababab"

static struct oci_config *
parse_ok (const char *json)
{
  struct err *e = NULL;
  struct oci_config *c = NULL;

  if (oci_config_parse (json, strlen (json), &c, &e) < 0)
    fail_msg ("unexpected error: %s", e->msg);
  assert_non_null (c);
  return c;
}

/* Parses json, expecting failure with a message containing needle. */
static void
parse_bad (const char *json, size_t len, const char *needle)
{
  struct err *e = NULL;
  struct oci_config *c = NULL;

  assert_true (oci_config_parse (json, len, &c, &e) < 0);
  assert_null (c);
  assert_non_null (e);
  if (strstr (e->msg, needle) == NULL)
    fail_msg ("error \"%s\" lacks \"%s\"", e->msg, needle);
  err_release (&e);
}

static void
parse_bad_str (const char *json, const char *needle)
{
  parse_bad (json, strlen (json), needle);
}

static void
test_config_full (void **state)
{
  (void) state;
  struct oci_config *c = parse_ok (
      "{\"architecture\":\"amd64\",\"config\":{\"User\":\"1000:1000\",\"Env\":[\"PATH=/bin\","
      "\"EMPTY=\",\"X=a=b\"],\"Entrypoint\":[\"/wrapper\",\"--flag\"],\"Cmd\":[\"arg 1\"],"
      "\"WorkingDir\":\"/home/u\",\"ExposedPorts\":{\"9222/tcp\":{}}},\"rootfs\":{}}");

  assert_int_equal (c->n_env, 3);
  assert_string_equal (c->env[0], "PATH=/bin");
  assert_string_equal (c->env[1], "EMPTY=");
  assert_string_equal (c->env[2], "X=a=b");
  assert_null (c->env[3]);
  assert_int_equal (c->n_entrypoint, 2);
  assert_string_equal (c->entrypoint[1], "--flag");
  assert_int_equal (c->n_cmd, 1);
  assert_string_equal (c->cmd[0], "arg 1");
  assert_string_equal (c->workdir, "/home/u");
  assert_string_equal (c->user, "1000:1000");
  oci_config_free (c);
}

static void
test_config_absent_fields (void **state)
{
  (void) state;
  const char *inputs[] = { "{}", "{\"config\":null}", "{\"config\":{}}",
                           "{\"config\":{\"Env\":null,\"Cmd\":null,\"User\":null}}",
                           " \n{\"config\":{\"Entrypoint\":[]}}\n " };

  for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++)
    {
      struct oci_config *c = parse_ok (inputs[i]);

      assert_int_equal (c->n_env + c->n_entrypoint + c->n_cmd, 0);
      assert_string_equal (c->workdir, "");
      assert_string_equal (c->user, "");
      oci_config_free (c);
    }
}

static void
test_config_unicode (void **state)
{
  (void) state;
  struct oci_config *c = parse_ok ("{\"config\":{\"Env\":[\"NAME=h\\u00e9llo \\u2603\"]}}");

  assert_string_equal (c->env[0], "NAME=h\xc3\xa9llo \xe2\x98\x83");
  oci_config_free (c);
}

static void
test_config_hostile (void **state)
{
  (void) state;
  static const char nul_in_middle[] = "{\"config\":{}}\0garbage";

  parse_bad_str ("", "truncated");
  parse_bad_str ("{\"config\":{\"Env\":[", "truncated");
  parse_bad_str ("not json", "invalid JSON");
  parse_bad_str ("[1,2]", "not a JSON object");
  parse_bad_str ("\"str\"", "not a JSON object");
  parse_bad_str ("{} {}", "");
  parse_bad (nul_in_middle, sizeof nul_in_middle - 1, "");
  parse_bad_str ("{\"config\":[]}", "not an object");
  parse_bad_str ("{\"config\":{\"Env\":\"PATH=/bin\"}}", "Env: not a list");
  parse_bad_str ("{\"config\":{\"Env\":[1]}}", "Env[0]: not a string");
  parse_bad_str ("{\"config\":{\"Env\":[\"A=1\",\"NOEQUALS\"]}}", "Env[1]: not NAME=value");
  parse_bad_str ("{\"config\":{\"Env\":[\"=x\"]}}", "not NAME=value");
  parse_bad_str ("{\"config\":{\"Cmd\":[\"a\\nb\"]}}", "newline");
  parse_bad_str ("{\"config\":{\"User\":\"r\\u0000t\"}}", "NUL");
  parse_bad_str ("{\"config\":{\"WorkingDir\":7}}", "WorkingDir: not a string");
  parse_bad_str ("{\"config\":{\"User\":\"\xff\xfe\"}}", "invalid JSON");
}

static void
test_config_limits (void **state)
{
  (void) state;
  size_t big = OCI_STR_MAX + 1, len;
  char *s = malloc (big + 64), *p;

  /* One string over the limit. */
  len = (size_t) snprintf (s, 64, "{\"config\":{\"User\":\"");
  memset (s + len, 'u', big);
  len += big;
  memcpy (s + len, "\"}}", 4);
  len += 3;
  parse_bad (s, len, "more than");
  free (s);

  /* Too many list entries. */
  s = malloc ((OCI_LIST_MAX + 1) * 4 + 64);
  p = s + sprintf (s, "{\"config\":{\"Cmd\":[");
  for (unsigned i = 0; i <= OCI_LIST_MAX; i++)
    p += sprintf (p, "%s\"\"", i ? "," : "");
  p += sprintf (p, "]}}");
  parse_bad (s, (size_t) (p - s), "entries");
  free (s);

  /* Nesting deeper than any OCI document. */
  s = malloc (256);
  p = s + sprintf (s, "{\"config\":{\"Labels\":");
  for (int i = 0; i < 40; i++)
    *p++ = '[';
  for (int i = 0; i < 40; i++)
    *p++ = ']';
  p += sprintf (p, "}}");
  parse_bad (s, (size_t) (p - s), "invalid JSON");
  free (s);

  /* Input larger than OCI_JSON_MAX is refused before parsing. */
  s = calloc (1, OCI_JSON_MAX + 2);
  memset (s, ' ', OCI_JSON_MAX + 1);
  s[0] = '{';
  s[OCI_JSON_MAX] = '}';
  parse_bad (s, OCI_JSON_MAX + 1, "more than");
  free (s);
}

static void
test_digest (void **state)
{
  (void) state;
  struct err *e = NULL;
  char hex[IMAGE_ID_LEN + 1];
  const char *bad[] = { "",
                        "sha256:",
                        "sha256:" HEX_A "a",
                        "sha256:" HEX_A "/",
                        "sha512:" HEX_A,
                        "SHA256:" HEX_A,
                        "sha256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                        "sha256:../../../../etc/passwd",
                        "sha256:aaaa" };

  assert_int_equal (oci_digest_hex ("sha256:" HEX_A, hex, &e), 0);
  assert_string_equal (hex, HEX_A);
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    {
      assert_true (oci_digest_hex (bad[i], hex, &e) < 0);
      assert_non_null (e);
      err_release (&e);
    }
}

#define DESC(mt, hex, tag)                                                                         \
  "{\"mediaType\":\"" mt "\",\"digest\":\"sha256:" hex "\",\"size\":1,"                            \
  "\"annotations\":{\"org.opencontainers.image.ref.name\":\"" tag "\"}}"
#define MT_M "application/vnd.oci.image.manifest.v1+json"
#define MT_I "application/vnd.oci.image.index.v1+json"

static int
pick (const char *json, const char *tag, char hex[IMAGE_ID_LEN + 1], bool *is_index, struct err **e)
{
  return oci_index_pick (json, strlen (json), tag, hex, is_index, e);
}

static void
test_index_pick (void **state)
{
  (void) state;
  const char *two = "{\"schemaVersion\":2,\"manifests\":[" DESC (MT_M, HEX_A, "latest") "," DESC (
      MT_I, HEX_B, "multi") "]}";
  const char *one_untagged = "{\"manifests\":[{\"digest\":\"sha256:" HEX_AB "\"}]}";
  struct err *e = NULL;
  char hex[IMAGE_ID_LEN + 1];
  bool is_index;

  assert_int_equal (pick (two, "latest", hex, &is_index, &e), 0);
  assert_string_equal (hex, HEX_A);
  assert_false (is_index);
  assert_int_equal (pick (two, "multi", hex, &is_index, &e), 0);
  assert_string_equal (hex, HEX_B);
  assert_true (is_index);
  assert_true (pick (two, "nope", hex, &is_index, &e) < 0);
  assert_non_null (strstr (e->msg, "no image tagged \"nope\""));
  err_release (&e);
  assert_true (pick (two, NULL, hex, &is_index, &e) < 0);
  assert_non_null (strstr (e->msg, "2 images"));
  err_release (&e);
  assert_int_equal (pick (one_untagged, NULL, hex, &is_index, &e), 0);
  assert_string_equal (hex, HEX_AB);
  assert_false (is_index);
}

static void
test_index_hostile (void **state)
{
  (void) state;
  const char *bad[] = {
    "{}",
    "{\"manifests\":{}}",
    "{\"manifests\":[]}",
    "{\"manifests\":[1]}",
    "{\"manifests\":[{}]}",
    "{\"manifests\":[{\"digest\":5}]}",
    "{\"manifests\":[{\"digest\":\"sha256:../../x\"}]}",
    "{\"manifests\":[{\"digest\":\"sha256:" HEX_A "\",\"mediaType\":\"text/plain\"}]}",
    "{\"manifests\":[{\"digest\":\"sha256:" HEX_A "\",\"mediaType\":[]}]}",
    "{\"manifests\":[{\"digest\":\"sha256:" HEX_A "\",\"annotations\":7}]} x",
  };
  struct err *e = NULL;
  char hex[IMAGE_ID_LEN + 1];
  bool is_index;

  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    {
      if (pick (bad[i], NULL, hex, &is_index, &e) == 0)
        fail_msg ("accepted: %s", bad[i]);
      assert_non_null (e);
      err_release (&e);
    }
  /* A malformed annotations object just means "untagged". */
  assert_true (pick ("{\"manifests\":[{\"digest\":\"sha256:" HEX_A "\",\"annotations\":7}]}",
                     "latest", hex, &is_index, &e)
               < 0);
  err_release (&e);
}

static void
test_manifest (void **state)
{
  (void) state;
  const char *good = "{\"schemaVersion\":2,\"mediaType\":\"" MT_M "\",\"config\":{\"mediaType\":"
                     "\"application/vnd.oci.image.config.v1+json\",\"digest\":\"sha256:" HEX_B
                     "\",\"size\":7},\"layers\":[{},{},{}]}";
  const char *bad[] = {
    "{\"layers\":[]}",
    "{\"config\":{},\"layers\":[]}",
    "{\"config\":{\"digest\":\"md5:abc\"},\"layers\":[]}",
    "{\"config\":{\"digest\":\"sha256:" HEX_B "\"}}",
    "{\"config\":{\"digest\":\"sha256:" HEX_B "\"},\"layers\":{}}",
    "{\"mediaType\":\"" MT_I "\",\"config\":{\"digest\":\"sha256:" HEX_B "\"},\"layers\":[]}",
  };
  struct err *e = NULL;
  char hex[IMAGE_ID_LEN + 1];
  size_t n;

  assert_int_equal (oci_manifest_parse (good, strlen (good), hex, &n, &e), 0);
  assert_string_equal (hex, HEX_B);
  assert_int_equal (n, 3);
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    {
      if (oci_manifest_parse (bad[i], strlen (bad[i]), hex, &n, &e) == 0)
        fail_msg ("accepted: %s", bad[i]);
      err_release (&e);
    }
}

static void
test_source_parse (void **state)
{
  (void) state;
  struct image_source s;
  struct err *e = NULL;
  char dir[] = "/tmp/test_image_src.XXXXXX";
  char file[64];
  FILE *f;

  assert_int_equal (image_source_parse ("oci:/a/b:v1.2_x-y", &s, &e), 0);
  assert_int_equal (s.kind, IMAGE_SRC_OCI);
  assert_string_equal (s.path, "/a/b");
  assert_string_equal (s.tag, "v1.2_x-y");
  image_source_clear (&s);

  assert_int_equal (image_source_parse ("oci:/a/b", &s, &e), 0);
  assert_string_equal (s.path, "/a/b");
  assert_null (s.tag);
  image_source_clear (&s);

  /* A colon inside the directory, not followed by a tag. */
  assert_int_equal (image_source_parse ("oci:/a:b/c", &s, &e), 0);
  assert_string_equal (s.path, "/a:b/c");
  assert_null (s.tag);
  image_source_clear (&s);

  assert_int_equal (image_source_parse ("docker-archive:/x/y.tar", &s, &e), 0);
  assert_int_equal (s.kind, IMAGE_SRC_DOCKER_ARCHIVE);
  assert_string_equal (s.path, "/x/y.tar");
  image_source_clear (&s);

  assert_non_null (mkdtemp (dir));
  assert_int_equal (image_source_parse (dir, &s, &e), 0);
  assert_int_equal (s.kind, IMAGE_SRC_OCI);
  image_source_clear (&s);
  snprintf (file, sizeof file, "%s/img.tar", dir);
  f = fopen (file, "w");
  assert_non_null (f);
  fclose (f);
  assert_int_equal (image_source_parse (file, &s, &e), 0);
  assert_int_equal (s.kind, IMAGE_SRC_DOCKER_ARCHIVE);
  assert_string_equal (s.path, file);
  image_source_clear (&s);
  unlink (file);
  rmdir (dir);

  const char *bad[]
      = { "/nonexistent/chvm", "oci:",     "oci::latest", "oci:/d:bad tag", "oci:/d:-x",
          "docker-archive:",   "/dev/null" };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    {
      if (image_source_parse (bad[i], &s, &e) == 0)
        fail_msg ("accepted: %s", bad[i]);
      assert_null (s.path);
      err_release (&e);
    }
}

static struct image *
sample_image (void)
{
  struct image *img = calloc (1, sizeof *img);

  memcpy (img->id, HEX_A, sizeof img->id);
  img->format = IMAGE_EROFS;
  img->rootfs_size = 123456789012ull;
  img->imported = 1700000000;
  img->source = strdup ("oci:/some \"dir\":latest");
  img->config = parse_ok ("{\"config\":{\"Env\":[\"A=1\",\"B=\\\"q\\\"\"],\"Entrypoint\":"
                          "[\"/e\"],\"WorkingDir\":\"/w\",\"User\":\"u\"}}");
  return img;
}

static void
test_meta_roundtrip (void **state)
{
  (void) state;
  struct image *img = sample_image (), *back = calloc (1, sizeof *back);
  struct err *e = NULL;
  char *json = NULL;

  assert_int_equal (image_meta_to_json (img, &json, &e), 0);
  assert_int_equal (image_meta_parse (json, strlen (json), back, &e), 0);
  assert_string_equal (back->id, img->id);
  assert_int_equal (back->format, IMAGE_EROFS);
  assert_int_equal (back->rootfs_size, img->rootfs_size);
  assert_int_equal (back->imported, img->imported);
  assert_string_equal (back->source, img->source);
  assert_int_equal (back->config->n_env, 2);
  assert_string_equal (back->config->env[1], "B=\"q\"");
  assert_int_equal (back->config->n_cmd, 0);
  assert_string_equal (back->config->entrypoint[0], "/e");
  assert_string_equal (back->config->workdir, "/w");
  assert_string_equal (back->config->user, "u");
  /* The exec fields sit at the top level, as other tools read them. */
  assert_non_null (strstr (json, "\"Entrypoint\""));
  free (json);
  image_free (img);
  image_free (back);
}

static void
test_meta_hostile (void **state)
{
  (void) state;
  const char *bad[] = {
    "{\"format\":\"ext4\",\"rootfs_size\":1}",
    "{\"id\":\"../../etc\",\"format\":\"ext4\",\"rootfs_size\":1}",
    "{\"id\":\"" HEX_A "\",\"format\":\"xfs\",\"rootfs_size\":1}",
    "{\"id\":\"" HEX_A "\",\"format\":\"ext4\",\"rootfs_size\":-1}",
    "{\"id\":\"" HEX_A "\",\"format\":\"ext4\",\"rootfs_size\":\"1\"}",
    "{\"id\":\"" HEX_A "\",\"format\":\"ext4\",\"rootfs_size\":1,\"Env\":[\"X\"]}",
  };
  struct err *e = NULL;

  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    {
      struct image *img = calloc (1, sizeof *img);

      if (image_meta_parse (bad[i], strlen (bad[i]), img, &e) == 0)
        fail_msg ("accepted: %s", bad[i]);
      err_release (&e);
      image_free (img);
    }
}

/* Writes a cache entry by hand: images/<hex>/{image.json,rootfs.ext4}. */
static void
make_entry (const char *root, const char *hex, int64_t imported)
{
  struct image *img = sample_image ();
  struct err *e = NULL;
  char path[512], *json = NULL;
  FILE *f;

  memcpy (img->id, hex, IMAGE_ID_LEN + 1);
  img->format = IMAGE_EXT4;
  img->imported = imported;
  assert_int_equal (image_meta_to_json (img, &json, &e), 0);
  snprintf (path, sizeof path, "%s/images", root);
  mkdir (path, 0755);
  snprintf (path, sizeof path, "%s/images/%s", root, hex);
  assert_int_equal (mkdir (path, 0755), 0);
  snprintf (path, sizeof path, "%s/images/%s/image.json", root, hex);
  f = fopen (path, "w");
  fputs (json, f);
  fclose (f);
  snprintf (path, sizeof path, "%s/images/%s/rootfs.ext4", root, hex);
  f = fopen (path, "w");
  fclose (f);
  free (json);
  image_free (img);
}

static void
test_cache (void **state)
{
  (void) state;
  char root[] = "/tmp/test_image_cache.XXXXXX", path[512];
  struct image **v = NULL, *img = NULL;
  struct err *e = NULL;
  char id[IMAGE_ID_LEN + 1];
  size_t n;

  assert_non_null (mkdtemp (root));
  /* No images dir yet: an empty list, not an error. */
  assert_int_equal (image_list (root, &v, &n, &e), 0);
  assert_int_equal (n, 0);
  make_entry (root, HEX_A, 100);
  make_entry (root, HEX_AB, 200);
  /* An interrupted import's temp dir is not an image. */
  snprintf (path, sizeof path, "%s/images/.tmp-1-xyz", root);
  assert_int_equal (mkdir (path, 0755), 0);

  assert_int_equal (image_list (root, &v, &n, &e), 0);
  assert_int_equal (n, 2);
  assert_string_equal (v[0]->id, HEX_AB); /* newest first */
  assert_string_equal (v[1]->id, HEX_A);
  image_list_free (v, n);

  assert_true (image_lookup (root, "aaaa", &img, &e) == 0);
  assert_string_equal (img->id, HEX_A);
  snprintf (path, sizeof path, "%s/images/%s/rootfs.ext4", root, HEX_A);
  assert_string_equal (img->rootfs, path);
  assert_string_equal (img->config->entrypoint[0], "/e");
  image_free (img);
  img = NULL;

  /* "a" is too short; "aba" too; "abab" unique; full id with sha256: prefix. */
  assert_true (image_lookup (root, "a", &img, &e) < 0);
  err_release (&e);
  assert_int_equal (image_resolve (root, "sha256:" HEX_AB, NULL, NULL, &img, &e), 0);
  assert_string_equal (img->id, HEX_AB);
  image_free (img);
  img = NULL;
  assert_int_equal (image_resolve (root, "abab", NULL, NULL, &img, &e), 0);
  image_free (img);
  img = NULL;
  /* An unknown id is an error, not an import of a path named like it. */
  assert_true (image_resolve (root, "cccc", NULL, NULL, &img, &e) < 0);
  assert_non_null (strstr (e->msg, "no image"));
  err_release (&e);

  /* Ambiguous prefix. */
  make_entry (root, "aaaabbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", 50);
  assert_true (image_lookup (root, "aaaa", &img, &e) < 0);
  assert_non_null (strstr (e->msg, "ambiguous"));
  err_release (&e);

  assert_int_equal (image_remove (root, "abab", id, &e), 0);
  assert_string_equal (id, HEX_AB);
  assert_true (image_lookup (root, HEX_AB, &img, &e) < 0);
  err_release (&e);
  assert_true (image_remove (root, "abab", id, &e) < 0);
  err_release (&e);

  assert_int_equal (image_remove (root, HEX_A, id, &e), 0);
  assert_int_equal (image_remove (root, "aaaab", id, &e), 0);
  assert_int_equal (image_list (root, &v, &n, &e), 0);
  assert_int_equal (n, 0);
  image_list_free (v, n);
  snprintf (path, sizeof path, "rm -rf '%s'", root);
  assert_int_equal (system (path), 0);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_config_full),    cmocka_unit_test (test_config_absent_fields),
    cmocka_unit_test (test_config_unicode), cmocka_unit_test (test_config_hostile),
    cmocka_unit_test (test_config_limits),  cmocka_unit_test (test_digest),
    cmocka_unit_test (test_index_pick),     cmocka_unit_test (test_index_hostile),
    cmocka_unit_test (test_manifest),       cmocka_unit_test (test_source_parse),
    cmocka_unit_test (test_meta_roundtrip), cmocka_unit_test (test_meta_hostile),
    cmocka_unit_test (test_cache),
  };

  return cmocka_run_group_tests (tests, NULL, NULL);
}
