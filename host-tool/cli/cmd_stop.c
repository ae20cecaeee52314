/* SPDX-License-Identifier: Apache-2.0 */
/* chvm stop [--time SECONDS] NAME...: press the VM's power button, give the
   guest up to SECONDS (default 10, as docker stop) to power off by itself,
   and only then kill the VMM.  A paused VM cannot react, so it is killed at
   once; a standby VM loses its snapshot.  The VM and its files stay until
   `chvm rm`. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "cli/commands.h"
#include "cli/report.h"
#include "clock.h"
#include "log.h"
#include "num.h"
#include "supervisor/supervisor.h"
#include "sys/fs.h"
#include "sys/json.h"
#include "sys/proc.h"
#include "vm/vmctl.h"
#include "vmm/console.h"

#define DEFAULT_STOP_S 10
#define MAX_STOP_S 3600

struct stopped
{
  const char *was; /* the status found: running, paused, standby, ... */
  bool graceful;   /* the guest powered off by itself before the deadline */
  double ms;       /* from the power button to the VMM's exit */
  bool discarded;  /* a standby VM's complete snapshot was removed */
};

/* Presses the power button and waits up to timeout_ms for the VMM to exit;
   returns 1 when it did, 0 when it still runs (or the press failed, which
   is a warning: the kill that follows still stops the VM). */
static int
powerdown (struct vmctl *c, int timeout_ms, struct err **err)
{
  cleanup_err struct err *perr = NULL;
  char buf[512];

  if (timeout_ms == 0)
    return 0;
  if (c->be->powerdown (&c->rec.rt, &perr) < 0)
    {
      log_warn ("%s: power button: %s; killing the VM", c->rec.name,
                err_str (perr, buf, sizeof buf));
      return 0;
    }
  return proc_wait_exit (c->rec.rt.vmm_pid, timeout_ms, NULL, err);
}

static int
stop_one (const struct global_opts *g, const char *name, int timeout_ms, struct stopped *out,
          struct err **err)
{
  cleanup_free struct vmctl *c = calloc (1, sizeof *c);
  char snap[VM_PATH_MAX + 16];
  enum vm_status st;
  struct stat sb;
  int r = -1;

  if (c == NULL)
    return err_make (err, ENOMEM, "stop");
  if (vmctl_open (g->state_dir, name, true, c, err) < 0)
    goto out;
  /* First, so that it neither wakes the VM nor sees it die. */
  supervisor_stop (c->dir, 2000);
  st = vmctl_status (c);
  out->was = vm_status_name (st);
  if (st == VM_STATUS_RUNNING || st == VM_STATUS_PAUSED)
    {
      double t0 = clock_now_ms ();
      int exited = 0;

      if (st == VM_STATUS_RUNNING && (exited = powerdown (c, timeout_ms, err)) < 0)
        goto out;
      out->graceful = exited == 1;
      if (exited == 1)
        /* Gone by itself; only its control socket is left behind. */
        unlink (c->rec.rt.api_socket);
      else if (c->be->shutdown (&c->rec.rt, err) < 0)
        goto out;
      out->ms = clock_now_ms () - t0;
    }
  vmctl_vmm_gone (c);
  snprintf (snap, sizeof snap, "%s/snapshot", c->dir);
  /* A standby VM's snapshot is the VM: stopping it throws the snapshot
     away, and the report says so (snapshot_discarded). */
  out->discarded = st == VM_STATUS_STANDBY && stat (snap, &sb) == 0;
  if (fs_rmtree (snap, err) < 0)
    goto out;
  c->rec.state = VM_STATUS_STOPPED;
  c->rec.rt.vmm_pid = 0;
  r = vmctl_save (c, err);
out:
  vmctl_close (c);
  return r;
}

static void
print_text (const char *name, const struct stopped *s, int timeout_ms)
{
  if (s->discarded)
    printf ("%s: was in standby; its snapshot is discarded\n", name);
  else if (strcmp (s->was, "running") != 0 && strcmp (s->was, "paused") != 0)
    printf ("%s: was not running (%s)\n", name, s->was);
  else if (s->graceful)
    printf ("%s: stopped gracefully in %.1f s\n", name, s->ms / 1000);
  else if (strcmp (s->was, "paused") == 0)
    printf ("%s: killed (paused VMs cannot power off)\n", name);
  else
    printf ("%s: killed after %d s (the guest did not power off)\n", name, timeout_ms / 1000);
}

static struct json_object *
to_json (const char *name, const struct stopped *s)
{
  struct json_object *o = json_object_new_object ();

  json_object_object_add (o, "name", json_object_new_string (name));
  json_object_object_add (o, "was", json_object_new_string (s->was));
  json_object_object_add (o, "graceful", json_object_new_boolean (s->graceful));
  json_object_object_add (o, "ms", json_object_new_double (s->ms));
  json_object_object_add (o, "snapshot_discarded", json_object_new_boolean (s->discarded));
  return o;
}

static int
usage (FILE *out, int rc)
{
  fprintf (out,
           "Usage: chvm stop [-t|--time SECONDS] NAME... [--json]\n\n"
           "Stop VMs (their files stay until chvm rm): press the power button, wait\n"
           "up to SECONDS (default %d) for the guest to power off, then kill the VMM.\n",
           DEFAULT_STOP_S);
  return rc;
}

struct stop_opts
{
  int timeout_ms; /* --time: how long the guest has to power off */
};

/* Options (before the first NAME) into *o; returns -1 with optind at the
   first NAME, or the exit status after printing usage or the error. */
static int
parse_args (int argc, char **argv, struct stop_opts *o)
{
  static const struct option longopts[] = { { "time", required_argument, NULL, 't' },
                                            { "help", no_argument, NULL, 'h' },
                                            { NULL, 0, NULL, 0 } };
  uint64_t seconds;
  const char *arg;
  int c;

  *o = (struct stop_opts){ .timeout_ms = DEFAULT_STOP_S * 1000 };
  optind = 0;
  opterr = 0;
  /* arg: the element getopt is at, for the error message. */
  while ((arg = argv[optind ?: 1], c = getopt_long (argc, argv, "+ht:", longopts, NULL)) != -1)
    switch (c)
      {
      case 'h':
        return usage (stdout, 0);
      case 't':
        if (num_parse_u64_str (optarg, MAX_STOP_S, &seconds) < 0)
          {
            arg = optarg;
            goto bad;
          }
        o->timeout_ms = (int) seconds * 1000;
        break;
      default:
        goto bad;
      }
  if (optind >= argc)
    return usage (stderr, 2);
  return -1;
bad:
  fprintf (stderr, "chvm stop: bad option '%s' (--time takes 0 to %d seconds)\n", arg, MAX_STOP_S);
  return 2;
}

int
cmd_stop (const struct global_opts *g, int argc, char **argv)
{
  cleanup_json struct json_object *arr = g->json ? json_object_new_array () : NULL;
  struct stop_opts o;
  int rc = parse_args (argc, argv, &o);

  if (rc >= 0)
    return rc;
  rc = 0;
  for (int i = optind; i < argc; i++)
    {
      cleanup_err struct err *err = NULL;
      struct stopped s = { .was = "stopped" };

      if (stop_one (g, argv[i], o.timeout_ms, &s, &err) < 0)
        rc = cli_fail ("stop", &err);
      else if (arr != NULL)
        json_object_array_add (arr, to_json (argv[i], &s));
      else
        print_text (argv[i], &s, o.timeout_ms);
    }
  if (arr != NULL)
    json_print (stdout, arr);
  return rc;
}
