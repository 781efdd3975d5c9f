/* milter.h - the milter room's API for policy/: one blocking conversation with one
 * content filter (rspamd, OpenDKIM, ClamAV, a pymilter filter) over the milter
 * protocol version 6 as Postfix speaks it (milter/conv.c on milter/codec.h and
 * net/client.h).  Runs on worker threads only, never on the event loop: every wait
 * is bounded by the filter's time-outs and the stop switch, and a filter that hangs,
 * closes or answers garbage gives MILTER_FAILED with words, never a crash.
 *
 * One struct milter_conn is one connection to a filter, used by one thread at a time:
 * milter_open (connect + option negotiation), then per SMTP session milter_connect,
 * milter_helo, and per transaction milter_mail, milter_rcpt..., milter_data,
 * milter_header..., milter_eoh, milter_body..., milter_eom, or milter_abort; finally
 * milter_close.  Each step returns out->verdict, and out is reset by each call
 * (milter_eom fills out->mods: take them before the next call). */
#ifndef POSTERN_MILTER_MILTER_H
#define POSTERN_MILTER_MILTER_H

#include <stdbool.h>
#include <stddef.h>

struct net_cancel;

enum milter_action { MILTER_DEFAULT_TEMPFAIL, MILTER_DEFAULT_ACCEPT, MILTER_DEFAULT_REJECT };  /* when down/slow */

struct milter_filter_conf {
	char name[64];
	char socket[256];                     /* "unix:/path", "inet:host:port", "inet6:[addr]:port" */
	unsigned connect_ms, command_ms, content_ms;   /* connect; each command; message content and end of body */
	enum milter_action default_action;
};

enum milter_verdict {
	MILTER_CONTINUE,
	MILTER_ACCEPT,        /* no more from this filter this transaction (at connect or HELO: this session) */
	MILTER_REJECT,
	MILTER_TEMPFAIL,
	MILTER_DISCARD,
	MILTER_QUARANTINE,    /* end of body: accepted, to be held; out->reason */
	MILTER_REPLYCODE,     /* 'y': out->reply */
	MILTER_SKIP,          /* body: send no more chunks */
	MILTER_FAILED,        /* down, slow, closed, garbage: the default action applies; out->failure */
};

struct milter_mod {
	enum milter_mod_kind { MILTER_MOD_ADD_HEADER, MILTER_MOD_INSERT_HEADER, MILTER_MOD_CHANGE_HEADER,
		MILTER_MOD_ADD_RCPT, MILTER_MOD_DEL_RCPT, MILTER_MOD_CHANGE_FROM } kind;
	unsigned index;        /* INSERT: position (0 = first); CHANGE: occurrence of name, 1-based */
	char *name, *value;    /* header; CHANGE with value "" = delete; RCPT/FROM: name = address, value = ESMTP
	                          args or NULL.  Header values as the filter sent them (LF inside folded ones) */
};

struct milter_outcome {
	enum milter_verdict verdict;
	char reply[1024];      /* MILTER_REPLYCODE: the filter's reply ("550 5.7.1 spam ...", lines joined with a
	                          space), validated: 4xx/5xx, enhanced code class matching; else MILTER_FAILED */
	int reply_code;        /* MILTER_REPLYCODE: 550 */
	char reply_enh[16];    /* MILTER_REPLYCODE: "5.7.1", or "" when the filter gave none */
	char reason[256];      /* QUARANTINE: the filter's reason */
	char failure[256];     /* MILTER_FAILED: what happened, in words: "did not answer within 10 seconds
	                          (reply to RCPT)", "closed the connection", "answered garbage (unknown reply
	                          'Z')", "connect refused (unix:/run/f.sock: connect: Connection refused)" */
	struct milter_mod *mods;   /* end of body only */
	size_t n_mods;
	bool body_replaced;    /* end of body: REPLBODY chunks went to the body sink */
	unsigned long elapsed_ms;
};

struct milter_macro {
	const char *name;      /* as sent: "j", "{auth_authen}" */
	const char *value;
};

typedef bool milter_body_sink(void *arg, const void *p, size_t n);  /* REPLBODY chunks, in order; false: stop */

