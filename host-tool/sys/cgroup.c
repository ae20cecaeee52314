/* SPDX-License-Identifier: Apache-2.0 */
#include "sys/cgroup.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "clock.h"
#include "num.h"

#define MOUNTINFO_MAX (1 << 20)

int
cgroup_parse_mountinfo (const char *text, char *out, size_t len)
{
  for (const char *line = text; *line;)
    {
      const char *end = strchrnul (line, '\n'), *sep, *mnt;
      const char *cur = line;
      size_t o = 0;

      line = *end ? end + 1 : end;
      /* ID PARENT MAJ:MIN ROOT MOUNT_POINT OPTIONS [OPTIONAL...] - TYPE ... */
      sep = strstr (cur, " - ");
      if (sep == NULL || sep > end || strncmp (sep + 3, "cgroup2 ", 8) != 0)
        continue;
      mnt = cur;
      for (int field = 0; field < 4 && mnt != NULL && mnt < end; field++)
        mnt = strchr (mnt, ' ') ? strchr (mnt, ' ') + 1 : NULL;
      if (mnt == NULL || mnt >= end || len == 0)
        continue;
      /* The kernel escapes space, tab, newline and backslash as \ooo. */
      for (const char *p = mnt; p < end && *p != ' ' && o + 1 < len; p++)
        if (p[0] == '\\' && p + 3 < end && p[1] >= '0' && p[1] <= '3' && p[2] >= '0' && p[2] <= '7'
            && p[3] >= '0' && p[3] <= '7')
          {
            out[o++] = (char) (((p[1] - '0') << 6) | ((p[2] - '0') << 3) | (p[3] - '0'));
            p += 3;
          }
        else
          out[o++] = *p;
      out[o] = '\0';
      return o > 0 ? 1 : 0;
    }
  return 0;
}

bool
cgroup_events_populated (const char *text)
{
  const char *p = strstr (text, "populated ");

  while (p != NULL && p != text && p[-1] != '\n')
    p = strstr (p + 1, "populated ");
  return p != NULL && p[10] == '1';
}

void
cgroup_cpu_max (unsigned cpus, char *out, size_t len)
{
  if (cpus == 0)
    snprintf (out, len, "max 100000");
  else
    snprintf (out, len, "%llu 100000", (unsigned long long) cpus * 100000ULL);
}

/* Up to len - 1 bytes of a file (proc and cgroup files have no size). */
static ssize_t
read_text (const char *path, char *out, size_t len)
{
  cleanup_close int fd = open (path, O_RDONLY | O_CLOEXEC);
  size_t got = 0;
  ssize_t n = 0;

  if (fd < 0)
    return -1;
  while (got + 1 < len && (n = TEMP_FAILURE_RETRY (read (fd, out + got, len - 1 - got))) > 0)
    got += (size_t) n;
  out[got] = '\0';
  return n < 0 ? -1 : (ssize_t) got;
}

