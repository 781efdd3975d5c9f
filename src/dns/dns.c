/* dns.c - the resolver (see dns.h): one libunbound context per resolver, every query
 * asynchronous underneath (ub_resolve_async on unbound's own thread), so that both the
 * blocking form and the event-loop form have a real deadline: unbound itself has no
 * per-query time limit, and a server that never answers would hold ub_resolve. */
#include "dns/dns.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unbound.h>

#include "util/metrics.h"

#define CLASS_IN 1

struct dns_query {
	struct dns_resolver *r;
	struct dns_query *prev, *next;
	enum dns_type type;
	int async_id;
	uint64_t deadline;          /* monotonic milliseconds */
	double started;             /* metrics_now(): the lookup's duration */
	dns_callback *cb;
	void *arg;
	/* Cancelled or timed out while unbound was already handing the answer over
	 * (ub_cancel failed): the struct waits for that callback, which drops it. */
	bool orphan;
};

struct dns_resolver {
	struct ub_ctx *ctx;
	unsigned timeout_ms;
	struct dns_query *queries;   /* every query unbound may still call back for */
	size_t pending;              /* of which not orphans */
};

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* --- the context ----------------------------------------------------------------- */

static int configure(struct ub_ctx *ctx, const struct dns_options *o)
{
	/* Queries run on a thread of unbound's, not in a forked process (the default). */
	int e = ub_ctx_async(ctx, 1);
	/* Before any zone is added: that finalises the configuration. */
	if (e == 0 && o->trust_anchor_file && o->trust_anchor_file[0])
		e = ub_ctx_add_ta_file(ctx, o->trust_anchor_file);
	if (e == 0 && o->forwarder && o->forwarder[0]) {
		/* A resolver named in the configuration (often on loopback in tests) is
		 * asked for everything: unbound would otherwise refuse to query localhost
		 * and answer RFC 6761 names (test., invalid., ...) itself with NXDOMAIN.
		 * Options first: adding a zone finalises the configuration. */
		ub_ctx_set_option(ctx, "do-not-query-localhost:", "no");
		/* The same for the reverse zones unbound answers itself (RFC 6303: private
		 * and documentation networks), which SPF's ptr and %{p} ask (RFC 7208 §5.5). */
		ub_ctx_set_option(ctx, "unblock-lan-zones:", "yes");
		ub_ctx_set_option(ctx, "insecure-lan-zones:", "yes");
		e = ub_ctx_set_fwd(ctx, o->forwarder);
		static const char *const special[] = { "test.", "invalid.", "example.", "local.", "home.arpa.",
			"127.in-addr.arpa.", "2.0.192.in-addr.arpa.", "100.51.198.in-addr.arpa.", "113.0.203.in-addr.arpa.",
			"8.b.d.0.1.0.0.2.ip6.arpa." };
		for (size_t i = 0; e == 0 && i < sizeof(special) / sizeof(special[0]); i++)
			ub_ctx_zone_add(ctx, special[i], "transparent");
	} else if (e == 0)
		(void)ub_ctx_resolvconf(ctx, NULL);   /* no resolv.conf: recurse from the root */
	return e;
}

struct dns_resolver *dns_resolver_new(const struct dns_options *o, char *err, size_t errlen)
{
	struct dns_resolver *r = calloc(1, sizeof(*r));
	if (!r || !(r->ctx = ub_ctx_create())) {
		snprintf(err, errlen, "cannot create a DNS resolver");
		free(r);
		return NULL;
	}
	r->timeout_ms = o->timeout_ms ? o->timeout_ms : DNS_DEFAULT_TIMEOUT_MS;
	int e = configure(r->ctx, o);
	if (e != 0) {
		snprintf(err, errlen, "DNS resolver %s: %s", o->forwarder && o->forwarder[0] ? o->forwarder : "(system)",
			ub_strerror(e));
		ub_ctx_delete(r->ctx);
		free(r);
		return NULL;
	}
	return r;
}

void dns_resolver_free(struct dns_resolver **rp)
{
	struct dns_resolver *r = *rp;
	if (!r)
		return;
	/* Outstanding queries are killed without their callbacks. */
	ub_ctx_delete(r->ctx);
	while (r->queries) {
		struct dns_query *q = r->queries;
		r->queries = q->next;
		free(q);
	}
	free(r);
	*rp = NULL;
}

/* --- results --------------------------------------------------------------------- */

