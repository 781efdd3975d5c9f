/* cluster.h - this process as one node of a cluster ([cluster] node set): the shared
 * secret of the node token, and the heartbeat thread that keeps this node's row of
 * the registry (directory.h struct dir_node, PostgreSQL table postern_nodes) fresh,
 * with the addresses where peers reach its listeners and its queue's size.  Nothing
 * here runs on the event loop: the thread has its own directory handle. */
#ifndef POSTERN_SERVE_CLUSTER_H
#define POSTERN_SERVE_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>

#include "conf/conf.h"

struct service;
struct cluster;

/* check-config and serve (as root, before the drop: the file may be root's): the
 * secret of [cluster] secret_file into secret.  true with *len 0 when [cluster] node
 * is not set. */
bool cluster_secret_load(const struct conf *c, unsigned char *secret, size_t *len, char *err, size_t errlen);
/* "host:port" where peers reach this node's listener of `role` (pop3, imap: the
 * implicit-TLS one if any, else the first; others: the first), from the bound ports
 * and [cluster] advertise for wildcard addresses; "" when there is none. */
void cluster_role_address(const struct service *srv, enum listener_role role, char *out, size_t outsz);
/* Starts the heartbeat (a first row at once, then every [cluster] heartbeat); NULL
 * without [cluster] node.  At the stop: the thread joined. */
struct cluster *cluster_start(struct service *srv);
void cluster_stop(struct cluster **cl);

#endif
