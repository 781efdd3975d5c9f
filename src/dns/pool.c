/* pool.c - resolvers for worker threads (see dns.h, "a pool").  A resolver is used
 * by one thread at a time; checks on several decision threads each take one, and
 * give it back with its cache warm, instead of building a context per check. */
#include "dns/dns.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct dns_pool {
	pthread_mutex_t lock;
	pthread_cond_t freed;
	struct dns_options opts;
	char forwarder[DNS_NAME_MAX];
	char anchor[1024];
	struct dns_resolver **idle;
	size_t n_idle, n_made, max;
};

struct dns_pool *dns_pool_new(const struct dns_options *o, size_t max)
{
	struct dns_pool *p = calloc(1, sizeof(*p));
	if (!p || max == 0 || !(p->idle = calloc(max, sizeof(*p->idle)))) {
		free(p);
		return NULL;
	}
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->freed, NULL);
	p->opts = *o;
	snprintf(p->forwarder, sizeof(p->forwarder), "%s", o->forwarder ? o->forwarder : "");
	snprintf(p->anchor, sizeof(p->anchor), "%s", o->trust_anchor_file ? o->trust_anchor_file : "");
	p->opts.forwarder = p->forwarder;
	p->opts.trust_anchor_file = p->anchor;
	p->max = max;
	return p;
}

struct dns_resolver *dns_pool_take(struct dns_pool *p, char *err, size_t errlen)
{
	pthread_mutex_lock(&p->lock);
	while (p->n_idle == 0 && p->n_made >= p->max)
		pthread_cond_wait(&p->freed, &p->lock);
	struct dns_resolver *r = NULL;
	if (p->n_idle > 0) {
		r = p->idle[--p->n_idle];
		pthread_mutex_unlock(&p->lock);
		return r;
	}
	p->n_made++;   /* made outside the lock: creating a context takes a while */
	pthread_mutex_unlock(&p->lock);
	r = dns_resolver_new(&p->opts, err, errlen);
	if (!r) {
		pthread_mutex_lock(&p->lock);
		p->n_made--;
		pthread_cond_signal(&p->freed);
		pthread_mutex_unlock(&p->lock);
	}
	return r;
}

void dns_pool_give(struct dns_pool *p, struct dns_resolver *r)
{
	if (!r)
		return;
	pthread_mutex_lock(&p->lock);
	p->idle[p->n_idle++] = r;
	pthread_cond_signal(&p->freed);
	pthread_mutex_unlock(&p->lock);
}

void dns_pool_free(struct dns_pool **pp)
{
	struct dns_pool *p = *pp;
	if (!p)
		return;
	for (size_t i = 0; i < p->n_idle; i++)
		dns_resolver_free(&p->idle[i]);
	free(p->idle);
	pthread_cond_destroy(&p->freed);
	pthread_mutex_destroy(&p->lock);
	free(p);
	*pp = NULL;
}
