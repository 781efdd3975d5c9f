/* cluster.c - the node's secret and its heartbeat (see cluster.h).  The heartbeat is
 * a thread of its own: an upsert of one row every [cluster] heartbeat, with the
 * directory's deadline ([directory] timeout), so a database that is slow or down
 * delays only the next beat (a line in the log when that starts and when it ends). */
#include "serve/cluster.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/node_token.h"
#include "delivery/delivery.h"
#include "directory/directory.h"
#include "serve/service.h"
#include "util/log.h"

struct cluster {
	struct service *srv;
	struct directory *dir;      /* the thread's own handle */
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	bool stop;
	struct dir_node self;       /* name, started and the addresses: fixed at start */
};

bool cluster_secret_load(const struct conf *c, unsigned char *secret, size_t *len, char *err, size_t errlen)
{
	*len = 0;
	if (!c->cluster_node[0] || !c->cluster_secret_file[0])
		return true;   /* conf/check.c refuses a node without secret_file */
	char why[900];
	if (node_secret_load(c->cluster_secret_file, secret, len, why, sizeof(why)))
		return true;
	char where[CONF_PATH_MAX + 64];
	const char *rest = strncmp(why, "[cluster] secret_file: ", 23) == 0 ? why + 23 : why;
	snprintf(err, errlen, "%s: %s", conf_where(c, "cluster", "secret_file", where, sizeof(where)), rest);
	return false;
}

static bool wildcard(const char *address)
{
	return strcmp(address, "0.0.0.0") == 0 || strcmp(address, "::") == 0 || !address[0];
}

void cluster_role_address(const struct service *srv, enum listener_role role, char *out, size_t outsz)
{
	const struct conf *cf = srv->conf;
	const struct conf_listener *pick = NULL;
	size_t at = 0;
	for (size_t i = 0; i < cf->n_listeners; i++) {
		const struct conf_listener *l = &cf->listeners[i];
		if (l->role != role)
			continue;
		if (!pick || (l->tls == TLS_IMPLICIT && pick->tls != TLS_IMPLICIT)) {
			pick = l;
			at = i;
		}
	}
	out[0] = '\0';
	if (!pick)
		return;
	const char *host = wildcard(pick->address) && cf->cluster_advertise[0] ? cf->cluster_advertise : pick->address;
	unsigned port = at < CONF_LISTENERS_BOUND && srv->bound_port[at] ? srv->bound_port[at] : pick->port;
	bool v6 = strchr(host, ':') != NULL;
	snprintf(out, outsz, "%s%s%s:%u", v6 ? "[" : "", host, v6 ? "]" : "", port);
}

static void beat(struct cluster *cl, bool *failing)
{
	struct dir_node n = cl->self;
	n.last_seen = (long long)time(NULL);
	if (cl->srv->delivery)
		delivery_queue_counts(cl->srv->delivery, &n.queue_size, &n.oldest_queued);
	char err[DIR_ERROR_MAX] = "";
	enum dir_result r = directory_node_heartbeat(cl->dir, &n, err);
	if (r != DIR_OK && !*failing)
		log_event(LOG_WARN, "node_heartbeat_error", "node=%s error=\"%s\" action=\"tried again every heartbeat; "
			"peers will see this node as down after [cluster] down_after\"", n.name, err);
	else if (r == DIR_OK && *failing)
		log_event(LOG_INFO, "node_heartbeat_resumed", "node=%s", n.name);
	*failing = r != DIR_OK;
}

static void *heartbeat_main(void *arg)
{
	struct cluster *cl = arg;
	bool failing = false;
	pthread_mutex_lock(&cl->lock);
	while (!cl->stop) {
		pthread_mutex_unlock(&cl->lock);
		beat(cl, &failing);
		pthread_mutex_lock(&cl->lock);
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += (time_t)cl->srv->conf->cluster_heartbeat;
		while (!cl->stop && pthread_cond_timedwait(&cl->wake, &cl->lock, &until) == 0)
			;
	}
	pthread_mutex_unlock(&cl->lock);
	return NULL;
}

struct cluster *cluster_start(struct service *srv)
{
	const struct conf *cf = srv->conf;
	if (!cf->cluster_node[0])
		return NULL;
	struct cluster *cl = calloc(1, sizeof(*cl));
	char err[512];
	if (!cl || !directory_open(&cl->dir, cf->data_dir, err, sizeof(err))) {
		log_event(LOG_ERR, "node_heartbeat_error", "node=%s error=\"%s\"", cf->cluster_node, cl ? err : "out of memory");
		free(cl);
		return NULL;
	}
	cl->srv = srv;
	snprintf(cl->self.name, sizeof(cl->self.name), "%s", cf->cluster_node);
	cl->self.started = (long long)time(NULL);
	cluster_role_address(srv, ROLE_LMTP, cl->self.lmtp, sizeof(cl->self.lmtp));
	cluster_role_address(srv, ROLE_POP3, cl->self.pop3, sizeof(cl->self.pop3));
	cluster_role_address(srv, ROLE_IMAP, cl->self.imap, sizeof(cl->self.imap));
	cluster_role_address(srv, ROLE_CONTROL, cl->self.control, sizeof(cl->self.control));
	pthread_mutex_init(&cl->lock, NULL);
	pthread_cond_init(&cl->wake, NULL);
	if (pthread_create(&cl->thread, NULL, heartbeat_main, cl) != 0) {
		log_event(LOG_ERR, "node_heartbeat_error", "node=%s error=\"cannot start the heartbeat thread\"", cf->cluster_node);
		directory_close(&cl->dir);
		free(cl);
		return NULL;
	}
	log_event(LOG_INFO, "node_started", "node=%s lmtp=%s pop3=%s imap=%s", cl->self.name, cl->self.lmtp, cl->self.pop3,
		cl->self.imap);
	return cl;
}

void cluster_stop(struct cluster **clp)
{
	struct cluster *cl = *clp;
	if (!cl)
		return;
	pthread_mutex_lock(&cl->lock);
	cl->stop = true;
	pthread_cond_signal(&cl->wake);
	pthread_mutex_unlock(&cl->lock);
	pthread_join(cl->thread, NULL);
	pthread_cond_destroy(&cl->wake);
	pthread_mutex_destroy(&cl->lock);
	directory_close(&cl->dir);
	free(cl);
	*clp = NULL;
}