/* Writes value to dir/file; -1 with errno on failure. */
static int
write_at (const char *dir, const char *file, const char *value)
{
  char path[CGROUP_PATH_MAX + 64];
  cleanup_close int fd = -1;
  size_t n = strlen (value);

  snprintf (path, sizeof path, "%s/%s", dir, file);
  fd = open (path, O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  return TEMP_FAILURE_RETRY (write (fd, value, n)) == (ssize_t) n ? 0 : -1;
}

int
cgroup_root (char *out, size_t len, struct err **err)
{
  cleanup_free char *text = malloc (MOUNTINFO_MAX);

  if (text == NULL)
    return err_make (err, ENOMEM, "read /proc/self/mountinfo");
  if (read_text ("/proc/self/mountinfo", text, MOUNTINFO_MAX) < 0)
    return err_make (err, errno, "read /proc/self/mountinfo");
  if (cgroup_parse_mountinfo (text, out, len) != 1)
    return err_make (err, ENOENT, "no cgroup v2 hierarchy mounted");
  return 0;
}

int
cgroup_path (const char *leaf, char *out, size_t len, struct err **err)
{
  char root[CGROUP_PATH_MAX];

  if (cgroup_root (root, sizeof root, err) < 0)
    return -1;
  if ((size_t) snprintf (out, len, "%s/%s/%s", root, CGROUP_SLICE, leaf) >= len)
    return err_make (err, ENAMETOOLONG, "cgroup %s", leaf);
  return 0;
}

/* Whether the space-separated list holds word. */
static bool
has_word (const char *list, const char *word)
{
  size_t wl = strlen (word);

  for (const char *p = list; (p = strstr (p, word)) != NULL; p += wl)
    if ((p == list || p[-1] == ' ') && (p[wl] == '\0' || p[wl] == ' ' || p[wl] == '\n'))
      return true;
  return false;
}

/* chvm.slice under root, with the controllers the root offers enabled in
   its subtree (the root's own subtree first). */
static int
make_slice (const char *root, char *slice, size_t len, struct err **err)
{
  static const char *const controllers[] = { "cpu", "memory", "pids" };
  char avail[256], file[CGROUP_PATH_MAX + 32], plus[16];

  if ((size_t) snprintf (slice, len, "%s/%s", root, CGROUP_SLICE) >= len)
    return err_make (err, ENAMETOOLONG, "cgroup %s", CGROUP_SLICE);
  if (mkdir (slice, 0755) < 0 && errno != EEXIST)
    return err_make (err, errno, "mkdir %s", slice);
  snprintf (file, sizeof file, "%s/cgroup.controllers", root);
  if (read_text (file, avail, sizeof avail) < 0)
    avail[0] = '\0';
  for (size_t i = 0; i < sizeof controllers / sizeof controllers[0]; i++)
    {
      if (!has_word (avail, controllers[i]))
        continue;
      snprintf (plus, sizeof plus, "+%s", controllers[i]);
      /* A failure shows as missing limit files in the VM's cgroup. */
      if (write_at (root, "cgroup.subtree_control", plus) == 0)
        (void) write_at (slice, "cgroup.subtree_control", plus);
    }
  return 0;
}

/* Writes file=value of controller ctl; a missing file (the controller is
   not enabled here) is added to missing, another failure is an error. */
static int
limit (const char *path, const char *ctl, const char *file, const char *value, char *missing,
       size_t mlen, struct err **err)
{
  size_t used = strlen (missing);

  if (write_at (path, file, value) == 0)
    return 0;
  if (errno != ENOENT)
    return err_make (err, errno, "cgroup %s: write %s to %s", path, value, file);
  if (!has_word (missing, ctl))
    snprintf (missing + used, mlen - used, "%s%s", used ? " " : "", ctl);
  return 0;
}

static int
set_limits (const char *path, const struct cgroup_limits *l, char *missing, size_t mlen,
            struct err **err)
{
  char v[48];

  if (l->cpus)
    {
      cgroup_cpu_max (l->cpus, v, sizeof v);
      if (limit (path, "cpu", "cpu.max", v, missing, mlen, err) < 0)
        return -1;
    }
  if (l->memory_bytes)
    {
      snprintf (v, sizeof v, "%llu", (unsigned long long) l->memory_bytes);
      /* oom.group: an OOM ends the whole VM, never just its logger. */
      if (limit (path, "memory", "memory.max", v, missing, mlen, err) < 0
          || limit (path, "memory", "memory.oom.group", "1", missing, mlen, err) < 0)
        return -1;
    }
  if (l->pids)
    {
      snprintf (v, sizeof v, "%llu", (unsigned long long) l->pids);
      if (limit (path, "pids", "pids.max", v, missing, mlen, err) < 0)
        return -1;
    }
  return 0;
}

int
cgroup_create (const char *leaf, const struct cgroup_limits *l, char *path, size_t len,
               char *missing, size_t missing_len, struct err **err)
{
  char root[CGROUP_PATH_MAX], slice[CGROUP_PATH_MAX + 16];

  if (missing_len)
    missing[0] = '\0';
  if (cgroup_root (root, sizeof root, err) < 0 || make_slice (root, slice, sizeof slice, err) < 0)
    return -1;
  if (strchr (leaf, '/') != NULL || leaf[0] == '.' || leaf[0] == '\0')
    return err_make (err, EINVAL, "cgroup name '%s'", leaf);
  if ((size_t) snprintf (path, len, "%s/%s", slice, leaf) >= len)
    return err_make (err, ENAMETOOLONG, "cgroup %s", leaf);
  /* A leftover (a chvm killed while stopping the VM) holds nothing of a
     new VMM's: it goes first. */
  if (cgroup_destroy (path, 5000, err) < 0)
    return err_wrap (err, "remove the leftover cgroup");
  if (mkdir (path, 0755) < 0)
    return err_make (err, errno, "mkdir %s", path);
  if (set_limits (path, l, missing, missing_len, err) < 0)
    {
      rmdir (path);
      return -1;
    }
  return 0;
}

/* Sends SIGKILL to each pid in path/cgroup.procs: kernels before 5.14 have
   no cgroup.kill.  Called until the cgroup is empty. */
static void
kill_procs (const char *path)
{
  char file[CGROUP_PATH_MAX + 16], buf[8192];
  uint64_t pid;

  snprintf (file, sizeof file, "%s/cgroup.procs", path);
  if (read_text (file, buf, sizeof buf) <= 0)
    return;
  /* Whole lines only: a read cut short ("4012345" as "401234") must not
     name another process.  What did not fit is read on the next round. */
  for (char *p = buf, *e; (e = strchr (p, '\n')) != NULL; p = e + 1)
    if (num_parse_u64 (p, (size_t) (e - p), INT32_MAX, &pid) == 0 && pid > 1)
      kill ((pid_t) pid, SIGKILL);
}

/* Waits for "populated 0" in path/cgroup.events (kill_old: SIGKILL what
   is still there whenever it changes, for kernels without cgroup.kill). */
static int
wait_empty (const char *path, int timeout_ms, bool kill_old, struct err **err)
{
  double deadline = clock_now_ms () + timeout_ms;
  char events[CGROUP_PATH_MAX + 16], buf[512];
  cleanup_close int ino = inotify_init1 (IN_CLOEXEC | IN_NONBLOCK);

  snprintf (events, sizeof events, "%s/cgroup.events", path);
  if (ino < 0)
    return err_make (err, errno, "inotify_init1");
  if (inotify_add_watch (ino, events, IN_MODIFY) < 0)
    return err_make (err, errno, "inotify_add_watch %s", events);
  for (;;)
    {
      struct pollfd p = { .fd = ino, .events = POLLIN };
      char drain[4096];
      int n;

      /* Read after the watch is set: a change in between still wakes. */
      if (read_text (events, buf, sizeof buf) < 0)
        return err_make (err, errno, "read %s", events);
      if (!cgroup_events_populated (buf))
        return 0;
      if (kill_old)
        kill_procs (path);
      n = TEMP_FAILURE_RETRY (poll (&p, 1, clock_left_ms (deadline)));
      if (n < 0)
        return err_make (err, errno, "poll");
      if (n == 0)
        return err_make (err, ETIMEDOUT, "cgroup %s: processes still there %d ms after the kill",
                         path, timeout_ms);
      while (read (ino, drain, sizeof drain) > 0)
        ;
    }
}

int
cgroup_destroy (const char *path, int timeout_ms, struct err **err)
{
  struct stat st;
  bool no_kill = false;

  if (stat (path, &st) < 0)
    return errno == ENOENT ? 0 : err_make (err, errno, "stat %s", path);
  if (write_at (path, "cgroup.kill", "1") < 0)
    {
      if (errno != ENOENT)
        return err_make (err, errno, "cgroup %s: write cgroup.kill", path);
      no_kill = true;
    }
  if (wait_empty (path, timeout_ms, no_kill, err) < 0)
    return -1;
  if (rmdir (path) < 0 && errno != ENOENT)
    return err_make (err, errno, "rmdir %s", path);
  return 0;
}

int
cgroup_open_procs (const char *path, struct err **err)
{
  char file[CGROUP_PATH_MAX + 16];
  int fd;

  if ((size_t) snprintf (file, sizeof file, "%s/cgroup.procs", path) >= sizeof file)
    return err_make (err, ENAMETOOLONG, "cgroup %s", path);
  fd = open (file, O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    return err_make (err, errno, "open %s", file);
  return fd;
}

int
cgroup_join_like (pid_t pid, pid_t like, struct err **err)
{
  static const char prefix[] = "0::/" CGROUP_SLICE "/";
  char file[64], buf[4096], root[CGROUP_PATH_MAX], dir[CGROUP_PATH_MAX * 2], v[24];
  cleanup_close int fd = -1;
  char *line;
  int n;

  snprintf (file, sizeof file, "/proc/%d/cgroup", (int) like);
  if (read_text (file, buf, sizeof buf) < 0)
    return err_make (err, errno, "read %s", file);
  line = strstr (buf, prefix);
  if (line == NULL || (line != buf && line[-1] != '\n'))
    return 0;
  line += 3;
  line[strcspn (line, "\n")] = '\0';
  if (cgroup_root (root, sizeof root, err) < 0)
    return -1;
  if ((size_t) snprintf (dir, sizeof dir, "%s%.*s", root, CGROUP_PATH_MAX, line) >= sizeof dir)
    return err_make (err, ENAMETOOLONG, "cgroup %s", line);
  fd = cgroup_open_procs (dir, err);
  if (fd < 0)
    return -1;
  n = snprintf (v, sizeof v, "%d", (int) pid);
  if (TEMP_FAILURE_RETRY (write (fd, v, (size_t) n)) != n)
    return err_make (err, errno, "move %d into cgroup %s", (int) pid, dir);
  return 0;
}

void
cgroup_read (const char *path, const char *file, char *out, size_t len)
{
  char p[CGROUP_PATH_MAX + 64];

  snprintf (p, sizeof p, "%s/%s", path, file);
  if (len == 0)
    return;
  if (read_text (p, out, len) < 0)
    out[0] = '\0';
  out[strcspn (out, "\n")] = '\0';
}

const char *const cgroup_stats_files[]
    = { "cpu.stat", "memory.current", "memory.max", "pids.current", "pids.max", NULL };

#define STAT_FIELD(f) offsetof (struct cgroup_stats, f)

/* The one-value files, and the field each fills. */
static const struct
{
  const char *file;
  size_t off;
  bool limit; /* "max" allowed */
} stat_values[] = {
  { "memory.current", STAT_FIELD (memory_usage), false },
  { "memory.max", STAT_FIELD (memory_limit), true },
  { "pids.current", STAT_FIELD (pids_current), false },
  { "pids.max", STAT_FIELD (pids_limit), true },
};

/* The keys of cpu.stat that Metrics carries. */
static const struct
{
  const char *key;
  size_t off;
} cpu_keys[] = {
  { "usage_usec", STAT_FIELD (cpu_usage_usec) },
  { "user_usec", STAT_FIELD (cpu_user_usec) },
  { "system_usec", STAT_FIELD (cpu_system_usec) },
  { "nr_periods", STAT_FIELD (cpu_nr_periods) },
  { "nr_throttled", STAT_FIELD (cpu_nr_throttled) },
  { "throttled_usec", STAT_FIELD (cpu_throttled_usec) },
};

static uint64_t *
stat_field (struct cgroup_stats *s, size_t off)
{
  return (uint64_t *) ((char *) s + off);
}

static int
parse_cpu_stat (const char *text, size_t len, struct cgroup_stats *s, struct err **err)
{
  const char *p = text, *end = text + len;

  for (unsigned line = 1; p < end; line++)
    {
      const char *nl = memchr (p, '\n', (size_t) (end - p)), *eol = nl != NULL ? nl : end;
      const char *sp = memchr (p, ' ', (size_t) (eol - p));
      uint64_t v;

      if (sp == NULL || sp == p
          || num_parse_u64 (sp + 1, (size_t) (eol - sp - 1), UINT64_MAX, &v) < 0)
        return err_make (err, EINVAL, "cpu.stat line %u: not \"KEY VALUE\"", line);
      for (size_t i = 0; i < sizeof cpu_keys / sizeof cpu_keys[0]; i++)
        if (strlen (cpu_keys[i].key) == (size_t) (sp - p)
            && memcmp (p, cpu_keys[i].key, (size_t) (sp - p)) == 0)
          *stat_field (s, cpu_keys[i].off) = v;
      p = eol == end ? end : eol + 1;
    }
  return 0;
}

int
cgroup_stats_parse (const char *file, const char *text, size_t len, struct cgroup_stats *s,
                    struct err **err)
{
  if (strcmp (file, "cpu.stat") == 0)
    return parse_cpu_stat (text, len, s, err);
  for (size_t i = 0; i < sizeof stat_values / sizeof stat_values[0]; i++)
    {
      if (strcmp (file, stat_values[i].file) != 0)
        continue;
      if (len > 0 && text[len - 1] == '\n')
        len--;
      if (stat_values[i].limit && len == 3 && memcmp (text, "max", 3) == 0)
        *stat_field (s, stat_values[i].off) = UINT64_MAX;
      else if (num_parse_u64 (text, len, UINT64_MAX, stat_field (s, stat_values[i].off)) < 0)
        return err_make (err, EINVAL, "%s: not a number%s", file,
                         stat_values[i].limit ? " or max" : "");
      return 0;
    }
  return err_make (err, EINVAL, "%s: not a cgroup file chvm reads", file);
}

int
cgroup_stats_read (const char *path, struct cgroup_stats *s, struct err **err)
{
  char p[CGROUP_PATH_MAX + 64], buf[4096];
  ssize_t n;

  *s = (struct cgroup_stats){ 0 };
  if (access (path, F_OK) < 0)
    return err_make (err, errno, "cgroup %s", path);
  for (size_t i = 0; cgroup_stats_files[i] != NULL; i++)
    {
      snprintf (p, sizeof p, "%s/%s", path, cgroup_stats_files[i]);
      if ((n = read_text (p, buf, sizeof buf)) < 0 && errno == ENOENT)
        continue;
      if (n < 0)
        return err_make (err, errno, "read %s", p);
      if ((size_t) n + 1 >= sizeof buf)
        return err_make (err, EFBIG, "%s: over %zu bytes", p, sizeof buf - 2);
      if (cgroup_stats_parse (cgroup_stats_files[i], buf, (size_t) n, s, err) < 0)
        return err_wrap (err, "cgroup %s", path);
    }
  return 0;
}
