/* reload.c - SIGHUP re-reads the configuration (see reload.h). */
#include "serve/reload.h"

#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "net/server.h"
#include "net/tls.h"
#include "serve/loopq.h"
#include "serve/notify.h"
#include "serve/service.h"
#include "util/log.h"
#include "util/workq.h"

#define RELOAD_ERR_MAX 8192
#define RELOAD_NAMES_MAX 2048

struct reloader {
	struct service *srv;
	struct event *sighup;
	struct workq *q;
	struct event *q_ev;
	bool running;        /* a job is out */
	bool again;          /* SIGHUP while it was: read once more after it */
	bool stopping;
};

struct reload_job {
	struct reloader *r;
	struct conf *conf;   /* the file as read now */
	struct tls *tls;     /* its contexts, when the server has TLS */
	bool ok;
	char err[RELOAD_ERR_MAX];
};

static void start_job(struct reloader *r);

/* On the reload thread: the file, then its TLS contexts (the disk, OpenSSL). */
static void reload_work(void *arg)
{
	struct reload_job *j = arg;
	const struct conf *running = j->r->srv->conf;
	j->conf = malloc(sizeof(*j->conf));
	if (!j->conf) {
		snprintf(j->err, sizeof(j->err), "out of memory");
		return;
	}
	if (strcmp(running->path, "(embedded default)") == 0)
		j->ok = conf_load_string(j->conf, conf_embedded_default, running->path, j->err, sizeof(j->err));
	else
		j->ok = conf_load_file_every_error(j->conf, running->path, j->err, sizeof(j->err));
	if (j->ok && j->r->srv->tls)
		j->ok = tls_init(&j->tls, j->conf, (uid_t)-1, (gid_t)-1, false, j->err, sizeof(j->err));
}

/* Each reason on a line of its own, as check-config says them. */
static void log_refusal(const struct conf *running, const char *err)
{
	unsigned n = 0;
	for (const char *line = err; *line; n++) {
		size_t len = strcspn(line, "\n");
		char q[1200];
		log_event(LOG_ERR, "reload_refused", "config=%s error=%s action=\"kept the running configuration\"",
			running->path, log_quote(q, sizeof(q), line, len, 1000));
		line += len + (line[len] == '\n');
	}
	char status[300], q[200];
	snprintf(status, sizeof(status), "READY=1\nSTATUS=reload refused (%u error%s, kept the running configuration): %s",
		n, n == 1 ? "" : "s", log_quote(q, sizeof(q), err, strcspn(err, "\n"), 150));
	notify_send(status);
}

/* On the loop: apply what is live, name what waits for a restart. */
static void apply(struct reloader *r, struct reload_job *j)
{
	static char live[RELOAD_NAMES_MAX], restart[RELOAD_NAMES_MAX];
	const struct conf *running = r->srv->conf;
	conf_differences(running, j->conf, live, sizeof(live), restart, sizeof(restart));
	log_set_level((enum log_level)j->conf->log_level);
	if (j->tls)
		tls_replace(r->srv->tls, &j->tls);
	static const char *const levels[] = { "debug", "info", "warn", "error" };
	log_event(LOG_INFO, "reload", "config=%s applied=\"%s\" tls=%s log_level=%s live=\"[server] log_level, [tls], "
		"[certificate NAME]\"", running->path, live[0] ? live : "no setting changed",
		r->srv->tls ? "reloaded_from_files" : "none", levels[j->conf->log_level & 3]);
	if (restart[0])
		log_event(LOG_WARN, "reload_needs_restart", "settings=\"%s\" hint=\"these take effect at the next start "
			"(systemctl restart postern); until then the server keeps their old values\"", restart);
	notify_reloaded(r->srv);
}

static void reload_done(void *arg)
{
	struct reload_job *j = arg;
	struct reloader *r = j->r;
	r->running = false;
	if (!r->stopping) {
		if (j->ok)
			apply(r, j);
		else
			log_refusal(r->srv->conf, j->err);
	}
	tls_free(&j->tls);
	free(j->conf);
	free(j);
	if (r->again && !r->stopping) {
		r->again = false;
		start_job(r);
	}
}

static void start_job(struct reloader *r)
{
	struct reload_job *j = calloc(1, sizeof(*j));
	if (!j) {
		log_event(LOG_ERR, "reload_refused", "error=\"out of memory\"");
		return;
	}
	j->r = r;
	r->running = true;
	notify_reloading();
	log_event(LOG_INFO, "reload_begin", "config=%s", r->srv->conf->path);
	workq_push(r->q, reload_work, reload_done, j);
}

static void sighup_cb(evutil_socket_t sig, short what, void *arg)
{
	(void)sig;
	(void)what;
	struct reloader *r = arg;
	if (r->srv->shutting_down)
		return;
	if (r->running)
		r->again = true;   /* the file may have changed again since the job read it */
	else
		start_job(r);
}

struct reloader *reload_start(struct service *srv)
{
	struct event_base *base = net_base(srv->net);
	struct reloader *r = calloc(1, sizeof(*r));
	if (r)
		r->srv = srv;
	if (!r || !loopq_start(base, 1, &r->q, &r->q_ev) || !(r->sighup = evsignal_new(base, SIGHUP, sighup_cb, r)) ||
		evsignal_add(r->sighup, NULL) != 0) {
		log_event(LOG_ERR, "reload_unavailable", "error=\"cannot catch SIGHUP\" hint=\"restart the server to change its configuration\"");
		reload_stop(&r);
		return NULL;
	}
	return r;
}

void reload_stop(struct reloader **rp)
{
	struct reloader *r = *rp;
	if (!r)
		return;
	r->stopping = true;
	if (r->sighup)
		event_free(r->sighup);
	loopq_stop(&r->q, &r->q_ev);   /* a running job finishes; its done callback drops it */
	free(r);
	*rp = NULL;
}
