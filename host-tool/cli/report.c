/* SPDX-License-Identifier: Apache-2.0 */
/* What commands share in what they print: errors, the phase report of
   standby and restore with its facts, and where chvm's own data lies. */
#include "cli/report.h"

#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "clock.h"
#include "num.h"
#include "sys/json.h"
#include "sys/proc.h"

int
cli_fail (const char *cmd, struct err **err)
{
  char buf[2048];

  fprintf (stderr, "chvm %s: %s\n", cmd, err_str (*err, buf, sizeof buf));
  err_release (err);
  return 1;
}

static void
print_phases (const struct global_opts *g, const char *cmd, const struct vmctl *c,
              const struct phase *p, size_t n, double total_ms)
{
  if (g->json)
    {
      cleanup_json struct json_object *o = json_object_new_object ();
      struct json_object *ph = json_object_new_object ();
      json_object_object_add (o, "name", json_object_new_string (c->rec.name));
      json_object_object_add (o, "command", json_object_new_string (cmd));
      for (size_t i = 0; i < n; i++)
        json_object_object_add (ph, p[i].name, json_object_new_double (p[i].ms));
      json_object_object_add (o, "phases", ph);
      json_object_object_add (o, "total_ms", json_object_new_double (total_ms));
      for (size_t i = 0; i < c->n_facts; i++)
        {
          const struct vmctl_fact *f = &c->facts[i];
          json_object_object_add (o, f->key,
                                  f->type == VMCTL_FACT_STR    ? json_object_new_string (f->str)
                                  : f->type == VMCTL_FACT_BOOL ? json_object_new_boolean (f->num)
                                                               : json_object_new_int64 (f->num));
        }
      json_print (stdout, o);
      return;
    }
  for (size_t i = 0; i < n; i++)
    printf ("  %-12s %9.1f ms\n", p[i].name, p[i].ms);
  for (size_t i = 0; i < c->n_facts; i++)
    {
      const struct vmctl_fact *f = &c->facts[i];
      if (f->type == VMCTL_FACT_STR)
        printf ("  %s: %s\n", f->key, f->str);
      else if (f->type == VMCTL_FACT_BOOL)
        printf ("  %s: %s\n", f->key, f->num ? "yes" : "no");
      else
        printf ("  %s: %lld\n", f->key, (long long) f->num);
    }
  printf ("%s %s: %.1f ms\n", cmd, c->rec.name, total_ms);
}

int
cli_timeout_arg (const char *s, unsigned *out)
{
  uint64_t v;

  if (num_parse_u64_str (s, 86400, &v) < 0 || v == 0)
    {
      fprintf (stderr, "chvm: bad --timeout '%s' (seconds, 1-86400)\n", s);
      return -1;
    }
  *out = (unsigned) v;
  return 0;
}

int
cli_run_phased (const struct global_opts *g, const char *cmd, const char *name, void *opts,
                cli_phased_fn op, struct vmctl *c)
{
  cleanup_err struct err *err = NULL;
  struct phase ph[BACKEND_MAX_PHASES];
  size_t n = 0;
  double t0 = clock_now_ms ();
  int r;

  if (vmctl_open (g->state_dir, name, true, c, &err) < 0)
    {
      vmctl_close (c);
      return cli_fail (cmd, &err);
    }
  r = op (c, opts, ph, &n, &err);
  vmctl_close (c);
  if (r < 0)
    return cli_fail (cmd, &err);
  print_phases (g, cmd, c, ph, n, clock_now_ms () - t0);
  return 0;
}

int
cli_data_path (const char *rel, char *out, size_t len, struct err **err)
{
  char exe[VM_PATH_MAX], probe[VM_PATH_MAX + 32];
  const char *env = getenv ("CHVM_DATA_DIR");
  struct stat st;
  ssize_t n;

  if (env != NULL && *env)
    {
      if ((size_t) snprintf (out, len, "%s/%s", env, rel) >= len)
        return err_make (err, ENAMETOOLONG, "data path");
      return 0;
    }
  n = readlink ("/proc/self/exe", exe, sizeof exe - 1);
  if (n < 0)
    return err_make (err, errno, "readlink /proc/self/exe");
  exe[n] = '\0';
  dirname (exe);
  snprintf (probe, sizeof probe, "%s/../kernel/vmlinuz", exe);
  if (stat (probe, &st) == 0)
    n = snprintf (out, len, "%s/../%s", exe, rel);
  else
    n = snprintf (out, len, "%s/../share/chvm/%s", exe, rel);
  if (n < 0 || (size_t) n >= len)
    return err_make (err, ENAMETOOLONG, "data path");
  return 0;
}

int
cli_help_only (int argc, char **argv, int (*usage) (FILE *out, int status), bool names)
{
  static const struct option longopts[]
      = { { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 } };
  int c;

  optind = 0;
  opterr = 0;
  if ((c = getopt_long (argc, argv, "+h", longopts, NULL)) != -1)
    return c == 'h' ? usage (stdout, 0) : usage (stderr, 2);
  return (optind < argc) == names ? -1 : usage (stderr, 2);
}

uint64_t
cli_add_host_memory (struct json_object *o, const struct vmctl *c, enum vm_status st)
{
  cleanup_err struct err *err = NULL;
  uint64_t rss = 0, pss = 0;
  bool have = (st == VM_STATUS_RUNNING || st == VM_STATUS_PAUSED) && c->rec.rt.vmm_pid > 0
              && proc_mem_usage (c->rec.rt.vmm_pid, &rss, &pss, &err) == 0;

  json_object_object_add (o, "guest_ram",
                          json_object_new_int64 ((int64_t) (c->rec.memory_mib << 20)));
  json_object_object_add (o, "vmm_rss", have ? json_object_new_int64 ((int64_t) rss) : NULL);
  json_object_object_add (o, "vmm_pss", have ? json_object_new_int64 ((int64_t) pss) : NULL);
  return have ? pss : 0;
}
