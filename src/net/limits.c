/* limits.c - who may open another connection ([limits] connections,
 * connections_per_ip, connections_reserved), with the count of open connections per
 * client address behind the per-address limit. */
#include "net/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "util/hash.h"
#include "util/log.h"

static unsigned ip_hash(const char *s)
{
	return hash_fnv1a(s) % IP_BUCKETS;
}

static struct ip_count *ip_find(struct net *net, const char *addr, bool create)
{
	unsigned h = ip_hash(addr);
	for (struct ip_count *e = net->ips[h]; e; e = e->next)
		if (strcmp(e->addr, addr) == 0)
			return e;
	if (!create)
		return NULL;
	struct ip_count *e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	snprintf(e->addr, sizeof(e->addr), "%s", addr);
	e->next = net->ips[h];
	net->ips[h] = e;
	return e;
}

void limits_release(struct net *net, const char *addr)
{
	unsigned h = ip_hash(addr);
	for (struct ip_count **p = &net->ips[h]; *p; p = &(*p)->next) {
		if (strcmp((*p)->addr, addr) == 0) {
			if (--(*p)->count == 0) {
				struct ip_count *dead = *p;
				*p = dead->next;
				free(dead);
			}
			return;
		}
	}
}

/* A connection's client address changed (conn_set_client_addr): it counts for the
 * real client from now on, and no longer for the node that connected (a node
 * proxying many users' sessions would otherwise fill its own per-address limit).
 * Not refused: the connection is open already. */
void limits_move(struct net *net, const char *from, const char *to)
{
	struct ip_count *e = ip_find(net, to, true);
	if (!e)
		return;   /* out of memory: keep counting it where it was */
	e->count++;
	limits_release(net, from);
}

/* Room for new clients when many connections are slow or hostile: the last
 * connections_reserved percent of the slots go only to addresses that have no
 * connection open, so no address (nor a few) can take every slot. */
static unsigned long long reserved_slots(const struct conf *cf)
{
	return cf->connections * cf->connections_reserved / 100;
}

/* May this address have another connection?  false: *why says which limit. */
bool limits_admit(struct net *net, const char *addr, struct ip_count **ipc, enum conn_refusal *why)
{
	const struct conf *cf = net->conf;
	unsigned open = net->n_conns + net->n_http_conns;   /* mail and HTTP share the limits */
	if (open >= cf->connections) {
		log_event(LOG_WARN, "refused_connection", "client=%s reason=\"total limit\" limit=%llu", addr,
			(unsigned long long)cf->connections);
		*why = CONN_REFUSE_TOTAL;
		return false;
	}
	*ipc = ip_find(net, addr, true);
	if (!*ipc || (*ipc)->count >= cf->connections_per_ip) {
		log_event(LOG_WARN, "refused_connection", "client=%s reason=\"per-address limit\" limit=%llu", addr,
			(unsigned long long)cf->connections_per_ip);
		*why = CONN_REFUSE_ADDRESS;
		return false;
	}
	if ((*ipc)->count > 0 && open >= cf->connections - reserved_slots(cf) && !conf_is_trusted(cf, addr)) {
		log_event(LOG_WARN, "refused_connection", "client=%s reason=\"reserved for new addresses\" open=%u from_address=%u reserved=%llu",
			addr, open, (*ipc)->count, reserved_slots(cf));
		*why = CONN_REFUSE_RESERVED;
		return false;
	}
	return true;
}

void limits_free(struct net *net)
{
	for (size_t i = 0; i < IP_BUCKETS; i++) {
		while (net->ips[i]) {
			struct ip_count *n = net->ips[i]->next;
			free(net->ips[i]);
			net->ips[i] = n;
		}
	}
}
