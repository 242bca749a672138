/*
 * sluiced: the submission server.  Start-up order matters:
 *   1. read the configuration (a file, or the embedded defaults),
 *   2. as root: make the state folders, the TLS certificate, bind every
 *      listener, load the key, then drop to the unprivileged user,
 *   3. open the store and the spool (recovery) as that user,
 *   4. run the event loop until SIGTERM/SIGINT, then answer what is in
 *      flight, close the sessions with 421 and let the spool drain.
 */
#include "cmd/daemon.h"
#include "cmd/defaults.h"
#include "cmd/signer.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/thread.h>

static void usage(FILE *f)
{
	fprintf(f, "usage: sluiced [-c FILE] [-d]\n"
		   "  -c FILE   configuration file (default: embedded defaults, state in ./var)\n"
		   "  -d        debug logging\n"
		   "sluiced runs in the foreground and logs to stderr (or syslog: log = syslog).\n");
}

void daemon_complete(struct sluiced *d, struct daemon_completion *c)
{
	uint64_t one = 1;

	pthread_mutex_lock(&d->done_lock);
	c->next = NULL;
	*d->done_tail = c;
	d->done_tail = &c->next;
	pthread_mutex_unlock(&d->done_lock);
	if (write(d->done_fd, &one, sizeof one) < 0 && errno != EAGAIN)
		log_err("completion wakeup failed error=\"%s\"", strerror(errno));
}

static void completions_run(evutil_socket_t fd, short what, void *arg)
{
	struct sluiced *d = arg;
	struct daemon_completion *list;
	uint64_t n;

	(void)what;
	if (read(fd, &n, sizeof n) < 0 && errno != EAGAIN)
		log_err("completion read failed error=\"%s\"", strerror(errno));
	pthread_mutex_lock(&d->done_lock);
	list = d->done_head;
	d->done_head = NULL;
	d->done_tail = &d->done_head;
	pthread_mutex_unlock(&d->done_lock);
	while (list) {
		struct daemon_completion *c = list;
		list = c->next;
		session_complete(c);
		free(c);
	}
	if (d->stopping && d->nsessions == 0)
		event_base_loopbreak(d->base);
}

static void listener_accept(evutil_socket_t fd, short what, void *arg)
{
	struct daemon_listener *l = arg;
	int i;

	(void)what;
	/* bounded, so one busy listener cannot starve the others */
	for (i = 0; i < 64; i++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof ss;
		int c = accept4(fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (c < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
			    errno != ECONNABORTED)
				log_err("accept failed listener=%s error=\"%s\"", l->cfg->name,
					strerror(errno));
			return;
		}
		session_accept(l->d, l, c, &ss);
	}
}

/* The rates' state to the store (policy_limits_export), with the usage
 * flush and at exit, so a restart does not give everyone a fresh burst. */
static void limits_save(struct sluiced *d)
{
	struct store_limit_state *rows = NULL;
	size_t n = 0;
	char *err = NULL;

	if (policy_limits_export(d->limits, &rows, &n) < 0) {
		log_err("limits state-save-failed error=\"out of memory\"");
		return;
	}
	if (n > 0 && store_limit_state_save(d->store, rows, n, util_wall_us(), &err) < 0) {
		log_err("limits state-save-failed rows=%zu error=\"%s\"", n, err ? err : "?");
		free(err);
	}
	free(rows);
}

static void limits_load(struct sluiced *d)
{
	struct store_limit_state *rows = NULL;
	size_t n = 0;
	char *err = NULL;

	if (store_limit_state_load(d->store, util_wall_us(), &rows, &n, &err) < 0)
		log_fatal("cannot load the rate limits' state error=\"%s\"", err ? err : "?");
	if (policy_limits_import(d->limits, rows, n) < 0)
		log_fatal("out of memory at start");
	free(rows);
	log_info("limits state loaded rates=%zu", n);
}

/* Usage counters to the store, every usage_flush_interval. */
static void usage_flush(evutil_socket_t fd, short what, void *arg)
{
	struct sluiced *d = arg;

	(void)fd;
	(void)what;
	policy_usage_flush(d->usage, d->store);
	limits_save(d);
	daemon_contain_save(d);
	daemon_contain_egress(d);
}