struct milter_conn;

/* Connect + SMFIC_OPTNEG v6 (every action and step flag offered).  NULL: out->failure
 * says why (and out->verdict is MILTER_FAILED). */
struct milter_conn *milter_open(const struct milter_filter_conf *fc, const struct net_cancel *cancel,
	struct milter_outcome *out);

/* Each returns out->verdict.  Commands the negotiation said the filter does not want
 * (SMFIP_NO*) are not sent (CONTINUE); no-reply steps (SMFIP_NR_*) are not waited
 * for.  Macros are sent (SMFIC_MACRO, filtered by the filter's macro lists) before
 * the command when the command is sent.  After MILTER_ACCEPT the filter is asked
 * nothing more until the transaction ends (ACCEPT at connect or HELO: until
 * milter_close); after MILTER_FAILED the connection is closed and every call returns
 * MILTER_FAILED with the same words. */
enum milter_verdict milter_connect(struct milter_conn *m, const struct milter_macro *mac, size_t n,
	const char *hostname, char family /* '4' '6' 'L' 'U' */, unsigned port, const char *addr,
	struct milter_outcome *out);
enum milter_verdict milter_helo(struct milter_conn *m, const struct milter_macro *mac, size_t n, const char *helo,
	struct milter_outcome *out);
/* argv[0]: the address in <>; then the ESMTP parameters ("SIZE=100"). */
enum milter_verdict milter_mail(struct milter_conn *m, const struct milter_macro *mac, size_t n,
	const char *const *argv, size_t argc, struct milter_outcome *out);
enum milter_verdict milter_rcpt(struct milter_conn *m, const struct milter_macro *mac, size_t n,
	const char *const *argv, size_t argc, struct milter_outcome *out);
enum milter_verdict milter_data(struct milter_conn *m, const struct milter_macro *mac, size_t n,
	struct milter_outcome *out);
/* value: the bytes after "Name:" as in the message; sent with its leading space only
 * when SMFIP_HDR_LEADSPC was negotiated, CR LF inside a folded value as LF, a final
 * CR LF dropped (Postfix milter8.c). */
enum milter_verdict milter_header(struct milter_conn *m, const char *name, const char *value,
	struct milter_outcome *out);
enum milter_verdict milter_eoh(struct milter_conn *m, const struct milter_macro *mac, size_t n,
	struct milter_outcome *out);
enum milter_verdict milter_body(struct milter_conn *m, const void *p, size_t n /* <= 65535 */,
	struct milter_outcome *out);
/* End of body: the modifications are collected into out->mods (each checked against
 * the actions negotiated), REPLBODY chunks handed to sink in order; the final reply
 * decides the verdict (a quarantine request with accept/continue: MILTER_QUARANTINE). */
enum milter_verdict milter_eom(struct milter_conn *m, const struct milter_macro *mac, size_t n,
	milter_body_sink *sink, void *sink_arg, struct milter_outcome *out);
/* End of a transaction without EOM (RSET, refusal): SMFIC_ABORT, no reply. */
void milter_abort(struct milter_conn *m);
/* SMFIC_QUIT and close; bounded by command_ms.  Sets *m to NULL. */
void milter_close(struct milter_conn **m);
/* Frees out->mods; the rest is zeroed. */
void milter_outcome_clear(struct milter_outcome *out);

/* What the negotiation settled, for logs and tests: the filter's version, actions
 * (SMFIF_*) and protocol flags (SMFIP_*). */
void milter_negotiated(const struct milter_conn *m, unsigned *version, unsigned *actions, unsigned *protocol);

/* A filter's socket: "unix:/path" (or "local:/path", or a bare "/path"),
 * "inet:host:port", "inet:port@host" (Sendmail's order), "inet6:[addr]:port",
 * "inet6:port@addr".  False with the reason in err. */
struct milter_socket {
	bool is_unix;
	char path[108];        /* unix */
	char host[256];        /* inet: host name or address literal, without brackets */
	unsigned port;
};
bool milter_socket_parse(const char *spec, struct milter_socket *out, char *err, size_t errlen);

#endif
