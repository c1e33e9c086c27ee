/*
 * main.c — herald's entry point: arguments and configuration, signals,
 * and the start and stop order of the threads. Nothing else.
 *
 * Start: config -> logging -> (--migrate and exit) -> database workers ->
 * hub -> HTTP. Stop on SIGTERM/SIGINT (drain, SPEC §2): stop accepting,
 * send herald.shutdown to every stream, wait up to drain_timeout for
 * streams and queued requests to finish, drop what is left, then stop
 * HTTP, hub and workers in that order and exit 0.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "caps.h"
#include "config.h"
#include "db.h"
#include "http.h"
#include "hub.h"
#include "quota.h"
#include "log.h"
#include "message.h"
#include "migrate.h"
#include "presence.h"
#include "registry.h"
#include "rules.h"
#include "tls.h"
#include "util/buf.h"
#include "util/timeutil.h"
#include "util/xmalloc.h"
#include "validity.h"

static const char usage[] =
	"Usage: herald [OPTION]...\n"
	"Server-Sent Events for PostgreSQL-backed, multi-tenant applications.\n"
	"\n"
	"  -c, --config FILE      read settings from FILE (key = value lines)\n"
	"  -l, --listen HOST:PORT address to serve HTTP on [127.0.0.1:8080]\n"
	"  -d, --db CONNINFO      libpq connection string [PG* environment]\n"
	"  -n, --node-id ID       this node's name in logs and the cluster [host:pid]\n"
	"      --tls-cert FILE    PEM certificate (with --tls-key: HTTPS only)\n"
	"      --tls-key FILE     PEM private key\n"
	"      --demo             serve the demo page at /\n"
	"      --migrate          install or upgrade the database schema, then exit\n"
	"  -V, --version          print the version and exit\n"
	"  -h, --help             print this help and exit\n"
	"\n"
	"Flags override the configuration file. See etc/herald.conf for every key.\n";

struct flag {
	const char *key;
	const char *value;
};

static int parse_args(int argc, char **argv, const char **config_path,
                      struct flag *flags, size_t *nflags, bool *migrate)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"listen", required_argument, NULL, 'l'},
		{"db", required_argument, NULL, 'd'},
		{"node-id", required_argument, NULL, 'n'},
		{"tls-cert", required_argument, NULL, 1},
		{"tls-key", required_argument, NULL, 2},
		{"demo", no_argument, NULL, 3},
		{"migrate", no_argument, NULL, 4},
		{"version", no_argument, NULL, 'V'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int c;
	while ((c = getopt_long(argc, argv, "c:l:d:n:Vh", opts, NULL)) != -1) {
		switch (c) {
		case 'c': *config_path = optarg; break;
		case 'l': flags[(*nflags)++] = (struct flag){"listen", optarg}; break;
		case 'd': flags[(*nflags)++] = (struct flag){"db", optarg}; break;
		case 'n': flags[(*nflags)++] = (struct flag){"node_id", optarg}; break;
		case 1: flags[(*nflags)++] = (struct flag){"tls_cert", optarg}; break;
		case 2: flags[(*nflags)++] = (struct flag){"tls_key", optarg}; break;
		case 3: flags[(*nflags)++] = (struct flag){"demo", "on"}; break;
		case 4: *migrate = true; break;
		case 'V': printf("herald %s\n", PACKAGE_VERSION); exit(0);
		case 'h': fputs(usage, stdout); exit(0);
		default: fputs(usage, stderr); return -1;
		}
		if (*nflags >= 16)
			return -1;
	}
	if (optind < argc) {
		fprintf(stderr, "herald: unexpected argument '%s'\n", argv[optind]);
		return -1;
	}
	return 0;
}

/* Fills the defaults that depend on the machine. */
static void finish_config(struct herald_config *cfg)
{
	if (!cfg->node_id) {
		char host[256] = "herald";
		struct buf b = BUF_INIT;
		gethostname(host, sizeof(host) - 1);
		buf_printf(&b, "%s:%ld", host, (long)getpid());
		cfg->node_id = buf_steal(&b);
	}
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		/* Each stream is a socket: take every descriptor we may. */
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		if (cfg->max_connections == 0)
			cfg->max_connections = rl.rlim_cur > 128 ? (int64_t)rl.rlim_cur - 64 : 64;
	}
}

static bool load_config(int argc, char **argv, struct herald_config *cfg, bool *migrate)
{
	const char *path = NULL;
	struct flag flags[16];
	size_t nflags = 0;
	char err[256];

	config_defaults(cfg);
	if (parse_args(argc, argv, &path, flags, &nflags, migrate) != 0)
		return false;
	if (path && !config_load_file(cfg, path, err, sizeof(err))) {
		fprintf(stderr, "herald: %s\n", err);
		return false;
	}
	for (size_t i = 0; i < nflags; i++) {
		if (!config_set(cfg, flags[i].key, flags[i].value, err, sizeof(err))) {
			fprintf(stderr, "herald: %s\n", err);
			return false;
		}
	}
	finish_config(cfg);
	return true;
}

