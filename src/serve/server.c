/* server.c - the composition root of `postern serve` (see server.h): it builds the
 * transport (net/server.h), the queue, the directories, delivery, the login service
 * (auth/login.h: its threads, the throttle, the dummy hash), the relay credentials,
 * the commit threads, the control socket, binds each listener with its protocol's
 * adapter (serve/smtp.c, serve/pop3.c, serve/web.c with the web room's site), drops
 * privileges, and orchestrates the shutdown on SIGTERM/SIGINT. */
#include "serve/server.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "auth/login.h"
#include "conf/conf.h"
#include "delivery/delivery.h"
#include "events/events.h"
#include "directory/directory.h"
#include "net/activation.h"
#include "net/http.h"
#include "net/server.h"
#include "net/tls.h"
#include "queue/queue.h"
#include "serve/cluster.h"
#include "serve/control.h"
#include "serve/decide.h"
#include "serve/login.h"
#include "serve/notify.h"
#include "serve/reload.h"
#include "serve/send_limits.h"
#include "serve/service.h"
#include "serve/startup.h"
#include "serve/state_feed.h"
#include "util/id.h"
#include "util/log.h"
#include "serve/loopq.h"
#include "util/workq.h"
#include "web/web.h"

/* Spool files kept made ahead (queue_reserve_start): more than the messages that
 * begin within the time the thread takes to make the next ones (under 1 ms each). */
#define SPOOL_FILES_AHEAD 32

/* POP-before-SMTP for the decision pipeline: the POP3 adapter keeps the table. */
static long long pop_login_age(void *ctx, const char *addr)
{
	return pop3_login_age(ctx, addr);
}

static bool bind_listener(struct service *srv, const struct conf_listener *cl)
{
	char err[1024];
	int fd = startup_listen(srv->conf, cl, err, sizeof(err));
	if (fd < 0) {
		log_event(LOG_ERR, "listen_error", "listener=%s address=%s port=%u error=\"%s\"", cl->name, cl->address, cl->port, err);
		return false;
	}
	/* The port as bound, for the words that name it (smtp.c: the port-25 trap). */
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	size_t i = (size_t)(cl - srv->conf->listeners);
	if (i < CONF_LISTENERS_BOUND)
		srv->bound_port[i] = getsockname(fd, (struct sockaddr *)&ss, &sl) != 0 ? cl->port
			: ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port : ((struct sockaddr_in *)&ss)->sin_port);
	if (srv->site && i < CONF_LISTENERS_BOUND)
		web_site_bound(srv->site, cl->name, srv->bound_port[i]);
	if (cl->role == ROLE_HTTP)
		return net_http_listen(srv->net, cl, web_http_request, srv, fd);
	if (cl->role == ROLE_IMAP)
		return net_listen(srv->net, cl, &imap_proto_ops, srv, fd);
	if (cl->role == ROLE_CONTROL)
		return net_listen(srv->net, cl, &control_proto_ops, srv, fd);
	return net_listen(srv->net, cl, cl->role == ROLE_POP3 ? &pop3_proto_ops : &smtp_proto_ops, srv, fd);
}
_Static_assert(CONF_LISTENERS_BOUND == CONF_MAX_LISTENERS, "service.h bound_port");

/* Invariant 7: after binding as root, run as the configured unprivileged user, with
 * no way back (no_new_privs, an empty capability bounding set). */
static bool drop_privileges(const struct conf *cf, const struct startup_identity *id)
{
	char err[512];
	if (!startup_drop_privileges(id, err, sizeof(err))) {
		log_event(LOG_ERR, "privilege_error", "user=%s error=\"%s\"", cf->user, err);
		return false;
	}
	if (id->drop)
		log_event(LOG_INFO, "privileges_dropped", "user=%s uid=%u no_new_privs=1 capability_bounding_set=empty", id->name, (unsigned)id->uid);
	else if (geteuid() == 0)
		log_event(LOG_WARN, "running_as_root", "reason=\"run_as_root = yes\" hint=\"set user = <account> in [server] so the server drops root after binding its ports\"");
	return true;
}