/* Delivery thread: count the outcome (no I/O); a hard bounce (5.1.x)
 * suppresses the recipient for its tenant at the next flush.  Outcomes
 * of DSNs (null sender) are sluice's, not the tenant's: not counted. */
static void usage_outcome(void *ctx, const struct deliver_outcome_info *o)
{
	static const char *const metric[] = {"delivered", "deferred", "bounced"};
	struct sluiced *d = ctx;
	int64_t now = util_wall_seconds();

	if (o->sender[0] == '\0')
		return;
	policy_usage_count(d->usage, o->tenant_id, 0, metric[o->outcome], 1, now);
	if (o->outcome == DELIVER_FAILED && !o->expired &&
	    policy_suppress_reply(o->code, o->enhanced, o->reply))
		policy_usage_suppress(d->usage, o->tenant_id, o->rcpt, o->reply, now);
	/* a bounce is a containment signal: a remote's refusal, or an address
	 * that cannot exist (5.1.x: no such domain, null MX); not sluice's
	 * other local failures (an operator's bounce, a loop) */
	if (o->outcome == DELIVER_FAILED && !o->expired &&
	    (!o->local || strncmp(o->enhanced, "5.1.", 4) == 0))
		daemon_contain_bounced(d, o->tenant_id, o->credential_id);
}

static void stop_now(evutil_socket_t sig, short what, void *arg)
{
	struct sluiced *d = arg;

	(void)what;
	if (sig == SIGHUP) {
		log_info("sighup: nothing to reload yet; stores and networks reload on change");
		return;
	}
	if (d->stopping) {
		log_warn("second signal: exiting without waiting");
		event_base_loopbreak(d->base);
		return;
	}
	log_info("stopping signal=%d sessions=%zu", (int)sig, d->nsessions);
	d->stopping = 1;
	for (size_t i = 0; i < d->nlisteners; i++)
		event_del(d->listeners[i].ev);
	session_shutdown_all(d);
	if (d->nsessions == 0)
		event_base_loopbreak(d->base);
	else /* sessions close as they finish; never wait more than this */
		event_base_loopexit(d->base, &(struct timeval){.tv_sec = 10, .tv_usec = 0});
}

static int make_dir(const char *path, mode_t mode)
{
	char tmp[4096];

	if (util_strlcpy(tmp, path, sizeof tmp) >= sizeof tmp)
		return -1;
	for (char *p = tmp + 1; *p; p++) {
		if (*p == '/') {
			*p = '\0';
			if (mkdir(tmp, mode) < 0 && errno != EEXIST)
				return -1;
			*p = '/';
		}
	}
	if (mkdir(tmp, mode) < 0 && errno != EEXIST)
		return -1;
	return 0;
}

static int parent_dir(const char *path, char *out, size_t size)
{
	const char *slash = strrchr(path, '/');

	if (slash == NULL)
		return util_strlcpy(out, ".", size) < size ? 0 : -1;
	if ((size_t)(slash - path) >= size)
		return -1;
	memcpy(out, path, (size_t)(slash - path));
	out[slash - path] = '\0';
	if (out[0] == '\0')
		util_strlcpy(out, "/", size);
	return 0;
}

/* Make the folders sluiced writes, owned by uid when running as root. */
static void prepare_dirs(struct sluiced *d, uid_t uid, gid_t gid)
{
	const char *paths[] = {d->cfg.store + strlen("sqlite:"), d->cfg.control_socket};
	char dir[4096];

	if (make_dir(d->cfg.spool_dir, 0700) < 0)
		log_fatal("cannot create spool_dir=%s error=\"%s\"", d->cfg.spool_dir,
			  strerror(errno));
	if (geteuid() == 0 && chown(d->cfg.spool_dir, uid, gid) < 0)
		log_fatal("chown spool_dir=%s error=\"%s\"", d->cfg.spool_dir, strerror(errno));
	for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
		if (paths[i] == NULL || parent_dir(paths[i], dir, sizeof dir) < 0)
			continue;
		if (make_dir(dir, 0750) < 0)
			log_fatal("cannot create dir=%s error=\"%s\"", dir, strerror(errno));
		if (geteuid() == 0 && strcmp(dir, "/") != 0 && chown(dir, uid, gid) < 0)
			log_fatal("chown dir=%s error=\"%s\"", dir, strerror(errno));
	}
	/* an existing database (made by the CLI as root) must be ours too */
	if (geteuid() == 0) {
		const char *db = d->cfg.store + strlen("sqlite:");
		const char *suffix[] = {"", "-wal", "-shm"};
		for (size_t i = 0; i < 3; i++) {
			char p[4200];
			snprintf(p, sizeof p, "%s%s", db, suffix[i]);
			if (chown(p, uid, gid) < 0 && errno != ENOENT)
				log_fatal("chown file=%s error=\"%s\"", p, strerror(errno));
		}
	}
}

