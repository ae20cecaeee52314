/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The one monotonic clock of host and guest code: now in milliseconds, and
 * what is left of a deadline given in the same milliseconds.  Header-only,
 * so that every program and test gets it without another source to link.
 */
#ifndef CHVM_CLOCK_H
#define CHVM_CLOCK_H

#include <limits.h>
#include <stdint.h>
#include <time.h>

/* CLOCK_MONOTONIC in milliseconds, with the fraction (phase timings). */
static inline double
clock_now_ms (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (double) ts.tv_sec * 1e3 + (double) ts.tv_nsec / 1e6;
}

/* Milliseconds left until deadline (a clock_now_ms () value), rounded up so
   that a wait for it does not wake early: 0 once passed, at most INT_MAX. */
static inline int
clock_left_ms (double deadline)
{
  double left = deadline - clock_now_ms ();

  if (left <= 0)
    return 0;
  return left >= INT_MAX ? INT_MAX : (int) left + 1;
}

#endif