static void shutdown_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct service *srv = arg;
	log_event(LOG_WARN, "shutdown_forced", "open_connections=%u", net_open_connections(srv->net));
	event_base_loopbreak(net_base(srv->net));
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
	(void)what;
	struct service *srv = arg;
	if (srv->shutting_down) {
		event_base_loopbreak(net_base(srv->net));
		return;
	}
	srv->shutting_down = true;
	notify_stopping();
	log_event(LOG_INFO, "shutdown", "signal=%d open_connections=%u", (int)sig, net_open_connections(srv->net));
	/* One bound for the whole stop ([server] shutdown_timeout): clients get it as
	 * their grace period, and deliveries running now get the same deadline, after
	 * which delivery_stop cuts their transactions off (the messages stay queued). */
	delivery_stop_begin(srv->delivery);
	/* Tell idle clients; a commit in progress finishes and gets its reply. */
	if (net_stop_accepting(srv->net))
		return;   /* none open: the loop exits */
	struct timeval grace = { (time_t)srv->conf->shutdown_timeout, 0 };
	srv->shutdown_timer = evtimer_new(net_base(srv->net), shutdown_timer_cb, srv);
	if (srv->shutdown_timer)
		evtimer_add(srv->shutdown_timer, &grace);
}

static void server_cleanup(struct service *srv)
{
	state_feed_stop(srv->state);   /* first: it writes into the tables freed below */
	reload_stop(&srv->reload);
	cluster_stop(&srv->cluster);   /* before delivery goes: the heartbeat reads its counts */
	local_stop(srv);   /* the maildrop pickup first: it waits for the loop's answers */
	control_stop(&srv->control);
	pop3_forget_logins(srv);
	loopq_stop(&srv->commitq, &srv->commit_ev);   /* finishes running commits; their callbacks run here */
	web_service_stop_logins(srv->web);   /* web sign-ins still waiting are told "try again" */
	login_service_free(&srv->logins);   /* answers running checks; their connections go next */
	decider_free(&srv->decider);   /* finishes running decisions; their callbacks run here */
	web_service_free(&srv->web);   /* finishes running web jobs; their answers are sent here */
	imap_service_free(&srv->imap);   /* finishes running IMAP jobs; their sessions are answered here */
	proxy_service_free(&srv->proxy);   /* finishes running hand-overs; their sessions are answered here */
	limits_service_free(&srv->limits);   /* after the commits and decisions: saves the last counts */
	if (srv->net)
		net_close_all(srv->net);
	delivery_stop(&srv->delivery);
	events_close(&srv->events);   /* after every writer of events: the commits, delivery, control */
	if (srv->sig_term)
		event_free(srv->sig_term);
	if (srv->sig_int)
		event_free(srv->sig_int);
	if (srv->shutdown_timer)
		event_free(srv->shutdown_timer);
	state_feed_free(&srv->state);   /* after every teller: the logins, the commits */
	directory_close(&srv->dir);
	web_site_free(&srv->site);
	queue_close(&srv->queue);
	if (srv->auth_ev)
		event_free(srv->auth_ev);
	net_free(&srv->net);   /* the TLS contexts and the event loop */
	local_free(srv);   /* its listener record outlives the connections */
	notify_close();
	explicit_bzero(srv->node_secret, sizeof(srv->node_secret));
}

/* Thousands of connections need thousands of descriptors: raise the soft limit to
 * the hard one (the administrator's ceiling). */
static void raise_fd_limit(const struct conf *cf)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	rlim_t want = (rlim_t)cf->connections + 256;
	if (rl.rlim_cur >= want)
		return;
	rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < want)
		log_event(LOG_WARN, "fd_limit", "limit=%llu connections=%llu hint=\"raise the hard limit (ulimit -Hn) or lower [limits] connections\"",
			(unsigned long long)rl.rlim_cur, (unsigned long long)cf->connections);
}