/* SIGHUP: reads the config file and flags again and puts the limits and
 * the log level in force; everything else needs a restart. A file that
 * does not load changes nothing. */
static void reload(int argc, char **argv, const struct herald_config *start)
{
	struct herald_config fresh;
	bool migrate = false;
	optind = 0; /* getopt starts over */
	if (!load_config(argc, argv, &fresh, &migrate)) {
		config_free(&fresh);
		log_msg(LOG_ERROR, "reload failed; the settings in force are kept", NULL);
		return;
	}
	struct herald_config *next = xmalloc(sizeof(*next));
	*next = *start;
	config_copy_reloadable(next, &fresh);
	config_free(&fresh);
	config_set_live(next);
	log_set_level(next->log_level);
	log_msg(LOG_INFO, "configuration reloaded", NULL);
}

static void wait_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* Polls until no stream or request is left, or the deadline passes. */
static bool wait_idle(int64_t deadline_ms)
{
	for (;;) {
		registry_lock();
		size_t streams = registry_stream_count();
		registry_unlock();
		if (streams == 0 && http_inflight() == 0)
			return true;
		if (time_mono_ms() >= deadline_ms)
			return false;
		wait_ms(20);
	}
}

static void drain(const struct herald_config *cfg)
{
	http_quiesce();
	struct message *bye = message_new_control("herald.shutdown",
		"{\"reason\":\"node shutting down\"}", true);
	size_t n = hub_close_all(bye, STREAM_END_SHUTDOWN);
	message_unref(bye);
	char count[24];
	snprintf(count, sizeof(count), "%zu", n);
	log_msg(LOG_INFO, "draining", "streams", count, NULL);
	if (!wait_idle(time_mono_ms() + cfg->drain_timeout_ms)) {
		log_msg(LOG_WARN, "drain timeout, dropping remaining streams", NULL);
		hub_close_all(NULL, STREAM_END_SHUTDOWN);
		/* libmicrohttpd must not be stopped with a suspended connection:
		 * wait for every stream and request, which the database timeouts
		 * bound (db.c), however long that takes. */
		while (!wait_idle(time_mono_ms() + 5000)) {
			log_msg(LOG_WARN, "still waiting for streams or requests to finish", NULL);
			hub_close_all(NULL, STREAM_END_SHUTDOWN);
		}
	}
}

int main(int argc, char **argv)
{
	struct herald_config cfg;
	bool migrate = false;

	if (!load_config(argc, argv, &cfg, &migrate))
		return 2;
	log_init(cfg.log_level, cfg.log_format, cfg.node_id);
	struct tls_material tls = {0};
	char tls_err[256];
	if ((cfg.tls_cert || cfg.tls_key) && !migrate &&
	    !tls_load(cfg.tls_cert, cfg.tls_key, &tls, tls_err, sizeof(tls_err))) {
		fprintf(stderr, "herald: %s\n", tls_err);
		config_free(&cfg);
		return 2;
	}
	struct herald_config *live = xmalloc(sizeof(*live));
	*live = cfg;
	config_set_live(live);
	if (migrate) {
		bool ok = migrate_run(cfg.db);
		config_live_free();
		config_free(&cfg);
		return ok ? 0 : 1;
	}

	/* Signals are taken synchronously here; every thread inherits the mask. */
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	registry_init();
	audit_start(&cfg);
	validity_start(&cfg);
	presence_start(&cfg);
	quota_start();
	caps_start(&cfg);
	if (!db_start(cfg.db, cfg.node_id, cfg.db_workers) || !hub_start(&cfg) || !http_start(&cfg, &tls)) {
		log_msg(LOG_ERROR, "start failed", NULL);
		return 1;
	}
	log_msg(LOG_INFO, "herald started", "listen", cfg.listen, "version", PACKAGE_VERSION, NULL);

	for (;;) {
		int sig;
		if (sigwait(&sigs, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			reload(argc, argv, &cfg);
			continue;
		}
		break;
	}
	drain(&cfg);
	http_stop();
	hub_stop();
	presence_stop();
	audit_stop();
	db_stop();
	presence_free();
	quota_stop();
	caps_free();
	registry_shutdown();
	rules_shutdown();
	log_msg(LOG_INFO, "herald stopped", NULL);
	tls_free(&tls);
	config_live_free();
	config_free(&cfg);
	return 0;
}
