/* sts_fetch.c - finding the MTA-STS policy of a domain (see mta_sts.h): the TXT
 * record, the HTTPS fetch (RFC 8461 §3.3: certificate checked for mta-sts.DOMAIN,
 * no redirects, bounded in size and time) and the cache in <data_dir>/mta-sts/
 * (§5.1: a policy is kept for max_age and fetched again when the record's id
 * changes). */
#include "delivery/mta_sts.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dns/dns.h"
#include "net/client.h"
#include "util/fileio.h"

#define RESPONSE_MAX (STS_POLICY_MAX + 8192)   /* the policy and its headers */
#define CACHE_MAGIC "postern-mta-sts 1"

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* The cache file of a domain; false for a name that is no safe file name. */
static bool cache_path(const struct sts_context *cx, const char *domain, char *out, size_t outsz)
{
	size_t n = strlen(domain);
	if (!cx->data_dir || !cx->data_dir[0] || n == 0 || n > 253 || domain[0] == '.')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)domain[i]) && domain[i] != '-' && domain[i] != '.' && domain[i] != '_')
			return false;
	int w = snprintf(out, outsz, "%s/mta-sts/%s", cx->data_dir, domain);
	for (char *p = out + strlen(cx->data_dir) + 9; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return w > 0 && (size_t)w < outsz;
}

struct cached {
	char id[STS_ID_MAX];
	time_t fetched;
	struct sts_policy policy;
};

static bool cache_read(const struct sts_context *cx, const char *domain, struct cached *c)
{
	char path[1200], err[200];
	if (!cache_path(cx, domain, path, sizeof(path)))
		return false;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	char *buf = malloc(STS_POLICY_MAX + 256);
	ssize_t n = buf ? read(fd, buf, STS_POLICY_MAX + 255) : -1;
	close(fd);
	bool ok = false;
	if (n > 0) {
		buf[n] = '\0';
		char *nl = memchr(buf, '\n', (size_t)n);
		long long fetched = 0;
		char id[STS_ID_MAX + 1];
		if (nl && sscanf(buf, CACHE_MAGIC " id=%32s fetched=%lld", id, &fetched) == 2) {
			snprintf(c->id, sizeof(c->id), "%.32s", id);
			c->fetched = (time_t)fetched;
			ok = sts_parse_policy(nl + 1, (size_t)(buf + n - (nl + 1)), &c->policy, err, sizeof(err));
		}
	}
	free(buf);
	return ok;
}

/* Written to a temporary name and renamed: readers see an old file or a new one. */
static void cache_write(const struct sts_context *cx, const char *domain, const char *id, time_t now,
	const char *text, size_t len)
{
	char path[1200], dir[1100], tmp[1300];
	if (!cache_path(cx, domain, path, sizeof(path)))
		return;
	snprintf(dir, sizeof(dir), "%s/mta-sts", cx->data_dir);
	if (!fileio_mkdir_p(dir, 0700))
		return;
	unsigned rnd = 0;
	if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != sizeof(rnd))
		rnd = (unsigned)getpid();
	snprintf(tmp, sizeof(tmp), "%s.%08x.tmp", path, rnd);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	char head[128];
	int hn = snprintf(head, sizeof(head), CACHE_MAGIC " id=%s fetched=%lld\n", id, (long long)now);
	bool ok = fileio_write_all(fd, head, (size_t)hn) && fileio_write_all(fd, text, len);
	ok = close(fd) == 0 && ok;
	if (!ok || rename(tmp, path) != 0)
		unlink(tmp);
}

/* §3.1: one STSv1 record at _mta-sts.DOMAIN.  1 found (id), 0 none, -1 the DNS
 * did not answer (err says). */
static int txt_id(const struct sts_context *cx, const char *domain, char *id, size_t idsz, char *err, size_t errlen)
{
	char name[DNS_NAME_MAX + 16];
	snprintf(name, sizeof(name), "_mta-sts.%.250s", domain);
	struct dns_result res;
	dns_lookup(cx->resolver, DNS_TXT, name, &res);
	int rc = 0;
	if (res.rcode == DNS_NOERROR || res.rcode == DNS_NXDOMAIN) {
		size_t valid = 0;
		char one[STS_ID_MAX], why[200] = "";
		for (size_t i = 0; i < res.n; i++)
			if (sts_parse_txt(res.rr[i].u.txt.text, res.rr[i].u.txt.len, one, sizeof(one), why, sizeof(why))
				&& valid++ == 0)
				snprintf(id, idsz, "%s", one);
		/* §3.1: more than one STSv1 record is as good as none. */
		rc = valid == 1;
		if (valid > 1)
			snprintf(err, errlen, "%s has %zu MTA-STS records (one is allowed)", name, valid);
		else if (valid == 0 && res.n > 0 && why[0] && strstr(why, "not an MTA-STS record") == NULL)
			snprintf(err, errlen, "%s: %s", name, why);
	} else {
		snprintf(err, errlen, "DNS lookup of %.200s failed (%.150s)", name, res.error[0] ? res.error : dns_rcode_name(res.rcode));
		rc = -1;
	}
	dns_result_free(&res);
	return rc;
}