/* The rooms the running server reads and writes (after dropping root: the files
 * are the unprivileged user's). */
static bool open_rooms(struct service *srv, char *err, size_t errlen)
{
	const struct conf *cf = srv->conf;
	startup_directory(cf);
	if (!queue_open(&srv->queue, cf->data_dir, err, errlen) ||
		!directory_open(&srv->dir, cf->data_dir, err, errlen)) {
		log_event(LOG_ERR, "startup_error", "error=\"%s\"", err);
		return false;
	}
	queue_set_min_free(srv->queue, cf->min_free);
	queue_set_commit_batch_wait(srv->queue, cf->commit_batch_wait * 1000);
	/* Spool files made ahead on a thread: the loop never waits for a file's creation
	 * (docs/operations.md, "Threads, the event loop and memory per connection"). */
	if (!queue_reserve_start(srv->queue, SPOOL_FILES_AHEAD, err, errlen))
		log_event(LOG_WARN, "spool_reserve_error", "error=\"%s\" action=\"spool files are created on the event loop\"", err);
	srv->site->queue = srv->queue;
	struct events_config ec;
	events_config_from(&ec, cf);   /* PostgreSQL's table with that directory backend */
	if (!events_open(&srv->events, cf->data_dir, &ec, err, errlen)) {
		/* The history is not worth refusing mail for: serve without it, and say so. */
		log_event(LOG_ERR, "events_error", "error=\"%s\" action=\"serving without the event store ([events])\"", err);
		srv->events = NULL;
	}
	if (!id_new_run_id(cf->data_dir, srv->run_id, err, errlen)) {
		/* Still distinct from the counter's values, unless two starts share a second. */
		snprintf(srv->run_id, sizeof(srv->run_id), "t%lld", (long long)time(NULL));
		log_event(LOG_WARN, "run_id_error", "error=\"%s\" run=%s", err, srv->run_id);
	}
	char exposed[1400];
	if (directory_data_dir_exposed(cf->data_dir, exposed, sizeof(exposed)))
		log_event(LOG_WARN, "data_dir_exposed", "data_dir=%s warning=\"%s\"", cf->data_dir, exposed);
	long long legacy = directory_legacy_app_password_count(srv->dir);
	if (legacy > 0)
		log_event(LOG_WARN, "legacy_app_passwords", "count=%lld accepted=%s hint=\"app passwords in the old format "
			"(without a selector) cost extra hash checks at login: reissue them (postern app-password list marks them), "
			"then set [auth] legacy_app_passwords = no\"", legacy, cf->auth_legacy_app_passwords ? "yes" : "no");
	return true;
}

