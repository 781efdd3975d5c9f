/* node_lmtp.h - delivery of a local user's mail to the user's home node ([cluster]):
 * the registry (directory.h struct dir_node) says where the home node's lmtp listener
 * is and whether the node is up; the message goes there by LMTP (RFC 2033) over
 * implicit TLS, the sending node proving itself with a node token (auth/node_token.h,
 * purpose "lmtp") in an XNODE command after LHLO; each recipient gets its own reply
 * after the final dot.  A home node that is down, unreachable or refusing for now is a
 * deferral whose words name the node and since when it has not answered. */
#ifndef POSTERN_DELIVERY_NODE_LMTP_H
#define POSTERN_DELIVERY_NODE_LMTP_H

#include <stddef.h>

#include "delivery/reason.h"

struct conf;
struct directory;
struct net_cancel;
struct queue_message;

struct node_lmtp {
	const struct conf *conf;
	struct directory *dir;              /* the delivering thread's own handle */
	const struct net_cancel *cancel;    /* fired at shutdown */
	const unsigned char *secret;        /* the shared secret ([cluster] secret_file) */
	size_t secret_len;
};

/* Deliver m to recipients idx[0..n), whose home is `node`; results[k] for idx[k]. */
void node_lmtp_deliver(const struct node_lmtp *x, const struct queue_message *m, const char *node, const size_t *idx,
	size_t n, struct rcpt_result *results);
/* "home node node2 has not answered since 00:41:07 UTC (3 min)": the words of a home
 * node whose registry row is older than [cluster] down_after (last_seen 0: never). */
void node_lmtp_down_words(const char *node, long long last_seen, long long now, char *out, size_t outsz);

#endif