/* GET the policy from one address; the response in resp (at most RESPONSE_MAX). */
static bool get_from(const struct sts_context *cx, const char *addr, const char *host, char *resp, size_t *rlen,
	uint64_t deadline, char *err, size_t errlen)
{
	struct net_client_opts no = { .connect_ms = cx->timeout_ms, .io_ms = cx->timeout_ms, .cancel = cx->cancel };
	struct net_client *c = net_client_connect(addr, cx->port, &no, err, errlen);
	if (!c)
		return false;
	struct net_tls_params tp = { .name = host, .require_verified = true, .ca_file = cx->ca_file };
	char req[600];
	/* HTTP/1.0: one response, ended by the close, never chunked. */
	int rn = snprintf(req, sizeof(req), "GET /.well-known/mta-sts.txt HTTP/1.0\r\nHost: %s\r\n"
		"User-Agent: Postern\r\nAccept: text/plain\r\nConnection: close\r\n\r\n", host);
	bool ok = net_client_tls_with(c, &tp, err, errlen) && net_client_write(c, req, (size_t)rn, err, errlen);
	*rlen = 0;
	while (ok) {
		if (mono_ms() > deadline) {
			snprintf(err, errlen, "the policy fetch took longer than %u s", cx->timeout_ms * 2 / 1000);
			ok = false;
			break;
		}
		if (*rlen >= RESPONSE_MAX) {
			snprintf(err, errlen, "the policy is larger than %u KiB", STS_POLICY_MAX >> 10);
			ok = false;
			break;
		}
		long n = net_client_read(c, resp + *rlen, RESPONSE_MAX - *rlen, err, errlen);
		if (n < 0)
			ok = false;
		else if (n == 0)
			break;
		else
			*rlen += (size_t)n;
	}
	net_client_close(&c);
	return ok;
}

/* §3.3: https://mta-sts.DOMAIN/.well-known/mta-sts.txt, each address in turn.
 * The policy text goes to text (malloc'd). */
static bool fetch(const struct sts_context *cx, const char *domain, char **text, size_t *len, char *err, size_t errlen)
{
	char host[DNS_NAME_MAX + 16];
	snprintf(host, sizeof(host), "mta-sts.%.250s", domain);
	char addrs[8][48];
	size_t na = 0;
	static const enum dns_type types[] = { DNS_AAAA, DNS_A };
	for (size_t t = 0; t < 2; t++) {
		struct dns_result res;
		dns_lookup(cx->resolver, types[t], host, &res);
		for (size_t i = 0; i < res.n && na < 8; i++)
			snprintf(addrs[na++], sizeof(addrs[0]), "%s", res.rr[i].u.addr.text);
		dns_result_free(&res);
	}
	if (na == 0) {
		snprintf(err, errlen, "%s has no address", host);
		return false;
	}
	char *resp = malloc(RESPONSE_MAX + 1);
	if (!resp) {
		snprintf(err, errlen, "out of memory");
		return false;
	}
	uint64_t deadline = mono_ms() + 2ull * cx->timeout_ms;
	bool ok = false;
	for (size_t a = 0; a < na && !ok; a++) {
		size_t rlen = 0;
		const char *body;
		size_t blen;
		char why[300];
		ok = get_from(cx, addrs[a], host, resp, &rlen, deadline, why, sizeof(why)) &&
			sts_http_response(resp, rlen, &body, &blen, why, sizeof(why));
		if (ok) {
			*text = malloc(blen + 1);
			ok = *text != NULL;
			if (ok) {
				memcpy(*text, body, blen);
				(*text)[blen] = '\0';
				*len = blen;
			}
		} else {
			snprintf(err, errlen, "https://%.200s/.well-known/mta-sts.txt (%.47s): %.300s", host, addrs[a], why);
		}
	}
	free(resp);
	return ok;
}

static void use(struct sts_found *out, const struct sts_policy *p, const char *id, const char *source)
{
	out->have = true;
	out->policy = *p;
	snprintf(out->id, sizeof(out->id), "%s", id);
	snprintf(out->source, sizeof(out->source), "%s", source);
}

