/* remote.c - delivery by MX or smarthost (see remote.h). */
#include "delivery/remote.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/crypto.h>

#include "conf/conf.h"
#include "delivery/conncache.h"
#include "delivery/dnssec.h"
#include "delivery/mx.h"
#include "delivery/secure.h"
#include "dns/dns.h"
#include "net/client.h"
#include "queue/queue.h"
#include "util/log.h"
#include "util/metrics.h"
#include "wire/enh.h"

struct remote_ctx {
	const struct conf *conf;
	const struct relay_credentials *creds;
	struct dns_resolver *resolver;     /* this delivery thread's own (dns/dns.h) */
	struct conncache *cache;           /* idle connections of every thread (NULL: none kept) */
	struct smtp_client_opts opts;
	const struct net_cancel *cancel;   /* fired at shutdown: aborts the transaction */
	/* told which server a message is going to (for `postern queue list`) */
	void (*on_host)(void *arg, const char *host);
	void *on_host_arg;
	char current_host[400];            /* the server open_host is trying */
	struct sts_context sts;            /* MTA-STS policy lookups (mta_sts.h) */
	struct dane_host dane;             /* the TLSA records of the host being tried */
	enum smtp_open_step step;          /* where the last open_host stopped */
	struct dnssec_gate *dnssec;        /* whether the resolver validates (dnssec.h) */
	unsigned dnssec_generation;        /* of the gate, when the resolver was made */
};

void remote_ctx_on_host(struct remote_ctx *rc, void (*cb)(void *arg, const char *host), void *arg)
{
	rc->on_host = cb;
	rc->on_host_arg = arg;
}

static void tell_host(struct remote_ctx *rc, const char *host)
{
	if (rc->on_host)
		rc->on_host(rc->on_host_arg, host);
}

bool relay_credentials_load(const char *path, struct relay_credentials *rc, char *err, size_t errlen)
{
	memset(rc, 0, sizeof(*rc));
	if (!path || !path[0])
		return true;
	struct stat st;
	FILE *f = fopen(path, "r");
	if (!f || fstat(fileno(f), &st) != 0) {
		snprintf(err, errlen, "[relay] credentials: cannot read %s: %s", path, strerror(errno));
		if (f)
			fclose(f);
		return false;
	}
	if (st.st_mode & 077) {
		snprintf(err, errlen, "[relay] credentials: %s can be read by other users; run: chmod 600 %s", path, path);
		fclose(f);
		return false;
	}
	char line[900];
	bool ok = fgets(line, sizeof(line), f) != NULL;
	fclose(f);
	line[strcspn(line, "\r\n")] = '\0';
	char *sp = ok ? strchr(line, ' ') : NULL;
	if (!sp || sp == line || !sp[1] || (size_t)(sp - line) >= sizeof(rc->user) || strlen(sp + 1) >= sizeof(rc->pass)) {
		snprintf(err, errlen, "[relay] credentials: %s must hold one line \"user password\"", path);
		OPENSSL_cleanse(line, sizeof(line));
		return false;
	}
	*sp = '\0';
	snprintf(rc->user, sizeof(rc->user), "%.300s", line);
	snprintf(rc->pass, sizeof(rc->pass), "%.500s", sp + 1);
	OPENSSL_cleanse(line, sizeof(line));
	rc->set = true;
	return true;
}

struct remote_ctx *remote_ctx_new(const struct conf *c, const struct relay_credentials *creds,
	const struct net_cancel *cancel, struct dnssec_gate *dnssec, char *err, size_t errlen)
{
	struct remote_ctx *rc = calloc(1, sizeof(*rc));
	if (!rc) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	rc->conf = c;
	rc->creds = creds;
	rc->cancel = cancel;
	rc->dnssec = dnssec;
	if (!c->relay_host[0]) {
		const char *anchor = dnssec ? dnssec_gate_anchor(dnssec, &rc->dnssec_generation) : dnssec_configured_anchor(c);
		struct dns_options dopt = { .forwarder = c->resolver, .timeout_ms = DNS_DEFAULT_TIMEOUT_MS,
			.trust_anchor_file = anchor };
		rc->resolver = dns_resolver_new(&dopt, err, errlen);
		if (!rc->resolver) {
			free(rc);
			return NULL;
		}
	}
	rc->sts = (struct sts_context){ .resolver = rc->resolver, .data_dir = c->data_dir,
		.ca_file = c->tls_ca_file[0] ? c->tls_ca_file : NULL, .port = 443,
		.timeout_ms = (unsigned)(c->connect_timeout < 10 ? c->connect_timeout : 10) * 1000u, .cancel = cancel };
	return rc;
}