const char *dns_rcode_name(enum dns_rcode rc)
{
	switch (rc) {
	case DNS_NOERROR: return "NOERROR";
	case DNS_NXDOMAIN: return "NXDOMAIN";
	case DNS_SERVFAIL: return "SERVFAIL";
	case DNS_REFUSED: return "REFUSED";
	case DNS_RCODE_OTHER: return "error";
	case DNS_TIMEOUT: return "timeout";
	case DNS_RESOLVER_ERROR: return "resolver error";
	}
	return "error";
}

const char *dns_type_name(enum dns_type t)
{
	switch (t) {
	case DNS_A: return "A";
	case DNS_PTR: return "PTR";
	case DNS_MX: return "MX";
	case DNS_TXT: return "TXT";
	case DNS_AAAA: return "AAAA";
	case DNS_TLSA: return "TLSA";
	case DNS_CNAME: return "CNAME";
	case DNS_SRV: return "SRV";
	case DNS_DNSKEY: return "DNSKEY";
	}
	return "?";
}

/* RFC 1035 §4.1.1 RCODE values. */
static enum dns_rcode rcode_from_wire(int rc)
{
	switch (rc) {
	case 0: return DNS_NOERROR;
	case 2: return DNS_SERVFAIL;
	case 3: return DNS_NXDOMAIN;
	case 5: return DNS_REFUSED;
	}
	return DNS_RCODE_OTHER;
}

static void parse_records(struct dns_result *res, const struct ub_result *ub)
{
	size_t count = 0;
	while (ub->data && ub->data[count])
		count++;
	if (count == 0 || !(res->rr = calloc(count, sizeof(*res->rr)))) {
		res->malformed = count;
		return;
	}
	for (size_t i = 0; i < count; i++) {
		if (ub->len[i] >= 0 && dns_parse_rr(res->type, (const unsigned char *)ub->data[i], (size_t)ub->len[i],
				&res->rr[res->n]))
			res->n++;
		else
			res->malformed++;
	}
}

void dns_result_from_unbound(struct dns_result *res, enum dns_type type, int err, const struct ub_result *ub)
{
	memset(res, 0, sizeof(*res));
	res->type = type;
	if (err != 0 || !ub) {
		res->rcode = DNS_RESOLVER_ERROR;
		snprintf(res->error, sizeof(res->error), "%s", err ? ub_strerror(err) : "no result");
		return;
	}
	res->wire_rcode = ub->rcode;
	res->rcode = rcode_from_wire(ub->rcode);
	/* libunbound: never both; neither when the zone is not signed (or no anchor). */
	res->security = ub->bogus ? DNS_BOGUS : ub->secure ? DNS_SECURE : DNS_INSECURE;
	if (ub->bogus)
		snprintf(res->why_bogus, sizeof(res->why_bogus), "%s", ub->why_bogus ? ub->why_bogus : "validation failed");
	res->ttl = ub->ttl > 0 ? (uint32_t)ub->ttl : 0;
	if (res->rcode == DNS_NOERROR && ub->havedata)
		parse_records(res, ub);
}

void dns_result_free(struct dns_result *res)
{
	if (!res)
		return;
	for (size_t i = 0; i < res->n; i++)
		dns_rr_clear(res->type, &res->rr[i]);
	free(res->rr);
	res->rr = NULL;
	res->n = 0;
}

/* --- asynchronous queries ---------------------------------------------------------- */

static void unlink_query(struct dns_query *q)
{
	struct dns_resolver *r = q->r;
	if (q->prev)
		q->prev->next = q->next;
	else
		r->queries = q->next;
	if (q->next)
		q->next->prev = q->prev;
	if (!q->orphan)
		r->pending--;
}

/* Stop unbound's work on q; frees q unless unbound will still call back for it. */
static void abandon(struct dns_query *q)
{
	struct dns_resolver *r = q->r;
	if (ub_cancel(r->ctx, q->async_id) == 0) {
		unlink_query(q);
		free(q);
	} else if (!q->orphan) {
		q->orphan = true;
		r->pending--;
	}
}

static void on_answer(void *arg, int err, struct ub_result *ub)
{
	struct dns_query *q = arg;
	bool deliver = !q->orphan;
	unlink_query(q);
	struct dns_result res;
	if (deliver) {
		dns_result_from_unbound(&res, q->type, err, ub);
		metrics_observe(METRIC_DNS_DURATION, dns_type_name(q->type), metrics_now() - q->started);
	}
	if (ub)
		ub_resolve_free(ub);
	dns_callback *cb = q->cb;
	void *cb_arg = q->arg;
	free(q);
	if (deliver)
		cb(cb_arg, &res);
}

