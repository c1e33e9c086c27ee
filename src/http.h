/*
 * http.h — the HTTP front: the libmicrohttpd daemon, routing, and turning
 * prepared replies and streams into responses.
 */
#ifndef HERALD_HTTP_H
#define HERALD_HTTP_H

#include <stdbool.h>
#include "compiler.h"
#include "config.h"

struct tls_material;
/* tls: HTTPS material, or cert NULL for plain HTTP. */
bool http_start(const struct herald_config *cfg, const struct tls_material *tls) HERALD_MUSTCHECK;
/* Stops accepting new connections; requests on open ones get 503 draining. */
void http_quiesce(void);
/* Requests waiting on a database worker. */
unsigned http_inflight(void);
/* Stops the daemon: every stream must have been closed and resumed. */
void http_stop(void);

#endif