bool remote_ctx_stale(const struct remote_ctx *rc)
{
	return rc->resolver && rc->dnssec && dnssec_gate_stale(rc->dnssec, rc->dnssec_generation);
}

void remote_idle(struct remote_ctx *rc)
{
	/* Nothing to do: idle connections are the shared cache's, which closes them
	 * when their time passes, whatever the threads do meanwhile. */
	(void)rc;
}

void remote_ctx_set_cache(struct remote_ctx *rc, struct conncache *cache)
{
	rc->cache = cache;
}

void remote_ctx_free(struct remote_ctx **rcp)
{
	struct remote_ctx *rc = *rcp;
	if (!rc)
		return;
	remote_idle(rc);
	dns_resolver_free(&rc->resolver);
	free(rc);
	*rcp = NULL;
}

static void set_all(struct rcpt_result *res, size_t n, enum rcpt_outcome o, const char *enh, const char *why)
{
	for (size_t i = 0; i < n; i++)
		rcpt_result_set(&res[i], o, enh, why);
}

/* --- connections and the cache ------------------------------------------------ */

/* One connection as the cache keeps it (conncache.h). */
struct remote_conn {
	struct smtp_client *cl;
	unsigned uses;                     /* transactions carried */
	bool session_saved;                /* its TLS session went to the cache */
	char host[400];                    /* "mx1.example.org[192.0.2.25]:25", for `queue list` and logs */
	char session_key[CONNCACHE_KEY_MAX];   /* TLS sessions are kept per server */
};

static int rconn_fd(void *p)
{
	return net_client_fd(smtp_client_conn(((struct remote_conn *)p)->cl));
}

static void rconn_close(void *p, bool polite, unsigned ms)
{
	struct remote_conn *k = p;
	if (polite) {
		net_client_set_io_ms(smtp_client_conn(k->cl), ms);
		smtp_client_close(&k->cl);   /* QUIT (RFC 5321 §4.1.1.10) */
	} else {
		smtp_client_drop(&k->cl);
	}
	free(k);
}

static const struct conncache_ops rconn_ops = { .fd = rconn_fd, .close = rconn_close };

#define QUIT_WAIT_MS 2000   /* the reaper's wait for QUIT's reply */
#define TLS_SESSIONS_MAX 256

struct conncache *remote_conncache_new(const struct conf *c, char *err, size_t errlen)
{
	struct conncache_opts o = { .ops = &rconn_ops, .idle_ms = (unsigned)c->connection_cache_time * 1000u,
		.per_destination = (unsigned)c->connection_cache_per_destination,
		.max_total = (unsigned)c->connection_cache_max, .sessions_max = TLS_SESSIONS_MAX, .quit_ms = QUIT_WAIT_MS };
	return conncache_new(&o, err, errlen);
}

/* After a transaction on k: kept for the next message to key, or closed (by the
 * cache's thread, so this one does not wait for a QUIT reply). */
static void finish(struct remote_ctx *rc, const char *key, struct remote_conn *k, bool alive, const char *qid)
{
	struct net_client *conn = smtp_client_conn(k->cl);
	if (alive && rc->cache && !k->session_saved && net_client_is_tls(conn)) {
		conncache_session_put(rc->cache, k->session_key, net_client_tls_session(conn));
		k->session_saved = true;
	}
	k->uses++;
	if (!alive) {
		rconn_close(k, false, 0);   /* broken: nothing to say goodbye on */
		return;
	}
	bool spent = k->uses >= rc->conf->messages_per_connection;
	if (spent)
		log_event(LOG_INFO, "remote_retire", "qid=%s host=%s uses=%u reason=\"messages_per_connection reached\"",
			qid, k->host, k->uses);
	if (!rc->cache)
		rconn_close(k, true, (unsigned)rc->conf->command_timeout * 1000u);
	else if (spent || !smtp_client_reusable(k->cl))
		conncache_discard(rc->cache, k, true);
	else
		conncache_put(rc->cache, key, k);
}

