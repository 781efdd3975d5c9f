/* mx.c - MX resolution with libunbound (see mx.h). */
#include "delivery/mx.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unbound.h>

#define RR_A 1
#define RR_MX 15
#define RR_AAAA 28
#define CLASS_IN 1

struct mx_resolver {
	struct ub_ctx *ctx;
};

struct mx_resolver *mx_resolver_new(const char *resolver, char *err, size_t errlen)
{
	struct mx_resolver *r = calloc(1, sizeof(*r));
	if (!r || !(r->ctx = ub_ctx_create())) {
		snprintf(err, errlen, "cannot create a DNS resolver");
		free(r);
		return NULL;
	}
	int e = 0;
	if (resolver && resolver[0]) {
		/* A resolver named in the configuration (often on loopback in tests) is
		 * asked for everything: unbound would otherwise refuse to query localhost
		 * and answer RFC 6761 names (test., invalid., ...) itself with NXDOMAIN.
		 * Options first: adding a zone finalises the configuration. */
		ub_ctx_set_option(r->ctx, "do-not-query-localhost:", "no");
		e = ub_ctx_set_fwd(r->ctx, resolver);
		static const char *const special[] = { "test.", "invalid.", "example.", "local.", "home.arpa." };
		for (size_t i = 0; e == 0 && i < sizeof(special) / sizeof(special[0]); i++)
			ub_ctx_zone_add(r->ctx, special[i], "transparent");
	}
	else if (ub_ctx_resolvconf(r->ctx, NULL) != 0)
		e = 0;   /* no resolv.conf: recurse from the root */
	if (e != 0) {
		snprintf(err, errlen, "DNS resolver %s: %s", resolver, ub_strerror(e));
		ub_ctx_delete(r->ctx);
		free(r);
		return NULL;
	}
	return r;
}

void mx_resolver_free(struct mx_resolver **rp)
{
	struct mx_resolver *r = *rp;
	if (!r)
		return;
	ub_ctx_delete(r->ctx);
	free(r);
	*rp = NULL;
}

size_t mx_wire_name(const unsigned char *p, size_t len, char *out, size_t outsz)
{
	size_t i = 0, o = 0;
	if (outsz == 0)
		return 0;
	while (i < len) {
		unsigned lab = p[i++];
		if (lab == 0) {
			if (o == 0 && outsz > 1)
				out[o++] = '.';   /* the root: "." */
			else if (o > 0)
				o--;              /* drop the trailing dot */
			out[o] = '\0';
			return i;
		}
		if (lab > 63 || i + lab > len || o + lab + 2 > outsz)
			return 0;
		for (unsigned k = 0; k < lab; k++) {
			unsigned char ch = p[i + k];
			out[o++] = (char)((ch >= 'A' && ch <= 'Z') ? ch + 32 : ch);
		}
		out[o++] = '.';
		i += lab;
	}
	return 0;
}

/* One query; returns 1 data, 0 NODATA, -1 NXDOMAIN, -2 temporary. */
static int query(struct mx_resolver *r, const char *name, int type, struct ub_result **res, char *err, size_t errlen)
{
	*res = NULL;
	int e = ub_resolve(r->ctx, name, type, CLASS_IN, res);
	if (e != 0) {
		snprintf(err, errlen, "DNS lookup of %s failed: %s", name, ub_strerror(e));
		return -2;
	}
	if ((*res)->rcode == 3)   /* NXDOMAIN */
		return -1;
	if ((*res)->rcode != 0) {
		snprintf(err, errlen, "DNS lookup of %s failed (%s): the DNS server could not answer; Postern will try again", name,
			(*res)->rcode == 2 ? "SERVFAIL" : (*res)->rcode == 5 ? "REFUSED" : "error");
		return -2;
	}
	return (*res)->havedata ? 1 : 0;
}

