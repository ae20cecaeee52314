/* SPDX-License-Identifier: Apache-2.0 */
/*
 * chvm template create|ls|rm|inspect (vm/template.h; docs/DESIGN.md
 * "Templates").  create runs chvm itself: `run --memory-file` (a VM whose
 * guest RAM is one file), waits until guest RAM has settled, `standby`
 * (quiesce, pause, snapshot, stop), then moves the VM's snapshot, memory
 * file and disks into templates/NAME and removes the VM.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "cli/commands.h"
#include "cli/report.h"
#include "cli/self.h"
#include "clock.h"
#include "num.h"
#include "state/vmstate.h"
#include "sys/json.h"
#include "sys/rand.h"
#include "vm/template.h"
#include "vm/vmctl.h"

#define CREATE_ARGS_MAX 96
#define SETTLE_DEFAULT_S 60
#define SETTLE_POLL_MS 250
#define SETTLE_QUIET_MS 2000
#define SETTLE_GROWTH (1 << 20) /* bytes of guest RAM written per quiet window */

struct create_opts
{
  const char *name;
  bool quiesce;
  unsigned settle_s;
  const char *run_args[CREATE_ARGS_MAX + 1]; /* passed to chvm run */
  size_t n_run;
};

static int
usage (FILE *out, int status)
{
  fputs ("Usage: chvm template create NAME [--no-quiesce] [--settle-timeout S] [RUN OPTIONS] "
         "[IMAGE]\n"
         "       chvm template ls [--json]\n"
         "       chvm template inspect NAME\n"
         "       chvm template rm NAME...\n\n"
         "create boots a VM as `chvm run` would (RUN OPTIONS and IMAGE as there) with its\n"
         "guest RAM in one file, waits for the browser (unless --no-wait) and until guest\n"
         "RAM has settled (less than 1 MiB written in 2 s, at most --settle-timeout S,\n"
         "default 60), quiesces, snapshots and stops it, and keeps the result as an\n"
         "immutable template: `chvm run --from NAME` starts VMs from it whose memory is\n"
         "mapped copy-on-write from the template's.\n"
         "  --no-quiesce   for guests without the agent\n"
         "rm refuses a template that VMs were made from while they exist.\n",
         out);
  return status;
}

static int
parse_create (int argc, char **argv, struct create_opts *o, struct err **err)
{
  *o = (struct create_opts){ .quiesce = true, .settle_s = SETTLE_DEFAULT_S };
  if (argc < 3 || argv[2][0] == '-')
    return err_make (err, 0, "template create NAME: the name comes first");
  o->name = argv[2];
  for (int i = 3; i < argc; i++)
    {
      uint64_t v;
      if (strcmp (argv[i], "--no-quiesce") == 0)
        o->quiesce = false;
      else if (strcmp (argv[i], "--settle-timeout") == 0 && i + 1 < argc)
        {
          if (num_parse_u64_str (argv[++i], 3600, &v) < 0)
            return err_make (err, 0, "bad --settle-timeout '%s' (seconds, 0-3600)", argv[i]);
          o->settle_s = (unsigned) v;
        }
      else if (strcmp (argv[i], "--name") == 0 || strncmp (argv[i], "--name=", 7) == 0)
        return err_make (err, 0, "template create: the VM's name is chvm's own (no --name)");
      else if (o->n_run == CREATE_ARGS_MAX)
        return err_make (err, E2BIG, "template create: too many options");
      else
        o->run_args[o->n_run++] = argv[i];
    }
  return vm_name_check (o->name, err);
}

/* Waits until the memory file's allocated blocks grow less than
   SETTLE_GROWTH in SETTLE_QUIET_MS, at most settle_s; *bytes: its last
   size. */
static double
settle (const char *memory_file, unsigned settle_s, uint64_t *bytes)
{
  double start = clock_now_ms (), quiet = start;
  uint64_t base = 0;
  struct stat st;

  *bytes = 0;
  while (clock_now_ms () - start < settle_s * 1000.0)
    {
      if (stat (memory_file, &st) < 0)
        break;
      *bytes = (uint64_t) st.st_blocks * 512;
      if (*bytes > base + SETTLE_GROWTH)
        {
          base = *bytes;
          quiet = clock_now_ms ();
        }
      else if (clock_now_ms () - quiet >= SETTLE_QUIET_MS)
        break;
      poll (NULL, 0, SETTLE_POLL_MS);
    }
  return clock_now_ms () - start;
}