/* Try one server: connected, greeted, TLS and AUTH done, or NULL (err says). */
static struct remote_conn *open_host(struct remote_ctx *rc, const char *addr, unsigned port, const char *name,
	enum smtp_tls_policy tls, bool verify, bool auth, struct net_tls_params *tp, char *err, size_t errlen)
{
	rc->step = SMTP_STEP_NONE;
	const struct conf *c = rc->conf;
	struct remote_conn *k = calloc(1, sizeof(*k));
	if (!k) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (strcmp(name, addr) == 0)
		snprintf(k->host, sizeof(k->host), "%.300s:%u", name, port);
	else
		snprintf(k->host, sizeof(k->host), "%.255s[%.64s]:%u", name, addr, port);
	memcpy(rc->current_host, k->host, sizeof(rc->current_host));
	snprintf(k->session_key, sizeof(k->session_key), "tls|%.255s|%.64s|%u", name, addr, port);
	tell_host(rc, rc->current_host);
	struct net_client_opts no = { .connect_timeout = (unsigned)c->connect_timeout, .io_timeout = (unsigned)c->command_timeout,
		.cancel = rc->cancel };
	struct net_client *conn = net_client_connect(addr, port, &no, err, errlen);
	if (!conn) {
		free(k);
		return NULL;
	}
	metrics_count(METRIC_DELIVERY_CONNECTIONS, "new", 1);
	if (tls != SMTP_TLS_NEVER && rc->cache) {
		struct net_tls_session *sess = conncache_session_get(rc->cache, k->session_key);
		net_client_offer_session(conn, sess);
		net_tls_session_free(&sess);
	}
	if (tls == SMTP_TLS_IMPLICIT && !net_client_tls(conn, name, verify, err, errlen)) {
		net_client_close(&conn);
		free(k);
		return NULL;
	}
	rc->opts = (struct smtp_client_opts){
		.helo = c->hostname, .peer_name = name, .tls = tls, .tls_verify = verify, .tls_params = tp,
		.failed_step = &rc->step,
		.auth_user = auth && rc->creds && rc->creds->set ? rc->creds->user : NULL,
		.auth_pass = auth && rc->creds && rc->creds->set ? rc->creds->pass : NULL,
	};
	bool permanent;
	k->cl = smtp_client_open(conn, &rc->opts, err, errlen, &permanent);
	if (!k->cl) {
		net_client_close(&conn);
		free(k);
		return NULL;
	}
	char tls_desc[300];
	net_client_tls_summary(conn, tls_desc, sizeof(tls_desc));
	log_event(LOG_INFO, "remote_connect", "host=%s address=%s port=%u tls=\"%s\"", name, addr, port, tls_desc);
	return k;
}

/* Append "host: reason" to the list of failures, bounded. */
static void note_failure(char *all, size_t allsz, const char *host, const char *why)
{
	size_t n = strlen(all);
	if (n + 8 < allsz)
		snprintf(all + n, allsz - n, "%s%s: %s", n ? "; " : "", host, why);
}

static bool send_on(struct smtp_client *cl, const struct queue_message *m, const size_t *idx, size_t n,
	struct rcpt_result *res)
{
	struct smtp_client_msg msg = { .env = &m->env, .rcpts = idx, .n = n, .prefix = m->added,
		.prefix_len = m->added_len, .fd = m->fd, .off = m->body_offset, .size = queue_message_size(m) };
	return smtp_client_send(cl, &msg, res);
}

/* An idle connection to this destination from the cache: true when the message
 * was decided on it.  One the peer had closed (it broke before any reply) is
 * closed and the message goes on a fresh connection at once: nothing of it can
 * have been taken, so that is no attempt and no deferral. */