static void add_addrs(struct mx_resolver *r, struct mx_host *h, int type, char *err, size_t errlen)
{
	struct ub_result *res;
	if (query(r, h->name, type, &res, err, errlen) == 1) {
		for (int i = 0; res->data[i] && h->n_addrs < MX_MAX_ADDRS; i++) {
			int want = type == RR_AAAA ? 16 : 4;
			if (res->len[i] != want)
				continue;
			inet_ntop(type == RR_AAAA ? AF_INET6 : AF_INET, res->data[i], h->addrs[h->n_addrs++], 64);
		}
	}
	if (res)
		ub_resolve_free(res);
}

static int by_preference(const void *a, const void *b)
{
	const struct mx_host *x = a, *y = b;
	return x->preference < y->preference ? -1 : x->preference > y->preference;
}

/* RFC 5321 §5.1: equal preferences in random order, to spread the load. */
static void shuffle_ties(struct mx_host *hosts, size_t n)
{
	for (size_t i = 0; i < n;) {
		size_t j = i;
		while (j < n && hosts[j].preference == hosts[i].preference)
			j++;
		for (size_t k = j - 1; k > i; k--) {
			unsigned rnd = 0;
			if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != sizeof(rnd))
				rnd = (unsigned)k;
			size_t m = i + rnd % (k - i + 1);
			struct mx_host t = hosts[k];
			hosts[k] = hosts[m];
			hosts[m] = t;
		}
		i = j;
	}
}

enum mx_status mx_lookup(struct mx_resolver *r, const char *domain, struct mx_host *hosts, size_t *n,
	char *err, size_t errlen)
{
	*n = 0;
	err[0] = '\0';
	struct ub_result *res;
	int q = query(r, domain, RR_MX, &res, err, errlen);
	if (q == -2) {
		if (res)
			ub_resolve_free(res);
		return MX_TEMP;
	}
	if (q == -1) {
		ub_resolve_free(res);
		snprintf(err, errlen, "the domain %s does not exist (DNS: NXDOMAIN)", domain);
		return MX_NO_DOMAIN;
	}
	if (q == 1) {
		for (int i = 0; res->data[i] && *n < MX_MAX_HOSTS; i++) {
			if (res->len[i] < 3)
				continue;
			const unsigned char *d = (const unsigned char *)res->data[i];
			struct mx_host *h = &hosts[*n];
			memset(h, 0, sizeof(*h));
			h->preference = (unsigned)(d[0] << 8 | d[1]);
			if (!mx_wire_name(d + 2, (size_t)res->len[i] - 2, h->name, sizeof(h->name)))
				continue;
			(*n)++;
		}
		ub_resolve_free(res);
		/* RFC 7505 §3: a single MX with the root as exchange. */
		if (*n == 1 && strcmp(hosts[0].name, ".") == 0) {
			*n = 0;
			snprintf(err, errlen, "the domain %s publishes a null MX (RFC 7505): it accepts no mail", domain);
			return MX_NULL;
		}
		qsort(hosts, *n, sizeof(*hosts), by_preference);
		shuffle_ties(hosts, *n);
	} else {
		/* No MX: the domain itself is the implicit MX (RFC 5321 §5.1). */
		ub_resolve_free(res);
		memset(&hosts[0], 0, sizeof(hosts[0]));
		snprintf(hosts[0].name, sizeof(hosts[0].name), "%s", domain);
		*n = 1;
	}
	for (size_t i = 0; i < *n; i++) {
		add_addrs(r, &hosts[i], RR_AAAA, err, errlen);
		add_addrs(r, &hosts[i], RR_A, err, errlen);
	}
	size_t with = 0;
	for (size_t i = 0; i < *n; i++)
		with += hosts[i].n_addrs > 0;
	if (with == 0) {
		snprintf(err, errlen, "no address found for the mail servers of %s", domain);
		return q == 1 ? MX_TEMP : MX_NO_DOMAIN;
	}
	return MX_OK;
}
