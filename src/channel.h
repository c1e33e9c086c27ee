/*
 * channel.h — the grammar of channel names and event types (SPEC §1).
 *
 * channel = feature ":" name, feature = [a-z][a-z0-9_-]{0,31},
 * name = [A-Za-z0-9_.:-]{1,200}; type = [A-Za-z0-9_.:-]{1,100}.
 * Pure functions over bytes; they never allocate.
 */
#ifndef HERALD_CHANNEL_H
#define HERALD_CHANNEL_H

#include <stdbool.h>
#include <stddef.h>

#define CHANNEL_MAX_LEN (32 + 1 + 200)
#define TYPE_MAX_LEN 100

/* s is n bytes and need not be NUL-terminated; embedded NUL is invalid. */
bool channel_valid(const char *s, size_t n);
/* Length of the feature part of a valid channel (bytes before ':'). */
size_t channel_feature_len(const char *s);
bool event_type_valid(const char *s, size_t n);
/* Types beginning "herald." are reserved for the server. */
bool event_type_reserved(const char *s, size_t n);

/* How well a rule pattern (an exact channel, or a prefix ending in '*')
 * fits channel: -1 when it does not match; otherwise higher is more
 * specific — an exact name beats every prefix, a longer prefix a shorter
 * one. herald.rule_rank() in sql/0005_integrity.sql ranks the same way. */
int channel_rule_rank(const char *pattern, const char *channel);

#endif
