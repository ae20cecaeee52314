/* SPDX-License-Identifier: Apache-2.0 */
/* Health: memory, load and uptime from /proc, the browser process, and how
   fast CDP answers (one /json/version probe, see ready.c). */
#include "sysinfo.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "clock.h"
#include "log.h"
#include "ready.h"

/* Reads a small /proc file into buf (NUL-terminated); returns its length. */
static ssize_t
read_small (const char *path, char *buf, size_t len)
{
  cleanup_close int fd = open (path, O_RDONLY | O_CLOEXEC);
  ssize_t n;

  if (fd < 0)
    return -1;
  n = TEMP_FAILURE_RETRY (read (fd, buf, len - 1));
  if (n < 0)
    return -1;
  buf[n] = '\0';
  return n;
}

static int
meminfo_field (const char *text, const char *name, uint64_t *out)
{
  size_t nl = strlen (name);
  const char *p = text;

  while (p != NULL && *p != '\0')
    {
      if (strncmp (p, name, nl) == 0 && p[nl] == ':')
        {
          char *end;
          errno = 0;
          unsigned long long v = strtoull (p + nl + 1, &end, 10);
          if (errno != 0 || end == p + nl + 1)
            return -1;
          *out = v;
          return 0;
        }
      p = strchr (p, '\n');
      if (p)
        p++;
    }
  return -1;
}

int
sysinfo_parse_meminfo (const char *text, uint64_t *total_kb, uint64_t *avail_kb, uint64_t *free_kb)
{
  if (meminfo_field (text, "MemTotal", total_kb) < 0
      || meminfo_field (text, "MemFree", free_kb) < 0)
    return -1;
  return meminfo_field (text, "MemAvailable", avail_kb);
}

int
sysinfo_parse_loadavg (const char *text, double load[3])
{
  const char *p = text;

  for (int i = 0; i < 3; i++)
    {
      char *end;
      errno = 0;
      load[i] = strtod (p, &end);
      if (errno != 0 || end == p || load[i] < 0)
        return -1;
      p = end;
    }
  return 0;
}

const char *
sysinfo_state_name (char state)
{
  switch (state)
    {
    case 'R':
      return "running";
    case 'S':
      return "sleeping";
    case 'D':
      return "disk-sleep";
    case 'T':
    case 't':
      return "stopped";
    case 'Z':
      return "zombie";
    case 'X':
      return "dead";
    case 'I':
      return "idle";
    default:
      return "unknown";
    }
}

/* The browser process: a chrome/chromium whose command line has no
   "--type=" (renderers, GPU and utility processes all have one).  The
   lowest pid is the oldest, as pids do not wrap in a fresh guest. */
static int
find_browser (char *state, size_t state_len)
{
  static const char *const names[]
      = { "chrome", "chromium", "headless_shell", "chrome-headless-shell" };
  cleanup_dir DIR *d = opendir ("/proc");
  struct dirent *de;
  int best = 0;

  if (d == NULL)
    return 0;
  while ((de = readdir (d)) != NULL)
    {
      char path[64], buf[4096];
      char *end;
      long pid = strtol (de->d_name, &end, 10);
      ssize_t n;
      bool match = false;

      if (*end != '\0' || pid <= 0 || (best != 0 && pid >= best))
        continue;
      snprintf (path, sizeof path, "/proc/%ld/comm", pid);
      if (read_small (path, buf, sizeof buf) <= 0)
        continue;
      buf[strcspn (buf, "\n")] = '\0';
      for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp (buf, names[i]) == 0)
          match = true;
      if (!match)
        continue;
      snprintf (path, sizeof path, "/proc/%ld/cmdline", pid);
      n = read_small (path, buf, sizeof buf);
      if (n <= 0)
        continue;
      if (memmem (buf, (size_t) n, "--type=", 7) != NULL)
        continue;
      best = (int) pid;
    }
  if (best != 0)
    {
      char path[64], buf[1024];
      const char *p;
      snprintf (path, sizeof path, "/proc/%d/stat", best);
      /* The state follows the last ')' (comm may contain spaces). */
      if (read_small (path, buf, sizeof buf) > 0 && (p = strrchr (buf, ')')) != NULL && p[1] == ' ')
        snprintf (state, state_len, "%s", sysinfo_state_name (p[2]));
      else
        snprintf (state, state_len, "gone");
    }
  else
    snprintf (state, state_len, "absent");
  return best;
}

