/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Quiesce and Thaw, following qga's guarantees (docs/style.md): writable
 * mounts on real devices (major != 0) from mountinfo are frozen in reverse
 * order, all or nothing, EOPNOTSUPP/EBUSY skipped; the frozen flag (and the
 * /run marker that a restarted agent honours) is set before the first
 * FIFREEZE and logging is off meanwhile; Thaw repeats FITHAW on every
 * candidate until it fails, since freezes nest.  Every freeze has a deadline
 * (a libevent timer) and ends early when its connection drops: the
 * connection holds a request for as long as the freeze lasts.  The image's
 * hooks (hooks.c) run before the freeze (a failing one fails the Quiesce,
 * nothing frozen) and after a Thaw.
 */
#include "freeze.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/rtc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "announce.h"
#include "cleanup.h"
#include "hooks.h"
#include "log.h"
#include "sysinfo.h"

/* From linux/fs.h, which clashes with musl's limits.h (NGROUPS_MAX). */
#ifndef FIFREEZE
#define FIFREEZE _IOWR ('X', 119, int)
#define FITHAW _IOWR ('X', 120, int)
#endif

#define QUIESCE_DEFAULT_MS 10000u
#define QUIESCE_MAX_MS 600000u
#define MOUNTINFO_MAX (1u << 20)
#define RTC_DEV "/dev/rtc0"
/* Host times outside [2000-01-01, 2200-01-01) are rejected as absurd. */
#define HOST_TIME_MIN_NS (946684800ULL * 1000000000ULL)
#define HOST_TIME_MAX_NS (7258118400ULL * 1000000000ULL)

static struct
{
  struct event *timer;
  struct req owner; /* attached to the requesting connection while frozen */
  unsigned count;
} fz;

/* Undoes mountinfo's octal escapes (\040 for space, ...) in place. */
static void
unescape (char *s)
{
  char *o = s;

  for (; *s; s++)
    {
      if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' && s[3] >= '0'
          && s[3] <= '7')
        {
          *o++ = (char) (((s[1] - '0') << 6) | ((s[2] - '0') << 3) | (s[3] - '0'));
          s += 3;
        }
      else
        *o++ = *s;
    }
  *o = '\0';
}

static bool
has_opt (const char *opts, const char *opt)
{
  size_t n = strlen (opt);

  for (const char *p = opts; p != NULL; p = strchr (p, ','), p = p ? p + 1 : NULL)
    if (strncmp (p, opt, n) == 0 && (p[n] == ',' || p[n] == '\0'))
      return true;
  return false;
}

void
freeze_free_mounts (struct mount_ent *m, size_t n)
{
  for (size_t i = 0; i < n; i++)
    free (m[i].path);
  free (m);
}

/* Parses mountinfo text into the freeze candidates, in file order: writable
   mounts whose device major is not 0 (0 is virtual: tmpfs, proc, overlay). */
int
freeze_parse_mountinfo (const char *text, struct mount_ent **out, size_t *n, struct err **err)
{
  cleanup_free char *copy = strdup (text);
  struct mount_ent *v = NULL;
  size_t cnt = 0, cap = 0;
  char *line, *save = NULL;

  *out = NULL;
  *n = 0;
  if (copy == NULL)
    return err_make (err, ENOMEM, "mountinfo");
  for (line = strtok_r (copy, "\n", &save); line; line = strtok_r (NULL, "\n", &save))
    {
      char *f[32], *sp = NULL, *tok;
      unsigned maj, min;
      int k = 0;
      bool dash = false;

      for (tok = strtok_r (line, " ", &sp); tok && k < 32; tok = strtok_r (NULL, " ", &sp))
        f[k++] = tok;
      /* Optional fields (from the 7th) end at "-", then type, source, options. */
      for (int i = 6; i + 3 <= k; i++)
        if (strcmp (f[i], "-") == 0)
          {
            dash = true;
            break;
          }
      if (!dash || sscanf (f[2], "%u:%u", &maj, &min) != 2)
        continue;
      if (maj == 0 || has_opt (f[5], "ro") || f[4][0] != '/')
        continue;
      if (cnt == cap)
        {
          size_t ncap = cap ? cap * 2 : 8;
          struct mount_ent *nv = realloc (v, ncap * sizeof *nv);
          if (nv == NULL)
            {
              freeze_free_mounts (v, cnt);
              return err_make (err, ENOMEM, "mountinfo");
            }
          v = nv;
          cap = ncap;
        }
      v[cnt].path = strdup (f[4]);
      if (v[cnt].path == NULL)
        {
          freeze_free_mounts (v, cnt);
          return err_make (err, ENOMEM, "mountinfo");
        }
      unescape (v[cnt].path);
      v[cnt].major = maj;
      v[cnt].minor = min;
      cnt++;
    }
  *out = v;
  *n = cnt;
  return 0;
}

