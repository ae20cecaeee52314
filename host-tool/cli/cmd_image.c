/* SPDX-License-Identifier: Apache-2.0 */
/* chvm image import|ls|rm: the image cache (image.c) on the command line. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cleanup.h"
#include "cli/commands.h"
#include "cli/report.h"
#include "image/image.h"
#include "state/vmstate.h"
#include "sys/json.h"
#include "vm/template.h"
#include "vm/vmctl.h"

static void
usage (FILE *out)
{
  fprintf (out, "Usage: chvm image import SOURCE [--format ext4|erofs] [--json]\n"
                "       chvm image ls [--json]\n"
                "       chvm image rm ID\n\n"
                "SOURCE: oci:DIR[:TAG], docker-archive:FILE.tar, or a path (a directory is\n"
                "an OCI layout, a file a docker archive).  ID: an image id or a unique\n"
                "prefix of one (at least 4 hex digits).\n");
}

static void
progress (void *ctx, const char *msg)
{
  (void) ctx;
  fprintf (stderr, "chvm: %s\n", msg);
}

/* image fields as JSON (ls and import --json share it). */
static struct json_object *
image_json (const struct image *img, const bool *cached)
{
  struct json_object *o = json_object_new_object ();

  json_object_object_add (o, "id", json_object_new_string (img->id));
  json_object_object_add (o, "format", json_object_new_string (image_format_name (img->format)));
  json_object_object_add (o, "rootfs", json_object_new_string (img->rootfs));
  json_object_object_add (o, "rootfs_size", json_object_new_int64 ((int64_t) img->rootfs_size));
  json_object_object_add (o, "source", json_object_new_string (img->source));
  json_object_object_add (o, "imported", json_object_new_int64 (img->imported));
  if (cached != NULL)
    json_object_object_add (o, "cached", json_object_new_boolean (*cached));
  return o;
}

static int
do_import (const struct global_opts *g, const char *root, int argc, char **argv)
{
  static const struct option opts[] = { { "format", required_argument, NULL, 'f' },
                                        { "help", no_argument, NULL, 'h' },
                                        { NULL, 0, NULL, 0 } };
  enum image_format fmt = IMAGE_EXT4;
  cleanup_err struct err *e = NULL;
  struct image *img = NULL;
  bool hit;
  int c;

  optind = 1;
  while ((c = getopt_long (argc, argv, "f:h", opts, NULL)) != -1)
    switch (c)
      {
      case 'f':
        if (image_format_parse (optarg, &fmt) < 0)
          {
            fprintf (stderr, "chvm image import: --format must be ext4 or erofs\n");
            return 2;
          }
        break;
      case 'h':
        usage (stdout);
        return 0;
      default:
        usage (stderr);
        return 2;
      }
  if (optind + 1 != argc)
    {
      usage (stderr);
      return 2;
    }
  if (image_import (root, argv[optind], fmt, progress, NULL, &img, &hit, &e) < 0)
    return cli_fail ("image import", &e);
  if (g->json)
    {
      cleanup_json struct json_object *o = image_json (img, &hit);
      json_print (stdout, o);
    }
  else
    printf ("%s\n", img->id);
  image_free (img);
  return 0;
}

static int
do_ls (const struct global_opts *g, const char *root, int argc)
{
  cleanup_err struct err *e = NULL;
  struct image **v;
  size_t n;

  if (argc != 1)
    {
      usage (stderr);
      return 2;
    }
  if (image_list (root, &v, &n, &e) < 0)
    return cli_fail ("image ls", &e);
  if (g->json)
    {
      cleanup_json struct json_object *a = json_object_new_array ();

      for (size_t i = 0; i < n; i++)
        json_object_array_add (a, image_json (v[i], NULL));
      json_print (stdout, a);
    }
  else
    {
      printf ("%-12s  %-6s  %7s  %-16s  %s\n", "ID", "FORMAT", "SIZE", "IMPORTED", "SOURCE");
      for (size_t i = 0; i < n; i++)
        {
          char when[32] = "-";
          time_t t = (time_t) v[i]->imported;
          struct tm tm;

          if (localtime_r (&t, &tm) != NULL)
            strftime (when, sizeof when, "%Y-%m-%d %H:%M", &tm);
          printf ("%-12.12s  %-6s  %6lluM  %-16s  %s\n", v[i]->id, image_format_name (v[i]->format),
                  (unsigned long long) (v[i]->rootfs_size >> 20), when, v[i]->source);
        }
    }
  image_list_free (v, n);
  return 0;
}

static int
do_rm (const char *root, int argc, char **argv)
{
  cleanup_err struct err *e = NULL;
  cleanup_close int lock = -1;
  char id[IMAGE_ID_LEN + 1], full[IMAGE_ID_LEN + 1], users[512], dir[VM_PATH_MAX + 80];
  size_t n = 0;

  if (argc != 2)
    {
      usage (stderr);
      return 2;
    }
  /* Under the state lock: no run can create a VM on the image meanwhile
     (run checks its root disk again under the lock). */
  lock = vmstate_lock (root, VMCTL_LOCK_MS, &e);
  if (lock < 0)
    return cli_fail ("image rm", &e);
  if (image_find_id (root, argv[1], full, &e) < 0)
    return cli_fail ("image rm", &e);
  if ((size_t) snprintf (dir, sizeof dir, "%s/images/%s", root, full) >= sizeof dir)
    {
      err_make (&e, ENAMETOOLONG, "image path");
      return cli_fail ("image rm", &e);
    }
  if (vmstate_image_users (root, dir, users, sizeof users, &n, &e) < 0)
    return cli_fail ("image rm", &e);
  if (n > 0)
    {
      err_make (&e, 0, "image %.12s is the root disk of VM%s %s: remove %s first (chvm rm)", full,
                n == 1 ? "" : "s", users, n == 1 ? "it" : "them");
      return cli_fail ("image rm", &e);
    }
  if (template_image_users (root, dir, users, sizeof users, &n, &e) < 0)
    return cli_fail ("image rm", &e);
  if (n > 0)
    {
      err_make (&e, 0,
                "image %.12s is the root disk of template%s %s: remove %s first "
                "(chvm template rm)",
                full, n == 1 ? "" : "s", users, n == 1 ? "it" : "them");
      return cli_fail ("image rm", &e);
    }
  if (image_remove (root, full, id, &e) < 0)
    return cli_fail ("image rm", &e);
  printf ("%s\n", id);
  return 0;
}

int
cmd_image (const struct global_opts *g, int argc, char **argv)
{
  cleanup_err struct err *e = NULL;
  char root[VM_PATH_MAX], what[16];

  if (argc < 2 || strcmp (argv[1], "--help") == 0 || strcmp (argv[1], "-h") == 0)
    {
      usage (argc < 2 ? stderr : stdout);
      return argc < 2 ? 2 : 0;
    }
  if (strcmp (argv[1], "import") != 0 && strcmp (argv[1], "ls") != 0 && strcmp (argv[1], "rm") != 0)
    {
      fprintf (stderr, "chvm image: unknown subcommand '%s'\n", argv[1]);
      usage (stderr);
      return 2;
    }
  snprintf (what, sizeof what, "image %s", argv[1]);
  if (vmstate_root (g->state_dir, root, sizeof root, &e) < 0)
    return cli_fail (what, &e);
  if (strcmp (argv[1], "import") == 0)
    return do_import (g, root, argc - 1, argv + 1);
  if (strcmp (argv[1], "ls") == 0)
    return do_ls (g, root, argc - 1);
  return do_rm (root, argc - 1, argv + 1);
}