/* Under the state lock: the stood-by VM into the template. */
static int
commit (const struct global_opts *g, const char *name, const char *vm, struct err **err)
{
  cleanup_free struct vmctl *c = calloc (1, sizeof *c);
  int r = -1;

  if (c == NULL)
    return err_make (err, ENOMEM, "template");
  if (vmctl_open (g->state_dir, vm, true, c, err) < 0)
    goto out;
  if (vmctl_status (c) != VM_STATUS_STANDBY)
    {
      err_make (err, 0, "VM %s is %s after standby", vm, vm_status_name (vmctl_status (c)));
      goto out;
    }
  r = template_commit (c->root, name, c->dir, &c->rec, c->rec.rt.version, err);
out:
  vmctl_close (c);
  return r;
}

static void
report_create (const struct global_opts *g, const char *root, const struct create_opts *o,
               double settle_ms, uint64_t bytes, struct json_object *standby, double t0)
{
  cleanup_json struct json_object *j = json_object_new_object ();
  cleanup_err struct err *e = NULL;
  struct template_info t;

  if (template_load (root, o->name, &t, &e) < 0)
    return;
  if (!g->json)
    {
      fprintf (stderr, "chvm: template %s made in %.1f s: %llu MiB of guest RAM in use of %llu\n",
               o->name, (clock_now_ms () - t0) / 1000, (unsigned long long) (bytes >> 20),
               (unsigned long long) (t.guest_ram >> 20));
      printf ("%s\n", o->name);
      return;
    }
  json_object_object_add (j, "name", json_object_new_string (o->name));
  json_object_object_add (j, "vmm_version", json_object_new_string (t.vmm_version));
  json_object_object_add (j, "guest_ram", json_object_new_int64 ((int64_t) t.guest_ram));
  json_object_object_add (j, "memory_bytes", json_object_new_int64 ((int64_t) t.memory_bytes));
  json_object_object_add (j, "settle_ms", json_object_new_double (settle_ms));
  json_object_object_add (j, "standby", json_object_get (standby));
  json_object_object_add (j, "total_ms", json_object_new_double (clock_now_ms () - t0));
  json_print (stdout, j);
}

static int
template_create (const struct global_opts *g, int argc, char **argv)
{
  cleanup_err struct err *err = NULL, *e2 = NULL;
  cleanup_json struct json_object *ran = NULL, *stood = NULL, *gone = NULL;
  char root[VM_PATH_MAX], tdir[VM_PATH_MAX], vmdir[VM_PATH_MAX], mem[VM_PATH_MAX + 16];
  char vm[24] = "tmpl-";
  const char *run[CREATE_ARGS_MAX + 8], *sb[] = { "standby", "--no-quiesce", vm, NULL };
  const char *rm[] = { "rm", "-f", vm, NULL };
  struct create_opts o;
  double t0 = clock_now_ms (), settle_ms;
  uint64_t bytes;
  size_t n = 0;

  if (parse_create (argc, argv, &o, &err) < 0)
    return cli_fail ("template create", &err), 2;
  if (vmstate_root (g->state_dir, root, sizeof root, &err) < 0
      || template_dir (root, o.name, tdir, sizeof tdir, &err) < 0 || rand_hex (vm + 5, 5, &err) < 0
      || vmstate_dir (root, vm, vmdir, sizeof vmdir, &err) < 0)
    return cli_fail ("template create", &err);
  if (access (tdir, F_OK) == 0)
    return err_make (&err, 0, "a template named '%s' exists", o.name),
           cli_fail ("template create", &err);
  run[n++] = "run";
  run[n++] = "--name";
  run[n++] = vm;
  run[n++] = "--memory-file";
  for (size_t i = 0; i < o.n_run; i++)
    run[n++] = o.run_args[i];
  run[n] = NULL;
  fprintf (stderr, "chvm: template %s: booting VM %s\n", o.name, vm);
  if (cli_self_json (g, run, &ran, &err) < 0)
    goto fail;
  snprintf (mem, sizeof mem, "%s/memory", vmdir);
  fprintf (stderr, "chvm: template %s: waiting for guest RAM to settle\n", o.name);
  settle_ms = settle (mem, o.settle_s, &bytes);
  if (o.quiesce)
    sb[1] = vm, sb[2] = NULL;
  fprintf (stderr, "chvm: template %s: quiesce, pause, snapshot\n", o.name);
  if (cli_self_json (g, sb, &stood, &err) < 0 || commit (g, o.name, vm, &err) < 0)
    goto fail;
  if (cli_self_json (g, rm, &gone, &e2) < 0)
    fprintf (stderr, "chvm: warning: template %s made, but VM %s stays: %s\n", o.name, vm,
             e2->msg ? e2->msg : "");
  report_create (g, root, &o, settle_ms, bytes, stood, t0);
  return 0;
fail:
  if (access (vmdir, F_OK) == 0)
    cli_self_json (g, rm, &gone, &e2);
  return cli_fail ("template create", &err);
}