/* --- failed fetches (RFC 8461 §3.3, §5.1) ------------------------------------------
 * A domain whose policy cannot be fetched is not fetched again on every delivery
 * attempt of every message: the failure is remembered for STS_FETCH_RETRY_S per
 * domain and record id (a new id is a new policy: fetched at once), process-wide
 * (the delivery threads share it), at most STS_FAILURES_MAX domains (the oldest
 * goes first).  A restart forgets them. */
#define STS_FAILURES_MAX 256

struct fetch_failure {
	char domain[256];
	char id[STS_ID_MAX];
	time_t when;
	char why[400];
};

static pthread_mutex_t failures_lock = PTHREAD_MUTEX_INITIALIZER;
static struct fetch_failure failures[STS_FAILURES_MAX];

static struct fetch_failure *failure_slot(const char *domain)
{
	for (size_t i = 0; i < STS_FAILURES_MAX; i++)
		if (failures[i].domain[0] && strcasecmp(failures[i].domain, domain) == 0)
			return &failures[i];
	return NULL;
}

/* True (with words in why) when the fetch for domain + id failed less than
 * STS_FETCH_RETRY_S ago. */
static bool failed_recently(const char *domain, const char *id, time_t now, char *why, size_t whysz)
{
	pthread_mutex_lock(&failures_lock);
	struct fetch_failure *f = failure_slot(domain);
	bool recent = f && strcmp(f->id, id) == 0 && now >= f->when && now - f->when < STS_FETCH_RETRY_S;
	if (recent)
		snprintf(why, whysz, "%.400s (%lld s ago; not fetched again before %d s have passed, RFC 8461 §3.3)", f->why,
			(long long)(now - f->when), STS_FETCH_RETRY_S);
	pthread_mutex_unlock(&failures_lock);
	return recent;
}

static void remember_failure(const char *domain, const char *id, time_t now, const char *why)
{
	pthread_mutex_lock(&failures_lock);
	struct fetch_failure *f = failure_slot(domain);
	for (size_t i = 0; !f && i < STS_FAILURES_MAX; i++)
		if (!failures[i].domain[0])
			f = &failures[i];
	if (!f) {   /* full: the oldest goes */
		f = &failures[0];
		for (size_t i = 1; i < STS_FAILURES_MAX; i++)
			if (failures[i].when < f->when)
				f = &failures[i];
	}
	snprintf(f->domain, sizeof(f->domain), "%s", domain);
	snprintf(f->id, sizeof(f->id), "%s", id);
	f->when = now;
	snprintf(f->why, sizeof(f->why), "%s", why);
	pthread_mutex_unlock(&failures_lock);
}

static void forget_failure(const char *domain)
{
	pthread_mutex_lock(&failures_lock);
	struct fetch_failure *f = failure_slot(domain);
	if (f)
		memset(f, 0, sizeof(*f));
	pthread_mutex_unlock(&failures_lock);
}

void sts_policy_for(const struct sts_context *cx, const char *domain, time_t now, struct sts_found *out)
{
	memset(out, 0, sizeof(*out));
	struct cached c;
	bool cached = cache_read(cx, domain, &c);
	bool fresh = cached && now >= c.fetched && now - c.fetched < (time_t)c.policy.max_age;
	char id[STS_ID_MAX] = "", why[800] = "";
	int t = txt_id(cx, domain, id, sizeof(id), why, sizeof(why));
	if (t <= 0) {
		/* §5.1: without a (readable) record, a policy still in its max_age holds. */
		if (fresh)
			use(out, &c.policy, c.id, "cached");
		snprintf(out->note, sizeof(out->note), "%.580s", why[0] ? why : "no MTA-STS record");
		return;
	}
	if (fresh && strcmp(c.id, id) == 0) {
		use(out, &c.policy, c.id, "cached");
		return;
	}
	char *text = NULL;
	size_t len = 0;
	struct sts_policy p;
	bool fetched = false;
	if (!failed_recently(domain, id, now, why, sizeof(why))) {
		fetched = fetch(cx, domain, &text, &len, why, sizeof(why)) && sts_parse_policy(text, len, &p, why, sizeof(why));
		if (fetched)
			forget_failure(domain);
		else
			remember_failure(domain, id, now, why);
	}
	if (fetched) {
		cache_write(cx, domain, id, now, text, len);
		use(out, &p, id, "fetched");
	} else if (fresh) {
		/* §5.1: a policy that cannot be refreshed stays in force until it expires. */
		use(out, &c.policy, c.id, "cached");
		snprintf(out->note, sizeof(out->note), "refresh failed: %.500s", why);
	} else {
		/* §5: no policy could be fetched and none is cached: as if there were none. */
		snprintf(out->note, sizeof(out->note), "%.580s", why);
	}
	free(text);
}