static int
read_mounts (struct mount_ent **m, size_t *n, struct err **err)
{
  cleanup_close int fd = open (agent.mountinfo, O_RDONLY | O_CLOEXEC);
  cleanup_free char *buf = malloc (MOUNTINFO_MAX + 1);
  size_t len = 0;

  if (fd < 0)
    return err_make (err, errno, "open %s", agent.mountinfo);
  if (buf == NULL)
    return err_make (err, ENOMEM, "mountinfo");
  for (;;)
    {
      ssize_t r = TEMP_FAILURE_RETRY (read (fd, buf + len, MOUNTINFO_MAX - len));
      if (r < 0)
        return err_make (err, errno, "read %s", agent.mountinfo);
      if (r == 0 || len + (size_t) r == MOUNTINFO_MAX)
        {
          len += (size_t) r;
          break;
        }
      len += (size_t) r;
    }
  buf[len] = '\0';
  return freeze_parse_mountinfo (buf, m, n, err);
}

static void
set_frozen (bool on)
{
  agent.frozen = on;
  log_set_enabled (!on);
  if (agent.frozen_marker == NULL)
    return;
  if (on)
    {
      cleanup_close int fd = open (agent.frozen_marker, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
      (void) fd;
    }
  else
    unlink (agent.frozen_marker);
}

/* FITHAW every candidate until it fails; returns how many thaws worked. */
static unsigned
thaw_all (void)
{
  struct mount_ent *m = NULL;
  size_t n = 0;
  unsigned count = 0;
  cleanup_err struct err *e = NULL;

  if (agent.test_mode)
    return 0;
  if (read_mounts (&m, &n, &e) < 0)
    {
      char buf[256];
      log_error ("thaw: %s", err_str (e, buf, sizeof buf));
      return 0;
    }
  for (size_t i = 0; i < n; i++)
    {
      cleanup_close int fd = open (m[i].path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (fd < 0)
        continue;
      for (int k = 0; k < 64 && ioctl (fd, FITHAW, 0) == 0; k++)
        count++;
    }
  freeze_free_mounts (m, n);
  return count;
}

static unsigned
thaw_now (const char *why)
{
  unsigned n = thaw_all ();

  if (fz.timer)
    {
      event_free (fz.timer);
      fz.timer = NULL;
    }
  conn_req_done (&fz.owner);
  fz.count = 0;
  set_frozen (false);
  if (why != NULL)
    log_warn ("auto-thaw (%s): %u filesystems thawed", why, n);
  return n;
}

static void
freeze_timer_cb (evutil_socket_t fd, short what, void *arg)
{
  (void) fd;
  (void) what;
  (void) arg;
  thaw_now ("deadline passed");
}

static void
freeze_cancel (struct req *r)
{
  (void) r;
  thaw_now ("requesting connection closed");
}

void
freeze_startup (void)
{
  struct stat st;

  if (agent.frozen_marker != NULL && stat (agent.frozen_marker, &st) == 0)
    {
      /* A previous agent died frozen; thawing needlessly beats hanging. */
      unsigned n = thaw_all ();
      unlink (agent.frozen_marker);
      log_warn ("found %s: thawed %u filesystems", agent.frozen_marker, n);
    }
}

static int
write_proc (const char *path, const char *val, struct err **err)
{
  cleanup_close int fd = open (path, O_WRONLY | O_CLOEXEC);

  if (fd < 0)
    return err_make (err, errno, "open %s", path);
  if (TEMP_FAILURE_RETRY (write (fd, val, strlen (val))) < 0)
    return err_make (err, errno, "write %s", path);
  return 0;
}

static int64_t
mem_available_kb (Chvm__Agent__QuiesceReply *qr)
{
  struct sysinfo_snap s;
  cleanup_err struct err *e = NULL;

  if (sysinfo_read (&s, &e) < 0)
    return 0;
  if (qr != NULL)
    {
      qr->mem_total_kb = s.mem_total_kb;
      qr->mem_available_kb = s.mem_available_kb;
      qr->mem_free_kb = s.mem_free_kb;
    }
  return (int64_t) s.mem_available_kb;
}

void
freeze_handle (struct conn *c, const Frame *f)
{
  const Chvm__Agent__QuiesceRequest *rq = f->quiesce;
  uint64_t id = f->id;
  Chvm__Agent__QuiesceReply qr = CHVM__AGENT__QUIESCE_REPLY__INIT;
  Frame rf = CHVM__AGENT__FRAME__INIT;
  unsigned timeout = rq->timeout_ms ? rq->timeout_ms : QUIESCE_DEFAULT_MS;
  struct mount_ent *m = NULL;
  size_t n = 0;
  int64_t before;
  cleanup_err struct err *e = NULL;

  if (timeout > QUIESCE_MAX_MS)
    {
      conn_send_error (c, id, CHVM__AGENT__ERROR_CODE__ERROR_BAD_REQUEST, "timeout_ms %u above %u",
                       timeout, QUIESCE_MAX_MS);
      return;
    }
  if (read_mounts (&m, &n, &e) < 0)
    {
      conn_send_err (c, id, CHVM__AGENT__ERROR_CODE__ERROR_INTERNAL, e);
      return;
    }
  if (!agent.test_mode && hooks_run (HOOKS_DIR, "quiesce", HOOK_TIMEOUT_MS, &e) < 0)
    goto fail; /* nothing frozen: the VM runs on */
  before = mem_available_kb (NULL);
  sync ();
  if (!agent.test_mode)
    {
      /* Caches go first: after the freeze nothing can dirty them again. */
      if (rq->drop_caches && write_proc ("/proc/sys/vm/drop_caches", "3", &e) < 0)
        goto fail;
      if (rq->compact && write_proc ("/proc/sys/vm/compact_memory", "1", &e) < 0)
        {
          if (e->status != ENOENT) /* kernel without CONFIG_COMPACTION */
            goto fail;
          err_release (&e);
        }
    }
  qr.freed_kb = mem_available_kb (&qr) - before;

  set_frozen (true);
  for (size_t i = n; i-- > 0 && !agent.test_mode;)
    {
      cleanup_close int fd = open (m[i].path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (fd < 0)
        {
          if (errno == ENOENT || errno == EACCES)
            continue; /* hidden under a later mount */
          err_make (&e, errno, "open %s", m[i].path);
          break;
        }
      if (ioctl (fd, FIFREEZE, 0) == 0)
        fz.count++;
      else if (errno != EOPNOTSUPP && errno != EBUSY)
        {
          err_make (&e, errno, "FIFREEZE %s", m[i].path);
          break;
        }
    }
  if (e != NULL)
    {
      thaw_now (NULL);
      goto fail;
    }
  qr.frozen_count = fz.count;
  if (fz.count == 0)
    set_frozen (false); /* nothing to thaw later */
  else
    {
      struct timeval tv = { timeout / 1000, (timeout % 1000) * 1000 };
      conn_req_add (c, &fz.owner, id, freeze_cancel, NULL);
      fz.timer = evtimer_new (agent.base, freeze_timer_cb, NULL);
      if (fz.timer == NULL || evtimer_add (fz.timer, &tv) < 0)
        {
          thaw_now (NULL);
          err_make (&e, ENOMEM, "cannot arm the auto-thaw timer");
          goto fail;
        }
    }
  freeze_free_mounts (m, n);
  rf.id = id;
  rf.body_case = CHVM__AGENT__FRAME__BODY_QUIESCE_REPLY;
  rf.quiesce_reply = &qr;
  conn_send (c, &rf);
  return;

fail:
  freeze_free_mounts (m, n);
  conn_send_err (c, id, CHVM__AGENT__ERROR_CODE__ERROR_INTERNAL, e);
}

/* Keeps the RTC in step with the clock just set, so that a reboot (or a
   reader of the RTC) starts from the right time; like `hwclock -w`, in UTC.
   Returns 1 when written, 0 when the VM has no RTC (no /dev/rtc0 at all),
   <0 when the RTC is there but refuses. */
static int
rtc_write (const struct timespec *ts, struct err **err)
{
  cleanup_close int fd = open (RTC_DEV, O_RDONLY | O_CLOEXEC);
  struct rtc_time rt;
  struct tm tm;

  if (fd < 0)
    return errno == ENOENT ? 0 : err_make (err, errno, "open " RTC_DEV);
  if (gmtime_r (&ts->tv_sec, &tm) == NULL)
    return err_make (err, errno, "gmtime_r %lld", (long long) ts->tv_sec);
  memset (&rt, 0, sizeof rt);
  rt.tm_sec = tm.tm_sec;
  rt.tm_min = tm.tm_min;
  rt.tm_hour = tm.tm_hour;
  rt.tm_mday = tm.tm_mday;
  rt.tm_mon = tm.tm_mon;
  rt.tm_year = tm.tm_year;
  if (ioctl (fd, RTC_SET_TIME, &rt) < 0)
    return err_make (err, errno, RTC_DEV " RTC_SET_TIME");
  return 1;
}

void
thaw_handle (struct conn *c, const Frame *f)
{
  const Chvm__Agent__ThawRequest *rq = f->thaw;
  uint64_t id = f->id;
  Chvm__Agent__ThawReply tr = CHVM__AGENT__THAW_REPLY__INIT;
  Frame rf = CHVM__AGENT__FRAME__INIT;
  cleanup_err struct err *e = NULL;

  if (rq->host_time_ns != 0
      && (rq->host_time_ns < HOST_TIME_MIN_NS || rq->host_time_ns >= HOST_TIME_MAX_NS))
    {
      conn_send_error (c, id, CHVM__AGENT__ERROR_CODE__ERROR_BAD_REQUEST,
                       "host_time_ns %llu is outside 2000..2200",
                       (unsigned long long) rq->host_time_ns);
      return;
    }
  tr.thawed_count = thaw_now (NULL);
  if (rq->restored)
    {
      tr.closed_count = conn_close_older (c);
      log_info ("restored: closed %u connections from before the restore", tr.closed_count);
    }
  if (rq->host_time_ns != 0)
    {
      struct timespec now, want = { (time_t) (rq->host_time_ns / 1000000000ULL),
                                    (long) (rq->host_time_ns % 1000000000ULL) };
      clock_gettime (CLOCK_REALTIME, &now);
      tr.clock_step_ns
          = ((int64_t) want.tv_sec - now.tv_sec) * 1000000000LL + (want.tv_nsec - now.tv_nsec);
      if (!agent.test_mode)
        {
          if (clock_settime (CLOCK_REALTIME, &want) < 0)
            {
              conn_send_error (c, id, CHVM__AGENT__ERROR_CODE__ERROR_INTERNAL,
                               "clock_settime: %s (thawed %u)", strerror (errno), tr.thawed_count);
              return;
            }
          /* The system clock first (it is what the browser reads), then
             the RTC, whose failure is an error (docs/style.md). */
          int r = rtc_write (&want, &e);
          if (r < 0)
            {
              char buf[256];
              conn_send_error (c, id, CHVM__AGENT__ERROR_CODE__ERROR_INTERNAL,
                               "RTC: %s (the system clock was set; thawed %u)",
                               err_str (e, buf, sizeof buf), tr.thawed_count);
              return;
            }
          tr.rtc_set = r > 0;
        }
      log_info ("clock stepped by %lld ns", (long long) tr.clock_step_ns);
    }
  if (!agent.test_mode)
    {
      int r = announce_eth0 (&e);
      if (r < 0)
        {
          char buf[256];
          log_warn ("network re-announce: %s", err_str (e, buf, sizeof buf));
        }
      tr.announced = r > 0;
      hooks_after ("thaw");
    }
  rf.id = id;
  rf.body_case = CHVM__AGENT__FRAME__BODY_THAW_REPLY;
  rf.thaw_reply = &tr;
  conn_send (c, &rf);
}