/* One descriptor per session: take all the hard limit allows. */
static void raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			log_warn("cannot raise the descriptor limit error=\"%s\"", strerror(errno));
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
		log_info("descriptor limit=%llu", (unsigned long long)rl.rlim_cur);
}

static void drop_privileges(const struct passwd *pw)
{
	if (setgroups(1, &pw->pw_gid) < 0 || setresgid(pw->pw_gid, pw->pw_gid, pw->pw_gid) < 0 ||
	    setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) < 0)
		log_fatal("cannot drop privileges to user=%s error=\"%s\"", pw->pw_name,
			  strerror(errno));
	if (setuid(0) == 0)
		log_fatal("privileges were not dropped: setuid(0) still works");
	log_info("privileges dropped user=%s uid=%d", pw->pw_name, (int)pw->pw_uid);
}

static void bind_listeners(struct sluiced *d)
{
	for (size_t i = 0; i < d->cfg.nlisteners; i++) {
		const struct config_listener *lc = &d->cfg.listeners[i];
		for (size_t j = 0; j < lc->naddrs; j++) {
			struct daemon_listener *l = &d->listeners[d->nlisteners];
			char *err = NULL;

			l->fd = net_listen(lc->addrs[j], 1024, &err);
			if (l->fd < 0)
				log_fatal("listen failed listener=%s error=\"%s\"", lc->name,
					  err ? err : "?");
			l->cfg = lc;
			l->addr = lc->addrs[j];
			l->d = d;
			d->nlisteners++;
			log_info("listening listener=%s address=%s tls=%s mode=%s", lc->name,
				 lc->addrs[j],
				 lc->tls == CONFIG_TLS_IMPLICIT   ? "implicit"
				 : lc->tls == CONFIG_TLS_STARTTLS ? "starttls"
								  : "none",
				 lc->mode == CONFIG_MODE_RELAY ? "relay" : "submission");
		}
	}
}