int
sysinfo_read (struct sysinfo_snap *s, struct err **err)
{
  char buf[8192];

  memset (s, 0, sizeof *s);
  if (read_small ("/proc/meminfo", buf, sizeof buf) < 0)
    return err_make (err, errno, "read /proc/meminfo");
  if (sysinfo_parse_meminfo (buf, &s->mem_total_kb, &s->mem_available_kb, &s->mem_free_kb) < 0)
    return err_make (err, 0, "/proc/meminfo has no MemTotal/MemFree/MemAvailable");
  if (read_small ("/proc/loadavg", buf, sizeof buf) < 0)
    return err_make (err, errno, "read /proc/loadavg");
  if (sysinfo_parse_loadavg (buf, s->load) < 0)
    return err_make (err, 0, "cannot parse /proc/loadavg");
  if (read_small ("/proc/uptime", buf, sizeof buf) < 0)
    return err_make (err, errno, "read /proc/uptime");
  s->uptime_s = strtod (buf, NULL);
  s->chrome_pid = find_browser (s->chrome_state, sizeof s->chrome_state);
  return 0;
}

struct health_req
{
  struct req r;
  struct probe *probe;
  struct sysinfo_snap snap;
  double start; /* clock_now_ms () */
};

static void
health_cancel (struct req *r)
{
  struct health_req *h = (struct health_req *) r;

  probe_cancel (h->probe);
  free (h);
}

static void
health_done (void *arg, bool ok, const char *browser, const char *why)
{
  struct health_req *h = arg;
  Chvm__Agent__HealthReply hr = CHVM__AGENT__HEALTH_REPLY__INIT;
  Frame f = CHVM__AGENT__FRAME__INIT;
  (void) browser;
  hr.chrome_pid = h->snap.chrome_pid;
  hr.chrome_state = h->snap.chrome_state;
  hr.cdp_answer_ms = ok ? (int32_t) (clock_now_ms () - h->start) : -1;
  hr.uptime_s = h->snap.uptime_s;
  hr.mem_available_kb = h->snap.mem_available_kb;
  hr.mem_total_kb = h->snap.mem_total_kb;
  hr.load1 = h->snap.load[0];
  hr.load5 = h->snap.load[1];
  hr.load15 = h->snap.load[2];
  hr.frozen = agent.frozen;
  hr.cdp_error = ok ? (char *) "" : (char *) why;
  f.id = h->r.id;
  f.body_case = CHVM__AGENT__FRAME__BODY_HEALTH_REPLY;
  f.health_reply = &hr;
  conn_send (h->r.conn, &f);
  conn_req_done (&h->r);
  free (h); /* the probe frees itself after this callback */
}

void
health_handle (struct conn *c, const Frame *f)
{
  const Chvm__Agent__HealthRequest *rq = f->health;
  uint64_t id = f->id;
  struct health_req *h = calloc (1, sizeof *h);
  cleanup_err struct err *e = NULL;
  unsigned timeout = rq->cdp_timeout_ms ? rq->cdp_timeout_ms : 1000;

  if (h == NULL)
    {
      conn_send_error (c, id, CHVM__AGENT__ERROR_CODE__ERROR_INTERNAL, "out of memory");
      return;
    }
  if (timeout > 60000)
    timeout = 60000;
  if (sysinfo_read (&h->snap, &e) < 0)
    {
      conn_send_err (c, id, CHVM__AGENT__ERROR_CODE__ERROR_INTERNAL, e);
      free (h);
      return;
    }
  h->start = clock_now_ms ();
  h->probe = probe_start (agent.cdp_port, true, timeout, false, health_done, h);
  if (h->probe == NULL)
    {
      conn_send_error (c, id, CHVM__AGENT__ERROR_CODE__ERROR_INTERNAL, "cannot start CDP probe");
      free (h);
      return;
    }
  conn_req_add (c, &h->r, id, health_cancel, NULL);
}
