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
#include "delivery/dnssec.h"
#include "delivery/mx.h"
#include "delivery/secure.h"
#include "dns/dns.h"
#include "net/client.h"
#include "queue/queue.h"
#include "util/log.h"
#include "wire/enh.h"

struct remote_ctx {
	const struct conf *conf;
	const struct relay_credentials *creds;
	struct dns_resolver *resolver;     /* this delivery thread's own (dns/dns.h) */
	/* a connection kept for the next message to the same destination */
	struct smtp_client *cached;
	char cached_key[300];
	unsigned cached_count;
	struct smtp_client_opts opts;
	const struct net_cancel *cancel;   /* fired at shutdown: aborts the transaction */
	/* told which server a message is going to (for `postern queue list`) */
	void (*on_host)(void *arg, const char *host);
	void *on_host_arg;
	char current_host[400];            /* the server open_host is trying */
	char cached_host[400];             /* the server of the kept connection */
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
	smtp_client_close(&rc->cached);
	rc->cached_key[0] = '\0';
	rc->cached_count = 0;
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

/* Try one server; the opened client is returned (and cached by the caller). */
static struct smtp_client *open_host(struct remote_ctx *rc, const char *addr, unsigned port, const char *name,
	enum smtp_tls_policy tls, bool verify, bool auth, struct net_tls_params *tp, char *err, size_t errlen)
{
	rc->step = SMTP_STEP_NONE;
	const struct conf *c = rc->conf;
	if (strcmp(name, addr) == 0)
		snprintf(rc->current_host, sizeof(rc->current_host), "%.300s:%u", name, port);
	else
		snprintf(rc->current_host, sizeof(rc->current_host), "%.255s[%.64s]:%u", name, addr, port);
	tell_host(rc, rc->current_host);
	struct net_client_opts no = { .connect_timeout = (unsigned)c->connect_timeout, .io_timeout = (unsigned)c->command_timeout,
		.cancel = rc->cancel };
	struct net_client *conn = net_client_connect(addr, port, &no, err, errlen);
	if (!conn)
		return NULL;
	if (tls == SMTP_TLS_IMPLICIT && !net_client_tls(conn, name, verify, err, errlen)) {
		net_client_close(&conn);
		return NULL;
	}
	rc->opts = (struct smtp_client_opts){
		.helo = c->hostname, .peer_name = name, .tls = tls, .tls_verify = verify, .tls_params = tp,
		.failed_step = &rc->step,
		.auth_user = auth && rc->creds && rc->creds->set ? rc->creds->user : NULL,
		.auth_pass = auth && rc->creds && rc->creds->set ? rc->creds->pass : NULL,
	};
	bool permanent;
	struct smtp_client *cl = smtp_client_open(conn, &rc->opts, err, errlen, &permanent);
	if (!cl) {
		net_client_close(&conn);
		return NULL;
	}
	char tls_desc[300];
	net_client_tls_summary(conn, tls_desc, sizeof(tls_desc));
	log_event(LOG_INFO, "remote_connect", "host=%s address=%s port=%u tls=\"%s\"", name, addr, port, tls_desc);
	return cl;
}

/* Append "host: reason" to the list of failures, bounded. */
static void note_failure(char *all, size_t allsz, const char *host, const char *why)
{
	size_t n = strlen(all);
	if (n + 8 < allsz)
		snprintf(all + n, allsz - n, "%s%s: %s", n ? "; " : "", host, why);
}

static bool send_on(struct remote_ctx *rc, struct smtp_client *cl, const struct queue_message *m, const size_t *idx,
	size_t n, struct rcpt_result *res)
{
	struct smtp_client_msg msg = { .env = &m->env, .rcpts = idx, .n = n, .prefix = m->added,
		.prefix_len = m->added_len, .fd = m->fd, .off = m->body_offset, .size = queue_message_size(m) };
	bool alive = smtp_client_send(cl, &msg, res);
	(void)rc;
	return alive;
}

/* A connection to this destination from an earlier message, if still good. */
static bool try_cached(struct remote_ctx *rc, const char *key, const struct queue_message *m, const size_t *idx,
	size_t n, struct rcpt_result *res)
{
	if (!rc->cached || strcmp(rc->cached_key, key) != 0 || rc->cached_count >= rc->conf->messages_per_connection) {
		remote_idle(rc);
		return false;
	}
	tell_host(rc, rc->cached_host);
	if (!send_on(rc, rc->cached, m, idx, n, res)) {
		remote_idle(rc);
		/* The reused connection died: retry this message on a fresh one. */
		return false;
	}
	rc->cached_count++;
	return true;
}

static void keep(struct remote_ctx *rc, struct smtp_client *cl, const char *key)
{
	remote_idle(rc);
	rc->cached = cl;
	snprintf(rc->cached_key, sizeof(rc->cached_key), "%s", key);
	memcpy(rc->cached_host, rc->current_host, sizeof(rc->cached_host));
	rc->cached_count = 1;
}

static void via_relay(struct remote_ctx *rc, const struct queue_message *m, const size_t *idx, size_t n,
	struct rcpt_result *res)
{
	const struct conf *c = rc->conf;
	char key[300];
	snprintf(key, sizeof(key), "relay:%s", c->relay_host);
	if (try_cached(rc, key, m, idx, n, res))
		return;
	enum smtp_tls_policy tls = c->relay_tls == TLS_IMPLICIT ? SMTP_TLS_IMPLICIT
		: c->relay_tls == TLS_STARTTLS ? SMTP_TLS_REQUIRE : SMTP_TLS_NEVER;
	char err[700];
	struct smtp_client *cl = open_host(rc, c->relay_host, (unsigned)c->relay_port, c->relay_host, tls,
		c->relay_tls_verify, true, NULL, err, sizeof(err));
	if (!cl) {
		char why[1200];
		snprintf(why, sizeof(why), "relay %.200s port %llu: %.700s", c->relay_host, (unsigned long long)c->relay_port, err);
		if (strstr(err, "refused Postern's login") || strstr(err, "no AUTH"))
			snprintf(why + strlen(why), sizeof(why) - strlen(why), " [relay]");
		set_all(res, n, OUT_DEFER, ENH_TEMP_NO_ANSWER, why);
		log_event(LOG_WARN, "relay_failed", "qid=%s relay=%s reason=\"%s\"", m->env.qid, c->relay_host, err);
		return;
	}
	if (send_on(rc, cl, m, idx, n, res))
		keep(rc, cl, key);
	else
		smtp_client_close(&cl);
	/* The relay refused to relay: it wanted a login Postern did not make. */
	for (size_t i = 0; i < n; i++)
		if (res[i].outcome == OUT_FAIL && strcasestr(res[i].text, "relay") && !(rc->creds && rc->creds->set)) {
			size_t l = strlen(res[i].text);
			snprintf(res[i].text + l, sizeof(res[i].text) - l,
				" (Postern did not log in to the relay: set [relay] credentials) [relay]");
		}
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
		struct smtp_client *cl = open_host(rc, h->addrs[a], (unsigned)rc->conf->remote_port, h->name, plan->tls,
			false, false, plain ? NULL : &plan->tp, err, sizeof(err));
		if (!cl) {
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
		secure_opened(plan, smtp_client_conn(cl));
		if (send_on(rc, cl, m, idx, n, res))
			keep(rc, cl, key);
		else
			smtp_client_close(&cl);
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
	char key[300];
	snprintf(key, sizeof(key), "mx:%s", domain);
	if (try_cached(rc, key, m, idx, n, res))
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
