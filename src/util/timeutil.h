/*
 * timeutil.h — clocks: monotonic milliseconds for timers, wall time for
 * timestamps shown to users.
 */
#ifndef HERALD_TIMEUTIL_H
#define HERALD_TIMEUTIL_H

#include <stdint.h>
#include <stdbool.h>
#include <stddef.h>

int64_t time_mono_ms(void);
int64_t time_mono_ns(void);
int64_t time_wall_ms(void);
/* Formats ms since the epoch as RFC 3339 UTC with milliseconds
 * ("2026-01-02T03:04:05.678Z") into out (at least 25 bytes). */
void time_format_rfc3339(int64_t wall_ms, char out[32]);
/* Parses what time_format_rfc3339 writes (and PostgreSQL's to_char in
 * sql/0001); false on anything else. */
bool time_parse_rfc3339(const char *s, int64_t *wall_ms);

#endif