static bool send_kept(struct remote_ctx *rc, const char *key, const struct queue_message *m, const size_t *idx,
	size_t n, struct rcpt_result *res)
{
	struct remote_conn *k = rc->cache ? conncache_take(rc->cache, key) : NULL;
	if (!k)
		return false;
	memcpy(rc->current_host, k->host, sizeof(rc->current_host));
	tell_host(rc, k->host);
	bool alive = send_on(k->cl, m, idx, n, res);
	if (!alive && smtp_client_broke_unanswered(k->cl)) {
		log_event(LOG_INFO, "remote_reuse_failed", "qid=%s host=%s uses=%u action=\"sent on a new connection\" "
			"reason=\"the kept connection was closed by the server\"", m->env.qid, k->host, k->uses);
		rconn_close(k, false, 0);
		memset(res, 0, n * sizeof(*res));
		return false;
	}
	metrics_count(METRIC_DELIVERY_CONNECTIONS, "reused", 1);
	log_event(LOG_INFO, "remote_reuse", "qid=%s host=%s uses=%u tls=%s", m->env.qid, k->host, k->uses + 1,
		net_client_is_tls(smtp_client_conn(k->cl)) ? "yes" : "no");
	finish(rc, key, k, alive, m->env.qid);
	return true;
}

/* The relay refused to relay: it wanted a login Postern did not make. */
static void relay_hint(const struct remote_ctx *rc, struct rcpt_result *res, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (res[i].outcome == OUT_FAIL && strcasestr(res[i].text, "relay") && !(rc->creds && rc->creds->set)) {
			size_t l = strlen(res[i].text);
			snprintf(res[i].text + l, sizeof(res[i].text) - l,
				" (Postern did not log in to the relay: set [relay] credentials) [relay]");
		}
}

static void via_relay(struct remote_ctx *rc, const struct queue_message *m, const size_t *idx, size_t n,
	struct rcpt_result *res)
{
	const struct conf *c = rc->conf;
	enum smtp_tls_policy tls = c->relay_tls == TLS_IMPLICIT ? SMTP_TLS_IMPLICIT
		: c->relay_tls == TLS_STARTTLS ? SMTP_TLS_REQUIRE : SMTP_TLS_NEVER;
	bool login = rc->creds && rc->creds->set;
	char key[CONNCACHE_KEY_MAX], policy[64];
	snprintf(policy, sizeof(policy), "%s,%s", tls == SMTP_TLS_IMPLICIT ? "implicit" : tls == SMTP_TLS_REQUIRE
		? "starttls" : "none", c->relay_tls_verify ? "verify" : "noverify");
	struct conncache_dest dest = { .route = "relay", .host = c->relay_host, .port = (unsigned)c->relay_port,
		.tls = policy, .auth_user = login ? rc->creds->user : NULL, .auth_pass = login ? rc->creds->pass : NULL };
	conncache_key(&dest, key, sizeof(key));
	if (send_kept(rc, key, m, idx, n, res)) {
		relay_hint(rc, res, n);
		return;
	}
	char err[700];
	struct remote_conn *k = open_host(rc, c->relay_host, (unsigned)c->relay_port, c->relay_host, tls,
		c->relay_tls_verify, true, NULL, err, sizeof(err));
	if (!k) {
		char why[1200];
		snprintf(why, sizeof(why), "relay %.200s port %llu: %.700s", c->relay_host, (unsigned long long)c->relay_port, err);
		if (strstr(err, "refused Postern's login") || strstr(err, "no AUTH"))
			snprintf(why + strlen(why), sizeof(why) - strlen(why), " [relay]");
		set_all(res, n, OUT_DEFER, ENH_TEMP_NO_ANSWER, why);
		log_event(LOG_WARN, "relay_failed", "qid=%s relay=%s reason=\"%s\"", m->env.qid, c->relay_host, err);
		return;
	}
	finish(rc, key, k, send_on(k->cl, m, idx, n, res), m->env.qid);
	relay_hint(rc, res, n);
}

/* What is known of the failures so far, for the deferral's words: the first that
 * broke a security regime (DANE, MTA-STS) leads, since it is what must change. */
struct mx_failures {
	char all[1200];
	char secure[600];
	char secure_enh[8];
	unsigned count;
};

static void note_secure(struct mx_failures *f, const char *label, const char *words, const char *enh)
{
	if (!f->secure[0]) {
		snprintf(f->secure, sizeof(f->secure), "%s", words);
		snprintf(f->secure_enh, sizeof(f->secure_enh), "%s", enh);
	}
	note_failure(f->all, sizeof(f->all), label, words);
	f->count++;
}

/* Each address of one host under its plan: true when the message went (or was
 * decided) there. */