int main(int argc, char **argv)
{
	struct sluiced d;
	const char *config_path = NULL;
	struct passwd *pw = NULL;
	char *err = NULL;
	int opt, debug = 0, embedded;

	memset(&d, 0, sizeof d);
	while ((opt = getopt(argc, argv, "c:dh")) != -1) {
		switch (opt) {
		case 'c':
			config_path = optarg;
			break;
		case 'd':
			debug = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}

	config_defaults(&d.cfg);
	embedded = config_path == NULL;
	if (embedded) {
		if (defaults_embedded(&d.cfg, &err) < 0) {
			fprintf(stderr, "sluiced: %s\n", err);
			return 1;
		}
	} else if (config_load(config_path, &d.cfg, &err) < 0) {
		fprintf(stderr, "sluiced: %s\n", err);
		return 1;
	}
	log_init("sluiced", d.cfg.log_syslog,
		 debug || d.cfg.log_debug ? LOG_LEVEL_DEBUG : LOG_LEVEL_INFO);
	log_info("starting version=%s config=%s", SLUICE_VERSION,
		 embedded ? "embedded-defaults" : config_path);
	signal(SIGPIPE, SIG_IGN);
	raise_fd_limit();

	if (geteuid() == 0) {
		const char *user = d.cfg.user ? d.cfg.user : "sluice";
		pw = getpwnam(user);
		if (pw == NULL)
			log_fatal("user=%s does not exist; create it (useradd --system sluice) "
				  "or set user = in the configuration",
				  user);
		if (pw->pw_uid == 0)
			log_fatal("user=%s is root; sluiced will not serve as root", user);
	}
	prepare_dirs(&d, pw ? pw->pw_uid : geteuid(), pw ? pw->pw_gid : getegid());

	if (d.cfg.tls_cert && d.cfg.tls_key) {
		char dir[4096];
		int made;

		if (parent_dir(d.cfg.tls_key, dir, sizeof dir) == 0)
			make_dir(dir, 0700);
		made = net_tls_ensure_cert(d.cfg.tls_cert, d.cfg.tls_key, d.cfg.hostname, &err);
		if (made < 0)
			log_fatal("tls certificate error=\"%s\"", err);
		if (made > 0)
			log_info("tls self-signed certificate created cert=%s key=%s", d.cfg.tls_cert,
				 d.cfg.tls_key);
		d.tls = net_tls_server_ctx(d.cfg.tls_cert, d.cfg.tls_key, &err);
		if (d.tls == NULL)
			log_fatal("tls context error=\"%s\"", err);
	} else {
		log_warn("no tls_cert/tls_key: STARTTLS and AUTH are unavailable");
	}
	bind_listeners(&d);
	daemon_metrics_open(&d); /* metrics_listen too, before the drop */
	if (control_open(&d, &err) < 0)
		log_fatal("control socket error=\"%s\"", err);
	if (pw) {
		if (d.control_fd >= 0 && d.cfg.control_socket &&
		    chown(d.cfg.control_socket, pw->pw_uid, pw->pw_gid) < 0)
			log_fatal("chown control socket error=\"%s\"", strerror(errno));
		drop_privileges(pw);
	}

	if (auth_init() < 0)
		log_fatal("libsodium initialisation failed");
	if (store_open(d.cfg.store, &d.store, &err) != 0)
		log_fatal("store open failed error=\"%s\"", err ? err : "?");
	if (embedded && defaults_demo_tenant(d.store, &err) < 0)
		log_fatal("demo tenant error=\"%s\"", err ? err : "?");
	{
		struct spool_config sc = {.dir = d.cfg.spool_dir, .batch_max = d.cfg.spool_batch_max};
		if (spool_open(&sc, &d.spool, &err) < 0)
			log_fatal("spool open failed error=\"%s\"", err ? err : "?");
		log_info("spool ready dir=%s queued=%zu", d.cfg.spool_dir, spool_count(d.spool));
	}
	if (auth_pool_new(d.cfg.auth_threads, &d.auth_pool) < 0)
		log_fatal("auth pool start failed");
	d.auth_cache = auth_cache_new(4096, d.cfg.auth_cache_ttl);
	d.auth_limiter = auth_limiter_new(d.cfg.auth_fail_limit_ip, d.cfg.auth_fail_limit_user,
					  d.cfg.auth_fail_window);
	d.networks = policy_networks_new();
	if (d.auth_cache == NULL || d.auth_limiter == NULL || d.networks == NULL)
		log_fatal("out of memory at start");
	if (policy_networks_refresh(d.networks, d.store) < 0)
		log_fatal("cannot load trusted networks");
	/* DKIM keys: read once now, again only when they change; signing
	 * threads, one per CPU (signer.h) */
	if ((d.signer = signer_new(0)) == NULL)
		log_fatal("out of memory at start");
	if (signer_refresh(d.signer, d.store) < 0)
		log_fatal("cannot load DKIM keys");
	/* outbound policy: limits and usage counters (policy/limits.c, usage.c) */
	d.limits = policy_limits_new(d.cfg.policy.limits);
	d.usage = policy_usage_new();
	if (d.limits == NULL || d.usage == NULL)
		log_fatal("out of memory at start");
	limits_load(&d);
	if (evthread_use_pthreads() < 0)
		log_fatal("libevent threads unavailable");
	d.base = event_base_new();
	if (d.base == NULL)
		log_fatal("event_base_new failed");
	pthread_mutex_init(&d.done_lock, NULL);
	d.done_tail = &d.done_head;
	d.done_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (d.done_fd < 0)
		log_fatal("eventfd failed error=\"%s\"", strerror(errno));
	d.done_ev = event_new(d.base, d.done_fd, EV_READ | EV_PERSIST, completions_run, &d);
	event_add(d.done_ev, NULL);
	for (size_t i = 0; i < d.nlisteners; i++) {
		d.listeners[i].ev = event_new(d.base, d.listeners[i].fd, EV_READ | EV_PERSIST,
					      listener_accept, &d.listeners[i]);
		event_add(d.listeners[i].ev, NULL);
	}
	d.sig_term = evsignal_new(d.base, SIGTERM, stop_now, &d);
	d.sig_int = evsignal_new(d.base, SIGINT, stop_now, &d);
	d.sig_hup = evsignal_new(d.base, SIGHUP, stop_now, &d);
	event_add(d.sig_term, NULL);
	event_add(d.sig_int, NULL);
	event_add(d.sig_hup, NULL);
	daemon_metrics_start(&d);
	if (d.control_fd >= 0) {
		d.control_ev =
			event_new(d.base, d.control_fd, EV_READ | EV_PERSIST, control_accept, &d);
		event_add(d.control_ev, NULL);
	}

	if (scan_configured(&d.cfg.scan)) {
		if ((d.scan = scan_new(d.base, &d.cfg.scan, &err)) == NULL)
			log_fatal("scan start failed error=\"%s\"", err ? err : "out of memory");
		log_info("scan on clamd=%s rspamd=%s fail=%s max_size=%llu",
			 d.cfg.scan.clamd ? d.cfg.scan.clamd : "-",
			 d.cfg.scan.rspamd ? d.cfg.scan.rspamd : "-",
			 d.cfg.scan.fail_closed ? "closed" : "open",
			 (unsigned long long)d.cfg.scan.max_size);
	}

	/* containment: baselines and levels kept in the store (contain.c) */
	if (daemon_contain_start(&d, &err) < 0)
		log_fatal("containment start failed error=\"%s\"", err ? err : "?");

	d.usage_ev = event_new(d.base, -1, EV_PERSIST, usage_flush, &d);
	event_add(d.usage_ev,
		  &(struct timeval){.tv_sec = d.cfg.policy.usage_flush_interval, .tv_usec = 0});

	if (d.cfg.delivery.enabled) {
		if (deliver_engine_start(&d.cfg, d.spool, &d.deliver, &err) < 0)
			log_fatal("delivery start failed error=\"%s\"", err ? err : "?");
		deliver_engine_set_outcome_hook(d.deliver, usage_outcome, &d);
	} else {
		log_info("delivery off: messages are queued, not sent");
	}

	log_info("ready hostname=%s listeners=%zu", d.cfg.hostname, d.nlisteners);
	event_base_dispatch(d.base);

	log_info("shutting down sessions=%zu", d.nsessions);
	deliver_engine_stop(d.deliver); /* no more spool calls from it */
	signer_stop(d.signer); /* its threads spool what they still sign */
	spool_close(&d.spool); /* waits for the last group commit */
	deliver_engine_free(&d.deliver);
	completions_run(d.done_fd, EV_READ, &d);
	session_free_all(&d);
	/* the last counts: the sessions are gone, delivery has stopped */
	policy_usage_flush(d.usage, d.store);
	limits_save(&d);
	daemon_contain_stop(&d);
	event_free(d.usage_ev);
	policy_usage_free(&d.usage);
	policy_limits_free(&d.limits);
	scan_free(&d.scan); /* after the sessions: they cancel their jobs */
	auth_pool_free(&d.auth_pool);
	control_close(&d);
	for (size_t i = 0; i < d.nlisteners; i++) {
		event_free(d.listeners[i].ev);
		close(d.listeners[i].fd);
	}
	event_free(d.sig_term);
	event_free(d.sig_int);
	event_free(d.sig_hup);
	event_free(d.done_ev);
	close(d.done_fd);
	auth_cache_free(&d.auth_cache);
	auth_limiter_free(&d.auth_limiter);
	policy_networks_free(&d.networks);
	signer_free(&d.signer);
	store_close(&d.store);
	if (d.tls)
		SSL_CTX_free(d.tls);
	daemon_metrics_stop(&d); /* after the sessions, which count their end */
	event_base_free(d.base);
	config_free(&d.cfg);
	log_info("stopped");
	return 0;
}
