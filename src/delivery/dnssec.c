/* dnssec.c - the DNSSEC gate of outbound delivery (see dnssec.h). */
#include "delivery/dnssec.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "conf/conf.h"
#include "util/log.h"

#define DEFAULT_ROOT_KEY "/usr/share/dns/root.key"

enum gate_state { GATE_DUE, GATE_PROBING, GATE_ON, GATE_OFF, GATE_UNDECIDED };

struct dnssec_gate {
	pthread_mutex_t lock;
	pthread_cond_t done;
	enum gate_state state;
	time_t next_probe;              /* GATE_UNDECIDED: when to ask again */
	unsigned generation;            /* changes when what resolvers use changes */
	struct dns_options opts;
	char forwarder[300];
	char anchor[CONF_PATH_MAX];
};

const char *dnssec_configured_anchor(const struct conf *c)
{
	const char *ta = c->dnssec_trust_anchor;
	if (!ta[0] || strcmp(ta, "none") == 0)
		return NULL;
	if (strcmp(ta, DEFAULT_ROOT_KEY) == 0 && access(ta, R_OK) != 0)
		return NULL;
	return ta;
}

const char *dnssec_unavailable_fix(void)
{
	return "point [delivery] resolver at a validating resolver (a local unbound: resolver = 127.0.0.1), "
		"or set [delivery] dnssec_trust_anchor = none to run without DNSSEC and silence this";
}

struct dnssec_gate *dnssec_gate_new(const struct conf *c)
{
	struct dnssec_gate *g = calloc(1, sizeof(*g));
	if (!g)
		return NULL;
	pthread_mutex_init(&g->lock, NULL);
	pthread_cond_init(&g->done, NULL);
	snprintf(g->forwarder, sizeof(g->forwarder), "%s", c->resolver);
	const char *ta = dnssec_configured_anchor(c);
	snprintf(g->anchor, sizeof(g->anchor), "%s", ta ? ta : "");
	g->opts = (struct dns_options){ .forwarder = g->forwarder, .trust_anchor_file = g->anchor,
		.timeout_ms = DNSSEC_PROBE_TIMEOUT_MS };
	g->state = ta ? GATE_DUE : GATE_OFF;
	return g;
}

void dnssec_gate_free(struct dnssec_gate **gp)
{
	struct dnssec_gate *g = *gp;
	if (!g)
		return;
	pthread_cond_destroy(&g->done);
	pthread_mutex_destroy(&g->lock);
	free(g);
	*gp = NULL;
}

static void log_outcome(const struct dnssec_gate *g, const struct dns_dnssec_probe *p)
{
	char zone[DNS_NAME_MAX * 4 + 8], why[1400];
	log_quote(zone, sizeof(zone), p->zone, strlen(p->zone), DNS_NAME_MAX);
	log_quote(why, sizeof(why), p->reason, strlen(p->reason), 600);
	const char *via = g->forwarder[0] ? g->forwarder : "the system resolver (/etc/resolv.conf)";
	if (p->path == DNS_DNSSEC_VALIDATES)
		log_event(LOG_INFO, "dnssec", "status=on anchor=%s zone=%s resolver=\"%s\"", g->anchor, zone, via);
	else if (p->path == DNS_DNSSEC_UNAVAILABLE)
		log_event(LOG_WARN, "dnssec", "status=unavailable anchor=%s zone=%s resolver=\"%s\" reason=%s "
			"effect=\"DNSSEC validation is off for this run and DANE is unavailable; mail is delivered without it\" "
			"fix=\"%s\"", g->anchor, zone, via, why, dnssec_unavailable_fix());
	else
		log_event(LOG_WARN, "dnssec", "status=undecided anchor=%s zone=%s resolver=\"%s\" reason=%s "
			"effect=\"validation stays on; asked again in %d seconds\"", g->anchor, zone, via, why, DNSSEC_REPROBE_S);
}

/* Lock held on entry and return; released while the probe runs. */
static void probe(struct dnssec_gate *g)
{
	g->state = GATE_PROBING;
	pthread_mutex_unlock(&g->lock);
	struct dns_dnssec_probe p;
	dns_dnssec_probe(&g->opts, DNSSEC_PROBE_TIMEOUT_MS, &p);
	log_outcome(g, &p);
	pthread_mutex_lock(&g->lock);
	if (p.path == DNS_DNSSEC_VALIDATES) {
		g->state = GATE_ON;
	} else if (p.path == DNS_DNSSEC_UNAVAILABLE) {
		g->state = GATE_OFF;
		g->generation++;    /* resolvers made while undecided validate: remake them */
	} else {
		g->state = GATE_UNDECIDED;
		g->next_probe = time(NULL) + DNSSEC_REPROBE_S;
	}
	pthread_cond_broadcast(&g->done);
}

const char *dnssec_gate_anchor(struct dnssec_gate *g, unsigned *generation)
{
	pthread_mutex_lock(&g->lock);
	if (g->state == GATE_DUE || (g->state == GATE_UNDECIDED && time(NULL) >= g->next_probe))
		probe(g);
	/* Another thread is probing: its answer comes within the probe's bound. */
	while (g->state == GATE_PROBING)
		pthread_cond_wait(&g->done, &g->lock);
	const char *ta = g->state == GATE_OFF ? NULL : g->anchor;
	*generation = g->generation;
	pthread_mutex_unlock(&g->lock);
	return ta;
}

bool dnssec_gate_stale(struct dnssec_gate *g, unsigned generation)
{
	pthread_mutex_lock(&g->lock);
	bool stale = g->generation != generation ||
		(g->state == GATE_UNDECIDED && time(NULL) >= g->next_probe);
	pthread_mutex_unlock(&g->lock);
	return stale;
}
