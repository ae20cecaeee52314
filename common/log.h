/* SPDX-License-Identifier: Apache-2.0 */
/* One-line logs: "LEVEL prog[pid]: msg".  errno is preserved.  Logging can be
   switched off (the agent does so while filesystems are frozen). */
#ifndef CHVM_LOG_H
#define CHVM_LOG_H

enum log_level
{
  LOG_LVL_ERROR,
  LOG_LVL_WARN,
  LOG_LVL_INFO,
  LOG_LVL_DEBUG,
};

/* prog: name printed in each line; fd: where lines go (-1 disables). */
void log_init (const char *prog, int fd, enum log_level max);
void log_set_enabled (int enabled);
void log_msg (enum log_level lvl, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));

#define log_error(...) log_msg (LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg (LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...) log_msg (LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg (LOG_LVL_DEBUG, __VA_ARGS__)

#endif