/* The commit threads, delivery and the login service (threads, throttle, dummy hash). */
static bool start_workers(struct service *srv)
{
	const struct conf *cf = srv->conf;
	struct event_base *base = net_base(srv->net);
	loopq_start(base, (unsigned)cf->commit_threads, &srv->commitq, &srv->commit_ev);
	srv->delivery = delivery_start(cf, srv->queue, &srv->relay_creds, srv->events);
	if (srv->delivery && srv->node_secret_len)
		delivery_set_node_secret(srv->delivery, srv->node_secret, srv->node_secret_len);
	srv->auth_ev = event_new(base, -1, 0, login_ev_cb, srv);
	srv->state = state_feed_new(cf, cf->cluster_node, srv->run_id);   /* before the logins: they tell it */
	struct login_service_config lc = {
		.dir = srv->dir, .threads = 2, .cache_ttl = (unsigned)cf->auth_cache_ttl,
		.legacy_app_passwords = cf->auth_legacy_app_passwords,
		.throttle = {
			.pair_limit = (unsigned)cf->auth_account_ip_failures, .ip_accounts = (unsigned)cf->auth_ip_accounts,
			.ip_failures = (unsigned)cf->auth_ip_failures, .account_delay_after = 3, .max_delay_ms = 5000,
			.window = (time_t)cf->auth_window, .block = (time_t)cf->auth_block,
			.known_for = (time_t)cf->auth_known_for, .max_entries = 16384,
		},
		.notify = login_notify, .notify_arg = srv->auth_ev,
		.recorded = srv->state ? state_feed_login : NULL, .recorded_arg = srv->state,
	};
	srv->logins = srv->auth_ev ? login_service_new(&lc) : NULL;
	if (!srv->commitq || !srv->delivery || !srv->logins) {
		log_event(LOG_ERR, "startup_error", "error=\"cannot start worker threads\"");
		return false;
	}
	bool http = false;
	for (size_t i = 0; i < cf->n_listeners; i++)
		http = http || cf->listeners[i].role == ROLE_HTTP;
	char err[1024];
	web_service_hooks(srv, srv->site);   /* before the web threads start */
	srv->web = http ? web_service_new(base, cf, srv->site, err, sizeof(err)) : NULL;
	if (http && !srv->web) {
		log_event(LOG_ERR, "startup_error", "error=\"web threads: %s\"", err);
		return false;
	}
	bool imap = false;
	for (size_t i = 0; i < cf->n_listeners; i++)
		imap = imap || cf->listeners[i].role == ROLE_IMAP;
	srv->imap = imap ? imap_service_new(base, cf, err, sizeof(err)) : NULL;
	if (imap && !srv->imap) {
		log_event(LOG_ERR, "startup_error", "error=\"IMAP threads: %s\"", err);
		return false;
	}
	srv->proxy = cf->cluster_node[0] ? proxy_service_new(base, srv, err, sizeof(err)) : NULL;
	if (cf->cluster_node[0] && !srv->proxy) {
		log_event(LOG_ERR, "startup_error", "error=\"proxy threads: %s\"", err);
		return false;
	}
	return true;
}

/* A POP3 login on another node (the state feed's thread). */
static void pop_login_elsewhere(void *ctx, const char *ip, time_t at)
{
	pop3_login_seen(ctx, ip, at);
}

/* The state feed applies the other nodes' rows into the throttle, the limits' counters
 * and the POP3 logins (serve/state_feed.h). */
static void start_state_feed(struct service *srv)
{
	const struct conf *cf = srv->conf;
	if (!srv->state)
		return;
	char path[1100];
	struct stat st;
	snprintf(path, sizeof(path), "%s/limits.state", cf->data_dir);
	struct state_targets t = {
		.throttle = login_service_throttle(srv->logins), .auth_window = (time_t)cf->auth_window,
		.auth_block = (time_t)cf->auth_block, .auth_known_for = (time_t)cf->auth_known_for,
		.counts = limits_service_counts(srv->limits),
		.counts_since = stat(path, &st) == 0 ? (long long)st.st_mtime : 0,
		.pop_login = pop_login_elsewhere, .pop_arg = srv, .pop_window = (time_t)cf->pop_before_smtp,
	};
	state_feed_start(srv->state, &t);
}

/* The steps check-config runs too (serve/startup.c): a setting that stops the start
 * is reported before any port is opened, in the same words.  Then the ports, the
 * TLS keys (before dropping root: keys are often readable by root only), the drop. */
