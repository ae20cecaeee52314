/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ch-driver: a line-oriented driver of backend_ch for the integration tests
 * and the benchmark (test_ch.py, bench_ch.py).  It links the real backend
 * sources and talks to the real cloud-hypervisor; it is not a double.
 *
 *   ch-driver --dir DIR --kernel ELF --memory-mib N [--cpus N] [--cmdline S]
 *             [--shared-memory auto|on|off]
 *
 * Reads one command per line on stdin and answers one line on stdout,
 * "ok [key=value...]" or "error <message>":
 *   start | pause | resume | info | pid | counters | shutdown
 *   powerdown      press the power button (vm.power-button) and return
 *   standby        snapshot a paused VM into DIR/snapshot.tmp-XXXXXX (it
 *                  prints "progress tmp=PATH" first), then rename it to
 *                  DIR/snapshot, as chvm's standby does
 *   restore PATH   start a new VMM and restore from PATH
 *   mode M         restore mode of later restores: auto, copy or ondemand
 *                  (the restore's answer says which it used: mode=)
 *   ram            the guest RAM the host holds (shared memory: bytes=)
 * At end of input a VMM still running is shut down.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "clock.h"
#include "log.h"
#include "sys/proc.h"
#include "vmm/backend.h"
#include "vmm/ch_api.h"

static void
reply_err (struct err **e)
{
  char buf[2048];

  printf ("error %s\n", err_str (*e, buf, sizeof buf));
  err_release (e);
}

/* Apparent and allocated bytes of the files in dir. */
static void
dir_bytes (const char *dir, unsigned long long *bytes, unsigned long long *alloc)
{
  cleanup_dir DIR *d = opendir (dir);
  struct dirent *de;

  *bytes = *alloc = 0;
  while (d != NULL && (de = readdir (d)) != NULL)
    {
      struct stat st;
      if (fstatat (dirfd (d), de->d_name, &st, 0) == 0 && S_ISREG (st.st_mode))
        {
          *bytes += (unsigned long long) st.st_size;
          *alloc += (unsigned long long) st.st_blocks * 512;
        }
    }
}

static int
standby (struct vm_runtime *rt, const char *dir, struct err **e)
{
  char tmp[PATH_MAX], final[PATH_MAX];
  unsigned long long bytes, alloc;
  double t0;

  snprintf (final, sizeof final, "%s/snapshot", dir);
  if (snprintf (tmp, sizeof tmp, "%s/snapshot.tmp-XXXXXX", dir) >= (int) sizeof tmp)
    return err_make (e, ENAMETOOLONG, "%s", dir);
  if (mkdtemp (tmp) == NULL)
    return err_make (e, errno, "mkdtemp %s", tmp);
  printf ("progress tmp=%s\n", tmp);
  fflush (stdout);
  t0 = clock_now_ms ();
  if (backend_ch.snapshot (rt, tmp, e) < 0)
    return -1;
  double ms = clock_now_ms () - t0;
  if (rename (tmp, final) < 0)
    return err_make (e, errno, "rename %s to %s", tmp, final);
  dir_bytes (final, &bytes, &alloc);
  printf ("ok ms=%.1f bytes=%llu alloc=%llu path=%s\n", ms, bytes, alloc, final);
  return 0;
}

int
main (int argc, char **argv)
{
  static const struct option opts[] = {
    { "dir", required_argument, NULL, 'd' },
    { "kernel", required_argument, NULL, 'k' },
    { "memory-mib", required_argument, NULL, 'm' },
    { "cpus", required_argument, NULL, 'c' },
    { "cmdline", required_argument, NULL, 'l' },
    { "shared-memory", required_argument, NULL, 's' },
    { NULL, 0, NULL, 0 },
  };
  struct vm_restore_opts ro = { .want = VM_RESTORE_AUTO };
  struct vm_spec spec = { .name = "ch-driver", .cpus = 1, .memory_mib = 64, .cmdline = "" };
  struct vm_runtime rt = { 0 };
  struct err *e = NULL;
  char line[4096];
  int o;

  log_init ("ch-driver", 2, LOG_LVL_INFO);
  while ((o = getopt_long (argc, argv, "", opts, NULL)) != -1)
    switch (o)
      {
      case 'd':
        spec.dir = optarg;
        break;
      case 'k':
        spec.kernel = optarg;
        break;
      case 'l':
        spec.cmdline = optarg;
        break;
      case 'm':
        spec.memory_mib = strtoull (optarg, NULL, 10);
        break;
      case 'c':
        spec.cpus = (unsigned) strtoul (optarg, NULL, 10);
        break;
      case 's':
        spec.shared_memory = strcmp (optarg, "on") == 0    ? VM_ON
                             : strcmp (optarg, "off") == 0 ? VM_OFF
                                                           : VM_AUTO;
        break;
      default:
        return 2;
      }
  if (spec.dir == NULL || spec.kernel == NULL || spec.memory_mib == 0 || spec.cpus == 0)
    {
      fprintf (stderr, "usage: ch-driver --dir DIR --kernel ELF --memory-mib N [--cpus N] "
                       "[--cmdline S]\n");
      return 2;
    }
  setvbuf (stdout, NULL, _IOLBF, 0);

  while (fgets (line, sizeof line, stdin) != NULL)
    {
      char *arg;

      line[strcspn (line, "\n")] = '\0';
      arg = strchr (line, ' ');
      if (arg != NULL)
        *arg++ = '\0';
      if (strcmp (line, "start") == 0)
        {
          if (backend_ch.start (&spec, &rt, &e) < 0)
            reply_err (&e);
          else
            printf ("ok pid=%d shared_memory=%d version=%s\n", (int) rt.vmm_pid,
                    (int) rt.shared_memory, rt.version);
          /* What later restores need to know of the snapshot's RAM. */
          ro.shared_memory = rt.shared_memory;
        }
      else if (strcmp (line, "pause") == 0 || strcmp (line, "resume") == 0)
        {
          double t0 = clock_now_ms ();
          int r = line[0] == 'p' ? backend_ch.pause (&rt, &e) : backend_ch.resume (&rt, &e);
          if (r < 0)
            reply_err (&e);
          else
            printf ("ok ms=%.1f\n", clock_now_ms () - t0);
        }
      else if (strcmp (line, "info") == 0)
        {
          struct ch_client c;
          struct ch_vm_info info;
          if (ch_client_init (&c, rt.api_socket, &e) < 0 || ch_info (&c, &info, &e) < 0)
            reply_err (&e);
          else
            printf ("ok state=%s memory=%llu actual=%llu\n", info.state,
                    (unsigned long long) info.memory_size,
                    (unsigned long long) info.memory_actual_size);
        }
      else if (strcmp (line, "counters") == 0)
        {
          struct ch_client c;
          struct json_object *j = NULL;
          if (ch_client_init (&c, rt.api_socket, &e) < 0 || ch_counters (&c, &j, &e) < 0)
            reply_err (&e);
          else
            printf ("ok %s\n", json_object_to_json_string_ext (j, JSON_C_TO_STRING_PLAIN));
          json_object_put (j);
        }
      else if (strcmp (line, "pid") == 0)
        printf ("ok pid=%d\n", (int) rt.vmm_pid);
      else if (strcmp (line, "standby") == 0)
        {
          if (standby (&rt, spec.dir, &e) < 0)
            reply_err (&e);
        }
      else if (strcmp (line, "restore") == 0 && arg != NULL)
        {
          struct phase ph[BACKEND_MAX_PHASES];
          size_t n = 0;
          if (backend_ch.restore (&spec, arg, &ro, &rt, ph, &n, &e) < 0)
            reply_err (&e);
          else
            {
              printf ("ok pid=%d mode=%s", (int) rt.vmm_pid,
                      ro.mode == VM_RESTORE_ONDEMAND ? "ondemand" : "copy");
              for (size_t i = 0; i < n; i++)
                printf (" %s=%.1f", ph[i].name, ph[i].ms);
              printf ("\n");
            }
        }
      else if (strcmp (line, "mode") == 0 && arg != NULL
               && (strcmp (arg, "auto") == 0 || strcmp (arg, "copy") == 0
                   || strcmp (arg, "ondemand") == 0))
        {
          ro.want = arg[0] == 'a'   ? VM_RESTORE_AUTO
                    : arg[0] == 'c' ? VM_RESTORE_COPY
                                    : VM_RESTORE_ONDEMAND;
          printf ("ok mode=%s\n", arg);
        }
      else if (strcmp (line, "ram") == 0)
        {
          uint64_t bytes;
          if (backend_ch.ram_allocated (&rt, &bytes, &e) < 0)
            reply_err (&e);
          else
            printf ("ok bytes=%llu\n", (unsigned long long) bytes);
        }
      else if (strcmp (line, "powerdown") == 0)
        {
          if (backend_ch.powerdown (&rt, &e) < 0)
            reply_err (&e);
          else
            printf ("ok\n");
        }
      else if (strcmp (line, "shutdown") == 0)
        {
          if (backend_ch.shutdown (&rt, &e) < 0)
            reply_err (&e);
          else
            printf ("ok\n");
        }
      else
        printf ("error unknown command \"%s\"\n", line);
    }
  if (rt.vmm_pid > 0 && proc_alive_p (rt.vmm_pid) && backend_ch.shutdown (&rt, &e) < 0)
    {
      char buf[1024];
      fprintf (stderr, "ch-driver: shutdown at exit: %s\n", err_str (e, buf, sizeof buf));
      err_release (&e);
      return 1;
    }
  return 0;
}
