/*
 * hub.h — the hub thread: LISTEN, NOTIFY -> shared messages -> streams,
 * stream subscription, heartbeats, retention and the disconnect watcher.
 */
#ifndef HERALD_HUB_H
#define HERALD_HUB_H

#include <stdbool.h>
#include <stdint.h>
#include "compiler.h"
#include "config.h"
#include "message.h"
#include "stream.h"

bool hub_start(const struct herald_config *cfg) HERALD_MUSTCHECK;
void hub_stop(void);
/* True while the LISTEN connection is up and caught up. */
bool hub_ready(void);
/* Subscribes s on the hub thread (takes a reference). */
void hub_register(struct stream *s);
/* Watches fd, the socket of stream id, for the client hanging up. */
void hub_watch(uint64_t stream_id, int fd);
/* Ends every stream with m (a closing control message) — or, with m NULL,
 * drops them at once. Returns how many were open. */
size_t hub_close_all(struct message *m, enum stream_end why);

#endif