static bool try_host(struct remote_ctx *rc, const struct queue_message *m, const char *key, const struct mx_host *h,
	struct host_plan *plan, const size_t *idx, size_t n, struct rcpt_result *res, struct mx_failures *f)
{
	char err[700];
	for (size_t a = 0; a < h->n_addrs; a++) {
		char label[400];
		snprintf(label, sizeof(label), "%.255s[%.63s]", h->name, h->addrs[a]);
		bool plain = plan->sec == HOST_SEC_OPPORTUNISTIC;
		struct remote_conn *k = open_host(rc, h->addrs[a], (unsigned)rc->conf->remote_port, h->name, plan->tls,
			false, false, plain ? NULL : &plan->tp, err, sizeof(err));
		if (!k) {
			char words[600], enh[8];
			if (secure_failure(plan, rc->step, err, words, sizeof(words), enh, sizeof(enh)))
				note_secure(f, label, words, enh);
			else {
				note_failure(f->all, sizeof(f->all), label, err);
				f->count++;
			}
			log_event(LOG_INFO, "remote_try_next", "qid=%s host=%s reason=\"%s\"", m->env.qid, label, err);
			continue;
		}
		secure_opened(plan, smtp_client_conn(k->cl));
		finish(rc, key, k, send_on(k->cl, m, idx, n, res), m->env.qid);
		return true;
	}
	return false;
}

void remote_deliver(struct remote_ctx *rc, const struct queue_message *m, const char *domain,
	const size_t *idx, size_t n, struct rcpt_result *res)
{
	memset(res, 0, n * sizeof(*res));
	if (rc->conf->relay_host[0]) {
		via_relay(rc, m, idx, n, res);
		return;
	}
	/* By next-hop domain: the TLS requirements (DANE, MTA-STS) are the domain's,
	 * and its connections were opened under them. */
	char key[CONNCACHE_KEY_MAX], policy[64];
	snprintf(policy, sizeof(policy), "dane=%d,sts=%d", rc->conf->dane, rc->conf->mta_sts);
	struct conncache_dest dest = { .route = "mx", .host = domain, .port = (unsigned)rc->conf->remote_port,
		.tls = policy };
	conncache_key(&dest, key, sizeof(key));
	if (send_kept(rc, key, m, idx, n, res))
		return;
	struct mx_host hosts[MX_MAX_HOSTS];
	size_t nh = 0;
	bool mx_secure = false;
	char err[700];
	switch (mx_lookup(rc->resolver, domain, hosts, &nh, &mx_secure, err, sizeof(err))) {
	case MX_NULL:
		set_all(res, n, OUT_FAIL, ENH_PERM_NULL_MX, err);
		return;
	case MX_NO_DOMAIN:
		set_all(res, n, OUT_FAIL, ENH_PERM_BAD_SYSTEM, err);
		return;
	case MX_TEMP:
		set_all(res, n, OUT_DEFER, ENH_TEMP_DIRECTORY_SERVER, err);
		return;
	case MX_OK:
		break;
	}
	struct sts_found sts = { .have = false };
	if (rc->conf->mta_sts)
		secure_sts_lookup(&rc->sts, m->env.qid, domain, &sts);
	struct mx_failures f = { "", "", "", 0 };
	for (size_t h = 0; h < nh; h++) {
		struct host_plan plan;
		if (!secure_plan(rc->conf, rc->resolver, m->env.qid, domain, &hosts[h], mx_secure, &sts, &rc->dane, &plan)) {
			note_secure(&f, hosts[h].name, plan.skip, plan.skip_enh);
			continue;
		}
		if (try_host(rc, m, key, &hosts[h], &plan, idx, n, res, &f))
			return;
	}
	char why[1400];
	if (f.secure[0]) {
		/* Which regime, which host, what it did: the rest of the list follows. */
		snprintf(why, sizeof(why), "%s", f.secure);
		if (f.count > 1 && strlen(why) + 40 < RCPT_REASON_MAX)
			snprintf(why + strlen(why), sizeof(why) - strlen(why), " (all servers of %s: %s)", domain, f.all);
		set_all(res, n, OUT_DEFER, f.secure_enh, why);
		return;
	}
	snprintf(why, sizeof(why), "no mail server for %s could be reached: %s", domain, f.all);
	set_all(res, n, OUT_DEFER, ENH_TEMP_NO_ANSWER, why);
}