static bool start_privileged(struct service *srv, char *err, size_t errlen)
{
	const struct conf *cf = srv->conf;
	struct startup_identity id;
	if (!startup_relay_credentials(cf, &srv->relay_creds, err, errlen) ||
		!startup_identity(cf, &id, err, errlen) || !startup_data_dir(cf, &id, true, err, errlen) ||
		!cluster_secret_load(cf, srv->node_secret, &srv->node_secret_len, err, errlen)) {
		log_event(LOG_ERR, "startup_error", "error=\"%s\"", err);
		return false;
	}
	/* systemd's sockets (socket activation) and its notification socket, while root */
	if (!net_activation_check(cf, err, errlen)) {
		log_event(LOG_ERR, "startup_error", "error=\"%s\"", err);
		return false;
	}
	if (!notify_open(err, errlen))
		log_event(LOG_WARN, "notify_unavailable", "error=\"%s\" hint=\"systemd will not hear READY=1: use Type=simple, "
			"or fix the socket\"", err);
	srv->site = web_site_new(cf);
	if (!srv->site) {
		log_event(LOG_ERR, "startup_error", "error=\"out of memory\"");
		return false;
	}
	if (!web_site_load_app(srv->site, err, errlen)) {
		log_event(LOG_ERR, "startup_error", "error=\"%s\"", err);
		return false;
	}
	for (size_t i = 0; i < cf->n_listeners; i++)
		if (!bind_listener(srv, &cf->listeners[i]))
			return false;
	if (!local_start_privileged(srv, &id, err, errlen)) {
		log_event(LOG_ERR, "startup_error", "error=\"%s\"", err);
		return false;
	}
	struct tls *tls = NULL;
	if (conf_wants_tls(cf) && !tls_init(&tls, cf, id.uid, id.gid, false, err, errlen)) {
		log_event(LOG_ERR, "startup_error", "error=\"%s\"", err);
		return false;
	}
	net_set_tls(srv->net, tls);
	srv->tls = tls;
	web_site_load_certificate(srv->site);   /* as root: the key may be root's only */
	return drop_privileges(cf, &id);
}

int server_run(const struct conf *cf)
{
	struct service srv_storage, *srv = &srv_storage;
	memset(srv, 0, sizeof(*srv));
	srv->conf = cf;
	log_set_level((enum log_level)cf->log_level);   /* [server] log_level, in enum order */
	signal(SIGPIPE, SIG_IGN);
	raise_fd_limit(cf);
	evthread_use_pthreads();
	srv->net = net_new(cf);
	if (!srv->net) {
		log_event(LOG_ERR, "startup_error", "error=\"cannot create the event loop\"");
		return 1;
	}
	char err[2048];
	if (!start_privileged(srv, err, sizeof(err)) || !open_rooms(srv, err, sizeof(err)) || !start_workers(srv)) {
		server_cleanup(srv);
		return 1;
	}
	struct event_base *base = net_base(srv->net);
	srv->limits = limits_service_new(base, cf, srv->queue, srv->delivery, err, sizeof(err));
	srv->decider = srv->limits ? decider_new(base, cf, pop_login_age, srv, srv->limits, err, sizeof(err)) : NULL;
	if (!srv->decider) {
		log_event(LOG_ERR, "startup_error", "error=\"%s\"", err);
		server_cleanup(srv);
		return 1;
	}
	start_state_feed(srv);
	struct control_node node = { .queue = srv->queue, .started = (long long)time(NULL) };
	snprintf(node.name, sizeof(node.name), "%s", cf->cluster_node);
	srv->control = control_start(base, cf->data_dir, srv->commitq, srv->delivery, srv->logins, &node, err, sizeof(err));
	if (!srv->control)
		log_event(LOG_WARN, "control_error", "error=\"%s\" hint=\"postern queue flush/hold/... will not reach this server\"", err);
	local_pickup_start(srv);
	srv->cluster = cluster_start(srv);
	srv->sig_term = evsignal_new(base, SIGTERM, signal_cb, srv);
	srv->sig_int = evsignal_new(base, SIGINT, signal_cb, srv);
	evsignal_add(srv->sig_term, NULL);
	evsignal_add(srv->sig_int, NULL);
	srv->reload = reload_start(srv);
	notify_ready(srv, base);   /* listening, privileges dropped, every room open */
	log_event(LOG_INFO, "started", "version=%s config=%s hostname=%s data_dir=%s run=%s", POSTERN_VERSION, cf->path,
		cf->hostname, cf->data_dir, srv->run_id);
	event_base_dispatch(base);
	log_event(LOG_INFO, "stopping", "open_connections=%u", net_open_connections(srv->net));
	server_cleanup(srv);
	log_event(LOG_INFO, "stopped", "pid=%d", (int)getpid());
	return 0;
}