static int
template_ls (const struct global_opts *g)
{
  cleanup_err struct err *err = NULL;
  cleanup_json struct json_object *arr = json_object_new_array ();
  char root[VM_PATH_MAX], users[256];
  char **names;
  size_t n;

  if (vmstate_root (g->state_dir, root, sizeof root, &err) < 0
      || template_list (root, &names, &n, &err) < 0)
    return cli_fail ("template ls", &err);
  if (!g->json)
    printf ("%-24s %-28s %8s %10s %6s\n", "NAME", "VMM", "RAM_MIB", "MEM_MIB", "VMS");
  for (size_t i = 0; i < n; i++)
    {
      struct template_info t;
      size_t nu = 0;
      if (template_load (root, names[i], &t, &err) < 0)
        {
          fprintf (stderr, "chvm: template %s: %s\n", names[i], err->msg ? err->msg : "");
          err_release (&err);
          continue;
        }
      template_users (root, names[i], users, sizeof users, &nu, &err);
      err_release (&err);
      if (!g->json)
        printf ("%-24s %-28s %8llu %10llu %6zu\n", t.name, t.vmm_version,
                (unsigned long long) (t.guest_ram >> 20),
                (unsigned long long) (t.memory_bytes >> 20), nu);
      else
        {
          struct json_object *o = json_object_new_object ();
          json_object_object_add (o, "name", json_object_new_string (t.name));
          json_object_object_add (o, "vmm_version", json_object_new_string (t.vmm_version));
          json_object_object_add (o, "guest_ram", json_object_new_int64 ((int64_t) t.guest_ram));
          json_object_object_add (o, "memory_bytes",
                                  json_object_new_int64 ((int64_t) t.memory_bytes));
          json_object_object_add (o, "created", json_object_new_int64 (t.created));
          json_object_object_add (o, "vms", json_object_new_int64 ((int64_t) nu));
          json_object_array_add (arr, o);
        }
    }
  vmstate_list_free (names, n);
  if (g->json)
    json_print (stdout, arr);
  return 0;
}

static int
template_inspect (const struct global_opts *g, const char *name)
{
  cleanup_err struct err *err = NULL;
  cleanup_free char *text = NULL;
  cleanup_json struct json_object *o = NULL;
  char root[VM_PATH_MAX], dir[VM_PATH_MAX], users[1024];
  struct template_info t;
  size_t n = 0;

  if (vmstate_root (g->state_dir, root, sizeof root, &err) < 0
      || template_load (root, name, &t, &err) < 0 || template_to_json (&t, &text, &err) < 0
      || template_dir (root, name, dir, sizeof dir, &err) < 0
      || template_users (root, name, users, sizeof users, &n, &err) < 0)
    return cli_fail ("template inspect", &err);
  o = json_tokener_parse (text);
  if (o == NULL)
    return 1;
  json_object_object_add (o, "dir", json_object_new_string (dir));
  json_object_object_add (o, "vms", json_object_new_string (users));
  json_print (stdout, o);
  return 0;
}

static int
template_rm (const struct global_opts *g, int argc, char **argv)
{
  char root[VM_PATH_MAX];
  int lock = -1, rc = 0;

  for (int i = 2; i < argc; i++)
    {
      cleanup_err struct err *err = NULL;
      if (vmstate_root (g->state_dir, root, sizeof root, &err) < 0
          || (lock < 0 && (lock = vmstate_lock (root, VMCTL_LOCK_MS, &err)) < 0)
          || template_remove (root, argv[i], &err) < 0)
        rc = cli_fail ("template rm", &err);
      else if (!g->json)
        printf ("%s\n", argv[i]);
    }
  if (lock >= 0)
    close (lock);
  return rc;
}

int
cmd_template (const struct global_opts *g, int argc, char **argv)
{
  const char *sub = argc > 1 ? argv[1] : "";

  for (int i = 1; i < argc; i++)
    if (strcmp (argv[i], "--help") == 0 || strcmp (argv[i], "-h") == 0)
      return usage (stdout, 0);
  if (strcmp (sub, "create") == 0)
    return template_create (g, argc, argv);
  if (strcmp (sub, "ls") == 0 && argc == 2)
    return template_ls (g);
  if (strcmp (sub, "inspect") == 0 && argc == 3)
    return template_inspect (g, argv[2]);
  if (strcmp (sub, "rm") == 0 && argc >= 3)
    return template_rm (g, argc, argv);
  return usage (stderr, 2);
}