/* timeout_ms: 0 or above the resolver's own: the resolver's. */
static struct dns_query *query_start(struct dns_resolver *r, enum dns_type type, const char *name, unsigned timeout_ms,
	dns_callback *cb, void *arg, char *err, size_t errlen)
{
	struct dns_query *q = calloc(1, sizeof(*q));
	if (!q) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	q->r = r;
	q->type = type;
	q->cb = cb;
	q->arg = arg;
	q->started = metrics_now();
	q->deadline = now_ms() + (timeout_ms && timeout_ms < r->timeout_ms ? timeout_ms : r->timeout_ms);
	int e = ub_resolve_async(r->ctx, name, (int)type, CLASS_IN, q, on_answer, &q->async_id);
	if (e != 0) {
		snprintf(err, errlen, "%s", ub_strerror(e));
		free(q);
		return NULL;
	}
	q->next = r->queries;
	if (q->next)
		q->next->prev = q;
	r->queries = q;
	r->pending++;
	return q;
}

struct dns_query *dns_query_start(struct dns_resolver *r, enum dns_type type, const char *name,
	dns_callback *cb, void *arg, char *err, size_t errlen)
{
	return query_start(r, type, name, 0, cb, arg, err, errlen);
}

void dns_query_cancel(struct dns_resolver *r, struct dns_query **qp)
{
	(void)r;
	if (*qp && !(*qp)->orphan)
		abandon(*qp);
	*qp = NULL;
}

int dns_resolver_fd(struct dns_resolver *r)
{
	return ub_fd(r->ctx);
}

void dns_resolver_process(struct dns_resolver *r)
{
	(void)ub_process(r->ctx);
}

int dns_resolver_next_timeout(const struct dns_resolver *r)
{
	uint64_t now = now_ms(), first = UINT64_MAX;
	for (const struct dns_query *q = r->queries; q; q = q->next)
		if (!q->orphan && q->deadline < first)
			first = q->deadline;
	if (first == UINT64_MAX)
		return -1;
	return first <= now ? 0 : first - now > 86400000u ? 86400000 : (int)(first - now);
}

/* One expired query at a time: its callback may start or cancel others. */
static struct dns_query *first_expired(struct dns_resolver *r, uint64_t now)
{
	for (struct dns_query *q = r->queries; q; q = q->next)
		if (!q->orphan && q->deadline <= now)
			return q;
	return NULL;
}

void dns_resolver_expire(struct dns_resolver *r)
{
	uint64_t now = now_ms();
	struct dns_query *q;
	while ((q = first_expired(r, now))) {
		struct dns_result res;
		memset(&res, 0, sizeof(res));
		res.type = q->type;
		res.rcode = DNS_TIMEOUT;
		snprintf(res.error, sizeof(res.error), "no answer within %u s", (r->timeout_ms + 999) / 1000);
		metrics_observe(METRIC_DNS_DURATION, dns_type_name(q->type), metrics_now() - q->started);
		dns_callback *cb = q->cb;
		void *cb_arg = q->arg;
		abandon(q);
		cb(cb_arg, &res);
	}
}

size_t dns_resolver_pending(const struct dns_resolver *r)
{
	return r->pending;
}

/* --- the blocking form --------------------------------------------------------------- */

struct blocking_wait {
	bool done;
	struct dns_result *res;
};

static void blocking_done(void *arg, struct dns_result *res)
{
	struct blocking_wait *w = arg;
	*w->res = *res;   /* the records move to the caller's result */
	w->done = true;
}

struct dns_result *dns_lookup(struct dns_resolver *r, enum dns_type type, const char *name, struct dns_result *res)
{
	return dns_lookup_within(r, type, name, 0, res);
}

struct dns_result *dns_lookup_within(struct dns_resolver *r, enum dns_type type, const char *name, unsigned timeout_ms,
	struct dns_result *res)
{
	memset(res, 0, sizeof(*res));
	res->type = type;
	struct blocking_wait w = { .done = false, .res = res };
	struct dns_query *q = query_start(r, type, name, timeout_ms, blocking_done, &w, res->error, sizeof(res->error));
	if (!q) {
		res->rcode = DNS_RESOLVER_ERROR;
		return res;
	}
	while (!w.done) {
		struct pollfd p = { .fd = dns_resolver_fd(r), .events = POLLIN };
		int n = poll(&p, 1, dns_resolver_next_timeout(r));
		if (n < 0 && errno != EINTR) {
			snprintf(res->error, sizeof(res->error), "poll: %s", strerror(errno));
			break;
		}
		if (n > 0)
			dns_resolver_process(r);
		dns_resolver_expire(r);
	}
	if (!w.done) {
		dns_query_cancel(r, &q);   /* its callback would write into this frame */
		res->rcode = DNS_RESOLVER_ERROR;
	}
	return res;
}
