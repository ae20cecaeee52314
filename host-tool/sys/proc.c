/* SPDX-License-Identifier: Apache-2.0 */
#include "sys/proc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/mount.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "clock.h"
#include "num.h"
#include "sys/cgroup.h"
#include "sys/fs.h"

extern char **environ;

/* bind() creates a unix socket's file before listen() makes it accept:
   no event marks the end of that window, so a refused connect is retried
   after this long (still woken at once if the process exits). */
#define CONNECT_RETRY_MS 5

/* proc_run: ip, nft, mkfs.ext4 and the like. */
#define PROC_RUN_TIMEOUT_MS 10000

/* posix_spawn attributes for a process in a session of its own, with the
   default signal mask and dispositions whatever the caller set. */
static void
proc_spawnattr_session (posix_spawnattr_t *attr)
{
  sigset_t none, all;

  sigemptyset (&none);
  sigfillset (&all);
  posix_spawnattr_setsigmask (attr, &none);
  posix_spawnattr_setsigdefault (attr, &all);
  posix_spawnattr_setflags (attr,
                            POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
}

int
proc_spawn_self_env (const char *const argv[], const char *const envp[], int pass_fd, pid_t *pid,
                     struct err **err)
{
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  int r;

  posix_spawn_file_actions_init (&fa);
  posix_spawnattr_init (&attr);
  for (int i = 0; i < 3; i++)
    posix_spawn_file_actions_addopen (&fa, i, "/dev/null", i == 0 ? O_RDONLY : O_WRONLY, 0);
  /* dup2 clears close-on-exec on fd 3 (also when pass_fd is 3 already). */
  if (pass_fd >= 0)
    posix_spawn_file_actions_adddup2 (&fa, pass_fd, PROC_PASS_FD);
  posix_spawn_file_actions_addclosefrom_np (&fa, pass_fd >= 0 ? PROC_PASS_FD + 1 : 3);
  proc_spawnattr_session (&attr);
  r = posix_spawn (pid, "/proc/self/exe", &fa, &attr, (char *const *) argv,
                   envp != NULL ? (char *const *) envp : environ);
  posix_spawn_file_actions_destroy (&fa);
  posix_spawnattr_destroy (&attr);
  if (r != 0)
    return err_make (err, r, "start %s %s", argv[0], argv[1]);
  return 0;
}

int
proc_spawn_self (const char *const argv[], pid_t *pid, struct err **err)
{
  return proc_spawn_self_env (argv, NULL, -1, pid, err);
}

int
proc_find_exec (const char *name, char *out, size_t len)
{
  const char *path = getenv ("PATH");
  char buf[PATH_MAX], real[PATH_MAX];

  if (strchr (name, '/') != NULL)
    return realpath (name, real) != NULL && access (real, X_OK) == 0
                   && (size_t) snprintf (out, len, "%s", real) < len
               ? 0
               : -1;
  while (path != NULL && *path)
    {
      size_t n = strcspn (path, ":");
      if (n > 0 && (size_t) snprintf (buf, sizeof buf, "%.*s/%s", (int) n, path, name) < sizeof buf
          && access (buf, X_OK) == 0 && realpath (buf, real) != NULL)
        return (size_t) snprintf (out, len, "%s", real) < len ? 0 : -1;
      path += n + (path[n] == ':');
    }
  return -1;
}

int
proc_spawn (const char *const argv[], const char *log_path, pid_t *pid, struct err **err)
{
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  cleanup_close int log_fd = -1;
  int r;

  log_fd = open (log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0)
    return err_make (err, errno, "open %s", log_path);
  posix_spawn_file_actions_init (&fa);
  posix_spawnattr_init (&attr);
  posix_spawn_file_actions_addopen (&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2 (&fa, log_fd, 1);
  posix_spawn_file_actions_adddup2 (&fa, log_fd, 2);
  posix_spawn_file_actions_addclosefrom_np (&fa, 3);
  /* Own session: a ^C in the terminal that ran chvm must not stop the VM. */
  proc_spawnattr_session (&attr);
  r = posix_spawnp (pid, argv[0], &fa, &attr, (char *const *) argv, environ);
  posix_spawn_file_actions_destroy (&fa);
  posix_spawnattr_destroy (&attr);
  if (r != 0)
    return err_make (err, r, "start %s", argv[0]);
  return 0;
}

/* What the jailed child sends back when it cannot exec: the step, the
   path (if any) and the errno. */
struct jail_failure
{
  int errnum;
  char step[32];
  char path[256];
};

static void __attribute__ ((noreturn))
jail_fail (int fd, int errnum, const char *step, const char *path)
{
  struct jail_failure f = { .errnum = errnum };

  /* Async-signal-safe calls only (strnlen, memcpy: POSIX.1-2008 TC2): we
     are a child of fork(). */
  memcpy (f.step, step, strnlen (step, sizeof f.step - 1));
  if (path != NULL)
    memcpy (f.path, path, strnlen (path, sizeof f.path - 1));
  (void) !write (fd, &f, sizeof f);
  _exit (127);
}

/* In the child: j's identity, every capability dropped, j->need checked. */
static void
jail_drop (int err_fd, const struct proc_jail *j)
{
  if (j->own_sysfs
      && (unshare (CLONE_NEWNS) < 0 || mount (NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0
          || umount2 ("/sys", MNT_DETACH) < 0
          || mount ("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0))
    jail_fail (err_fd, errno, "mount /sys of the network namespace", NULL);
  /* The bounding set while we still hold CAP_SETPCAP; the kernel may know
     more capabilities than our headers (EINVAL ends the list). */
  for (int cap = 0; cap < 64; cap++)
    if (prctl (PR_CAPBSET_DROP, cap, 0, 0, 0) < 0)
      {
        if (errno == EINVAL)
          break;
        jail_fail (err_fd, errno, "drop capabilities", NULL);
      }
  if (setgroups (j->n_groups, j->groups) < 0)
    jail_fail (err_fd, errno, "setgroups", NULL);
  if (setresgid (j->gid, j->gid, j->gid) < 0)
    jail_fail (err_fd, errno, "setresgid", NULL);
  /* All uids non-zero and no SECBIT_KEEP_CAPS: the kernel clears the
     permitted, effective and ambient sets here. */
  if (setresuid (j->uid, j->uid, j->uid) < 0)
    jail_fail (err_fd, errno, "setresuid", NULL);
  if (prctl (PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
    jail_fail (err_fd, errno, "clear ambient capabilities", NULL);
  if (prctl (PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
    jail_fail (err_fd, errno, "PR_SET_NO_NEW_PRIVS", NULL);
  for (size_t i = 0; j->need != NULL && j->need[i] != NULL; i++)
    {
      const char *n = j->need[i], *path = n + 2;
      int mode = n[0] == 'r' ? R_OK : n[0] == 'w' ? R_OK | W_OK : R_OK | W_OK | X_OK;

      if (access (path, mode) < 0)
        jail_fail (err_fd, errno,
                   n[0] == 'r'   ? "read"
                   : n[0] == 'w' ? "open for writing"
                                 : "write in",
                   path);
    }
}

/* In the child: join the cgroup (cg_fd, its cgroup.procs; -1: none), take
   j's identity (NULL: stay chvm's), exec.  Never returns. */
static void __attribute__ ((noreturn))
jail_exec (const char *const argv[], int log_fd, int err_fd, int cg_fd, const struct proc_jail *j)
{
  static const char *const no_env[] = { NULL };
  sigset_t none;
  int null_fd;

  /* First: whatever the VMM forks from here on is in its VM's cgroup. */
  if (cg_fd >= 0 && write (cg_fd, "0", 1) != 1)
    jail_fail (err_fd, errno, "join the VM's cgroup", NULL);
  if (setsid () < 0)
    jail_fail (err_fd, errno, "setsid", NULL);
  for (int sig = 1; sig < NSIG; sig++)
    signal (sig, SIG_DFL);
  sigemptyset (&none);
  sigprocmask (SIG_SETMASK, &none, NULL);
  null_fd = open ("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null_fd < 0 || dup2 (null_fd, 0) < 0 || dup2 (log_fd, 1) < 0 || dup2 (log_fd, 2) < 0)
    jail_fail (err_fd, errno, "redirect stdio", NULL);
  /* The error pipe becomes fd 3 (close-on-exec); nothing else of ours
     reaches the VMM. */
  if (dup3 (err_fd, 3, O_CLOEXEC) < 0)
    jail_fail (err_fd, errno, "dup3", NULL);
  err_fd = 3;
  syscall (SYS_close_range, 4U, ~0U, 0U);
  if (j != NULL)
    jail_drop (err_fd, j);
  /* PATH is searched with chvm's environment (this copy of it), not j->env. */
  execvpe (argv[0], (char *const *) argv,
           j == NULL ? environ : (char *const *) (j->env ? j->env : no_env));
  jail_fail (err_fd, errno, "exec", argv[0]);
}

int
proc_spawn_vmm (const char *const argv[], const char *log_path, const struct proc_jail *j,
                const char *cgroup, pid_t *pid, struct err **err)
{
  cleanup_close int log_fd = -1, rd = -1, wr = -1, cg = -1;
  struct jail_failure f;
  unsigned uid = j != NULL ? (unsigned) j->uid : (unsigned) geteuid ();
  int pipefd[2];
  ssize_t n;
  pid_t child;

  if (j == NULL && cgroup == NULL)
    return proc_spawn (argv, log_path, pid, err);
  if (cgroup != NULL && (cg = cgroup_open_procs (cgroup, err)) < 0)
    return err_wrap (err, "the VM's cgroup");
  /* In the VM dir, where the VMM's uid may plant a name. */
  log_fd = fs_open_log (log_path, false, err);
  if (log_fd < 0)
    return -1;
  if (pipe2 (pipefd, O_CLOEXEC) < 0)
    return err_make (err, errno, "pipe2");
  rd = pipefd[0];
  wr = pipefd[1];
  child = fork ();
  if (child < 0)
    return err_make (err, errno, "fork");
  if (child == 0)
    jail_exec (argv, log_fd, wr, cg, j);
  close (steal_fd (&wr));
  /* EOF: the exec happened (the pipe was close-on-exec). */
  n = TEMP_FAILURE_RETRY (read (rd, &f, sizeof f));
  if (n == 0)
    {
      *pid = child;
      return 0;
    }
  TEMP_FAILURE_RETRY (waitpid (child, NULL, 0));
  if (n != (ssize_t) sizeof f)
    return err_make (err, n < 0 ? errno : EIO, "start %s as uid %u", argv[0], uid);
  f.step[sizeof f.step - 1] = f.path[sizeof f.path - 1] = '\0';
  if (f.path[0] && j != NULL)
    return err_make (err, f.errnum, "the VMM user (uid %u, gid %u) cannot %s %s", uid,
                     (unsigned) j->gid, f.step, f.path);
  return err_make (err, f.errnum, "start %s as uid %u: %s", argv[0], uid, f.step);
}

static void
describe_status (int st, char *buf, size_t len)
{
  if (st == -1)
    snprintf (buf, len, "exited");
  else if (WIFEXITED (st))
    snprintf (buf, len, "exited with status %d", WEXITSTATUS (st));
  else if (WIFSIGNALED (st))
    snprintf (buf, len, "was killed by signal %d (%s)", WTERMSIG (st), strsignal (WTERMSIG (st)));
  else
    snprintf (buf, len, "stopped (wait status 0x%x)", st);
}

/* After the pidfd polled readable: reap pid if it is our child. */
static int
reap_status (pid_t pid)
{
  int st = 0;

  if (TEMP_FAILURE_RETRY (waitpid (pid, &st, WNOHANG)) == pid)
    return st;
  return -1;
}

static int
open_pidfd (pid_t pid, struct err **err)
{
  int fd = pidfd_open (pid, 0);

  if (fd < 0)
    return err_make (err, errno, "pidfd_open %d", (int) pid);
  return fd;
}

int
proc_wait_socket (pid_t pid, const char *path, int timeout_ms, struct err **err)
{
  int fd = proc_connect_socket (pid, path, timeout_ms, err);

  if (fd < 0)
    return fd;
  close (fd);
  return 0;
}

int
proc_connect_socket (pid_t pid, const char *path, int timeout_ms, struct err **err)
{
  double deadline = clock_now_ms () + timeout_ms;
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  cleanup_close int pidfd = -1, ino = -1;
  char dir[sizeof sa.sun_path];
  const char *slash;

  if (strlen (path) >= sizeof sa.sun_path)
    return err_make (err, ENAMETOOLONG, "socket path %s", path);
  memcpy (sa.sun_path, path, strlen (path) + 1);
  slash = strrchr (path, '/');
  if (slash == NULL)
    snprintf (dir, sizeof dir, ".");
  else
    snprintf (dir, sizeof dir, "%.*s", slash == path ? 1 : (int) (slash - path), path);

  pidfd = open_pidfd (pid, err);
  if (pidfd < 0)
    return pidfd;
  /* Watch before the first connect so a socket created in between still
     wakes us. */
  ino = inotify_init1 (IN_CLOEXEC | IN_NONBLOCK);
  if (ino < 0)
    return err_make (err, errno, "inotify_init1");
  if (inotify_add_watch (ino, dir, IN_CREATE | IN_MOVED_TO) < 0)
    return err_make (err, errno, "inotify_add_watch %s", dir);

  for (;;)
    {
      cleanup_close int s = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      struct pollfd p[2] = { { .fd = pidfd, .events = POLLIN }, { .fd = ino, .events = POLLIN } };
      int wait_ms, n;
      char buf[4096];

      if (s < 0)
        return err_make (err, errno, "socket");
      if (connect (s, (struct sockaddr *) &sa, sizeof sa) == 0)
        return steal_fd (&s);
      if (errno != ENOENT && errno != ECONNREFUSED && errno != EINTR)
        return err_make (err, errno, "connect %s", path);
      wait_ms = clock_left_ms (deadline);
      if (wait_ms == 0)
        return err_make (err, ETIMEDOUT, "waiting %d ms for process %d to listen on %s", timeout_ms,
                         (int) pid, path);
      if (errno == ECONNREFUSED && wait_ms > CONNECT_RETRY_MS)
        wait_ms = CONNECT_RETRY_MS;
      n = poll (p, 2, wait_ms);
      if (n < 0 && errno != EINTR)
        return err_make (err, errno, "poll");
      if (n > 0 && (p[0].revents & POLLIN))
        {
          char how[96];
          describe_status (reap_status (pid), how, sizeof how);
          return err_make (err, 0, "process %d %s before listening on %s", (int) pid, how, path);
        }
      if (n > 0 && (p[1].revents & POLLIN))
        while (read (ino, buf, sizeof buf) > 0)
          ; /* drain; we re-check the path itself */
    }
}

int
proc_wait_exit (pid_t pid, int timeout_ms, int *status, struct err **err)
{
  double deadline = clock_now_ms () + timeout_ms;
  cleanup_close int pidfd = -1;

  pidfd = pidfd_open (pid, 0);
  if (pidfd < 0)
    {
      if (errno == ESRCH)
        {
          if (status)
            *status = reap_status (pid);
          return 1;
        }
      return err_make (err, errno, "pidfd_open %d", (int) pid);
    }
  for (;;)
    {
      struct pollfd p = { .fd = pidfd, .events = POLLIN };
      int n = poll (&p, 1, clock_left_ms (deadline));

      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        return err_make (err, errno, "poll");
      if (n == 0)
        return 0;
      if (status)
        *status = reap_status (pid);
      else
        reap_status (pid);
      return 1;
    }
}

int
proc_terminate (pid_t pid, int grace_ms, struct err **err)
{
  static const int sigs[] = { SIGTERM, SIGKILL };
  int r;

  for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
    {
      if (kill (pid, sigs[i]) < 0 && errno != ESRCH)
        return err_make (err, errno, "kill %d", (int) pid);
      r = proc_wait_exit (pid, grace_ms, NULL, err);
      if (r != 0)
        return r < 0 ? r : 0;
    }
  return err_make (err, ETIMEDOUT, "process %d still runs %d ms after SIGKILL", (int) pid,
                   grace_ms);
}

bool
proc_alive_p (pid_t pid)
{
  int st;

  if (pid <= 0)
    return false;
  if (TEMP_FAILURE_RETRY (waitpid (pid, &st, WNOHANG)) == pid)
    return false;
  return kill (pid, 0) == 0 || errno == EPERM;
}

int
proc_capture_line (const char *const argv[], char *out, size_t len, int timeout_ms,
                   struct err **err)
{
  double deadline = clock_now_ms () + timeout_ms;
  posix_spawn_file_actions_t fa;
  cleanup_close int rd = -1, wr = -1;
  int pipefd[2], r;
  size_t used = 0;
  char buf[512];
  pid_t pid;

  if (len == 0)
    return err_make (err, EINVAL, "proc_capture_line: empty buffer");
  if (pipe2 (pipefd, O_CLOEXEC) < 0)
    return err_make (err, errno, "pipe2");
  rd = pipefd[0];
  wr = pipefd[1];
  posix_spawn_file_actions_init (&fa);
  posix_spawn_file_actions_addopen (&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2 (&fa, wr, 1);
  posix_spawn_file_actions_addopen (&fa, 2, "/dev/null", O_WRONLY, 0);
  r = posix_spawnp (&pid, argv[0], &fa, NULL, (char *const *) argv, environ);
  posix_spawn_file_actions_destroy (&fa);
  if (r != 0)
    return err_make (err, r, "start %s", argv[0]);
  close (steal_fd (&wr));

  /* Read until EOF or a full buffer; the deadline bounds a child that
     keeps the pipe open. */
  for (;;)
    {
      struct pollfd p = { .fd = rd, .events = POLLIN };
      int n = poll (&p, 1, clock_left_ms (deadline));
      ssize_t got;

      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        {
          proc_terminate (pid, 1000, NULL);
          if (n == 0)
            return err_make (err, ETIMEDOUT, "%s gave no output within %d ms", argv[0], timeout_ms);
          return err_make (err, errno, "poll");
        }
      got = TEMP_FAILURE_RETRY (read (rd, buf + used, sizeof buf - 1 - used));
      if (got <= 0 || (used += (size_t) got) == sizeof buf - 1)
        break;
    }
  buf[used] = '\0';
  buf[strcspn (buf, "\n")] = '\0';
  r = proc_wait_exit (pid, clock_left_ms (deadline), NULL, err);
  if (r == 0)
    proc_terminate (pid, 1000, NULL);
  if (r < 0)
    return r;
  snprintf (out, len, "%s", buf);
  return 0;
}

int
proc_read_sysctl (const char *path, char *v, struct err **err)
{
  cleanup_close int fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd < 0 || TEMP_FAILURE_RETRY (read (fd, v, 1)) != 1)
    return err_make (err, errno ? errno : EIO, "read %s", path);
  return 0;
}

void
proc_log_last_line (const char *log_path, char *out, size_t len)
{
  char buf[1024];
  cleanup_close int fd = -1;
  struct stat st;
  ssize_t n;
  char *end, *start;

  out[0] = '\0';
  fd = fs_open_read (log_path); /* vmm.log, supervisor.log: in the VM dir */
  if (fd < 0 || fstat (fd, &st) < 0)
    return;
  n = pread (fd, buf, sizeof buf - 1,
             st.st_size > (off_t) sizeof buf - 1 ? st.st_size - (off_t) (sizeof buf - 1) : 0);
  if (n <= 0)
    return;
  buf[n] = '\0';
  end = buf + n;
  while (end > buf && (end[-1] == '\n' || end[-1] == ' '))
    *--end = '\0';
  start = strrchr (buf, '\n');
  /* Truncating a long log line is fine. */
  if (snprintf (out, len, "%s", start ? start + 1 : buf) < 0)
    out[0] = '\0';
}

bool
proc_cmdline_names_dir (const char *buf, size_t len, const char *dir)
{
  size_t dl = strlen (dir);

  while (dl > 1 && dir[dl - 1] == '/')
    dl--;
  if (dl == 0)
    return false;
  /* Every occurrence of dir in each NUL-separated argument counts only at
     path component boundaries: the argument or a "path=", "unix:" or ","
     value starts there, and the path ends there or goes on below dir.  So
     VM "a"'s dir never matches ".../vms/ab/api.sock". */
  for (size_t i = 0; i < len;)
    {
      const char *arg = buf + i;
      size_t al = strnlen (arg, len - i);

      for (size_t off = 0; off + dl <= al; off++)
        {
          char before = off ? arg[off - 1] : '\0';
          char after = off + dl < al ? arg[off + dl] : '\0';

          if (memcmp (arg + off, dir, dl) != 0)
            continue;
          if (off != 0 && before != '=' && before != ':' && before != ',')
            continue;
          if (after == '\0' || after == '/' || after == ',')
            return true;
        }
      i += al + 1;
    }
  return false;
}

pid_t
proc_read_pid_file (const char *path)
{
  char s[24];
  /* Not a link (to a file the caller may read and the planter may not) nor a
     FIFO or device (whose open or read would block), and one the caller's
     uid wrote (as chvm writes every pid file, renamed into place): what a
     VMM's uid puts under the name is not read. */
  cleanup_close int fd = fs_open_read (path);
  struct stat st;
  ssize_t n;
  uint64_t v;

  if (fd < 0 || fstat (fd, &st) < 0 || st.st_uid != geteuid () || st.st_nlink != 1)
    return 0;
  n = TEMP_FAILURE_RETRY (read (fd, s, sizeof s - 1));
  if (n <= 0)
    return 0;
  while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' '))
    n--;
  if (num_parse_u64 (s, (size_t) n, INT32_MAX, &v) < 0 || v == 0)
    return 0;
  return (pid_t) v;
}

/* "Key:   N kB" at a line start of text into bytes. */
static int
smaps_field (const char *text, const char *key, uint64_t *out)
{
  size_t klen = strlen (key);
  uint64_t kb;

  for (const char *l = text; l != NULL; l = strchr (l, '\n') ? strchr (l, '\n') + 1 : NULL)
    {
      const char *v, *end;
      if (strncmp (l, key, klen) != 0 || l[klen] != ':')
        continue;
      v = l + klen + 1;
      v += strspn (v, " \t");
      end = v + strspn (v, "0123456789");
      if (strncmp (end, " kB", 3) != 0
          || num_parse_u64 (v, (size_t) (end - v), UINT64_MAX >> 10, &kb) < 0)
        return -1;
      *out = kb << 10;
      return 0;
    }
  return -1;
}

int
proc_parse_smaps_rollup (const char *text, uint64_t *rss, uint64_t *pss)
{
  return smaps_field (text, "Rss", rss) < 0 || smaps_field (text, "Pss", pss) < 0 ? -1 : 0;
}

int
proc_mem_usage (pid_t pid, uint64_t *rss, uint64_t *pss, struct err **err)
{
  char path[40], buf[4096];
  cleanup_close int fd = -1;
  size_t len = 0;
  ssize_t n;

  snprintf (path, sizeof path, "/proc/%d/smaps_rollup", (int) pid);
  fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return err_make (err, errno, "%s", path);
  while (len < sizeof buf - 1
         && (n = TEMP_FAILURE_RETRY (read (fd, buf + len, sizeof buf - 1 - len))) > 0)
    len += (size_t) n;
  buf[len] = '\0';
  if (proc_parse_smaps_rollup (buf, rss, pss) < 0)
    return err_make (err, 0, "%s: no Rss and Pss lines", path);
  return 0;
}

bool
proc_pid_owned_by (pid_t pid, uid_t uid)
{
  char path[32];
  struct stat st;

  snprintf (path, sizeof path, "/proc/%d", (int) pid);
  return pid > 0 && stat (path, &st) == 0 && st.st_uid == uid;
}

/* /proc/PID/cmdline (NUL-separated, NUL-terminated) into buf; its length,
   0 when gone or a zombie (an empty cmdline: it runs nothing). */
static size_t
read_cmdline (pid_t pid, char *buf, size_t cap)
{
  char path[64];
  cleanup_close int fd = -1;
  size_t got = 0;
  ssize_t n;

  snprintf (path, sizeof path, "/proc/%d/cmdline", (int) pid);
  if (pid <= 0 || (fd = open (path, O_RDONLY | O_CLOEXEC)) < 0)
    return 0;
  while (got < cap - 1 && (n = TEMP_FAILURE_RETRY (read (fd, buf + got, cap - 1 - got))) > 0)
    got += (size_t) n;
  buf[got] = '\0';
  return got;
}

bool
proc_pid_names_dir (pid_t pid, const char *needle)
{
  char buf[8192];
  size_t got;

  if (needle == NULL || *needle == '\0')
    return false;
  got = read_cmdline (pid, buf, sizeof buf);
  return got > 0 && proc_cmdline_names_dir (buf, got, needle);
}

bool
proc_pid_is_daemon (pid_t pid, const char *cmd, const char *dir)
{
  char buf[8192];
  size_t got = read_cmdline (pid, buf, sizeof buf), a0 = strnlen (buf, got);

  return got > a0 + 1 && strcmp (buf + a0 + 1, cmd) == 0 && proc_cmdline_names_dir (buf, got, dir)
         && proc_pid_owned_by (pid, 0);
}

int
proc_run (const char *const argv[], const char *input, bool quiet, struct err **err)
{
  posix_spawn_file_actions_t fa;
  cleanup_close int rd = -1, in_wr = -1, in_rd = -1;
  int pe[2], pi[2], st = 0, r;
  double deadline = clock_now_ms () + PROC_RUN_TIMEOUT_MS;
  char msg[512];
  size_t used = 0;
  pid_t pid;

  if (pipe2 (pe, O_CLOEXEC) < 0 || pipe2 (pi, O_CLOEXEC) < 0)
    return err_make (err, errno, "pipe2");
  rd = pe[0];
  in_rd = pi[0];
  in_wr = pi[1];
  posix_spawn_file_actions_init (&fa);
  posix_spawn_file_actions_adddup2 (&fa, in_rd, 0);
  posix_spawn_file_actions_addopen (&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_adddup2 (&fa, pe[1], 2);
  r = posix_spawnp (&pid, argv[0], &fa, NULL, (char *const *) argv, environ);
  posix_spawn_file_actions_destroy (&fa);
  close (pe[1]);
  close (steal_fd (&in_rd));
  if (r != 0)
    return err_make (err, r, "start %s", argv[0]);
  if (input != NULL && write (in_wr, input, strlen (input)) < 0)
    {
      /* the exit status below tells what went wrong */
    }
  close (steal_fd (&in_wr));
  for (;;)
    {
      struct pollfd p = { .fd = rd, .events = POLLIN };
      double left = deadline - clock_now_ms ();
      int n = poll (&p, 1, left > 0 ? (int) left + 1 : 0);
      ssize_t got;
      char sink[256];

      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        {
          proc_terminate (pid, 1000, NULL);
          return err_make (err, ETIMEDOUT, "%s %s: no exit within %d ms", argv[0],
                           argv[1] ? argv[1] : "", PROC_RUN_TIMEOUT_MS);
        }
      if (used < sizeof msg - 1)
        got = TEMP_FAILURE_RETRY (read (rd, msg + used, sizeof msg - 1 - used));
      else
        got = TEMP_FAILURE_RETRY (read (rd, sink, sizeof sink));
      if (got <= 0)
        break;
      if (used < sizeof msg - 1)
        used += (size_t) got;
    }
  msg[used] = '\0';
  msg[strcspn (msg, "\n")] = '\0';
  r = proc_wait_exit (pid, PROC_RUN_TIMEOUT_MS, &st, err);
  if (r < 0)
    return r;
  if (r == 0)
    {
      proc_terminate (pid, 1000, NULL);
      return err_make (err, ETIMEDOUT, "%s did not exit", argv[0]);
    }
  if (WIFEXITED (st) && WEXITSTATUS (st) == 0)
    return 0;
  if (quiet)
    return 1;
  {
    char cmd[256];
    size_t off = 0;
    for (size_t i = 0; argv[i] != NULL && off < sizeof cmd; i++)
      off += (size_t) snprintf (cmd + off, sizeof cmd - off, "%s%s", i ? " " : "", argv[i]);
    return err_make (err, 0, "'%s' failed: %s", cmd, msg[0] ? msg : "non-zero exit");
  }
}

/* Whether /proc/PID/status names uid among its real, effective, saved or
   filesystem uids. */
static bool
status_has_uid (const char *pid, uid_t uid)
{
  char path[64], buf[4096];
  cleanup_close int fd = -1;
  ssize_t n;
  const char *line;
  unsigned long ids[4];

  snprintf (path, sizeof path, "/proc/%s/status", pid);
  fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return false;
  n = read (fd, buf, sizeof buf - 1);
  if (n <= 0)
    return false;
  buf[n] = '\0';
  /* A zombie holds nothing; its parent reaps it. */
  line = strstr (buf, "\nState:");
  if (line != NULL && line[8] == 'Z')
    return false;
  line = strstr (buf, "\nUid:");
  if (line == NULL || sscanf (line + 5, "%lu %lu %lu %lu", &ids[0], &ids[1], &ids[2], &ids[3]) != 4)
    return false;
  for (int i = 0; i < 4; i++)
    if (ids[i] == (unsigned long) uid)
      return true;
  return false;
}

int
proc_uid_count (uid_t uid)
{
  cleanup_dir DIR *d = opendir ("/proc");
  struct dirent *e;
  int n = 0;

  if (d == NULL)
    return -1;
  while ((e = readdir (d)) != NULL)
    if (e->d_name[0] >= '1' && e->d_name[0] <= '9' && status_has_uid (e->d_name, uid))
      n++;
  return n;
}

/* kill(-1, SIGKILL) from a child that is uid: the kernel signals, at once,
   every process uid may signal (those whose real or saved uid is uid), so
   none can fork away meanwhile. */
static void
kill_all_as (uid_t uid)
{
  pid_t pid = fork ();

  if (pid == 0)
    {
      if (setgroups (0, NULL) == 0 && setresgid (uid, uid, uid) == 0
          && setresuid (uid, uid, uid) == 0)
        kill (-1, SIGKILL);
      _exit (0);
    }
  if (pid > 0)
    waitpid (pid, NULL, 0);
}

int
proc_kill_uid (uid_t uid, int timeout_ms, struct err **err)
{
  double deadline = clock_now_ms () + timeout_ms;
  int n;

  if (uid == 0)
    return err_make (err, EINVAL, "refusing to kill every process of root");
  for (;;)
    {
      n = proc_uid_count (uid);
      if (n < 0)
        return err_make (err, errno, "read /proc");
      if (n == 0)
        return 0;
      kill_all_as (uid);
      if (clock_left_ms (deadline) == 0)
        return err_make (err, EBUSY, "%d process(es) of uid %u are still there", n, (unsigned) uid);
      poll (NULL, 0, 10);
    }
}
