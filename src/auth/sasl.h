/* sasl.h - the server side of SASL PLAIN (RFC 4616) and LOGIN, as used by SMTP AUTH
 * (RFC 4954) and POP3 AUTH (RFC 5034).  Sans-I/O: the caller passes the client's
 * lines (base64) and gets back a challenge to send or the decoded credentials.
 * Base64 comes from OpenSSL.  Credentials are wiped by sasl_clear(). */
#ifndef POSTERN_AUTH_SASL_H
#define POSTERN_AUTH_SASL_H

#include <stdbool.h>
#include <stddef.h>

#define SASL_USER_MAX 320
#define SASL_PASS_MAX 512
#define SASL_LINE_MAX 2048   /* RFC 4954 §4: 12288 allowed; our credentials fit in far less */

enum sasl_mech { SASL_PLAIN, SASL_LOGIN };

enum sasl_status {
	SASL_CONTINUE,        /* send "334 <challenge>" and call sasl_step with the answer */
	SASL_DONE,            /* x->user and x->pass hold the credentials */
	SASL_CANCELLED,       /* the client sent "*": 501 5.7.0 (RFC 4954 §4) */
	SASL_BAD_BASE64,      /* 501 5.5.2 */
	SASL_MALFORMED,       /* decoded, but not what the mechanism expects: 501 5.5.2 */
	SASL_AUTHZID,         /* PLAIN asked to act as someone else: not supported */
};

struct sasl_exchange {
	enum sasl_mech mech;
	int step;
	char user[SASL_USER_MAX + 1];
	char pass[SASL_PASS_MAX + 1];
};

/* "PLAIN" / "LOGIN", case-insensitive. */
bool sasl_mech_from_name(const char *name, size_t n, enum sasl_mech *out);
const char *sasl_mech_name(enum sasl_mech m);

/* AUTH <mech> [initial-response]: has_initial tells whether one was given ("=" is an
 * empty one, RFC 4954 §4). */
enum sasl_status sasl_start(struct sasl_exchange *x, enum sasl_mech m, bool has_initial,
	const char *initial, size_t n);
/* The client's answer to the last challenge. */
enum sasl_status sasl_step(struct sasl_exchange *x, const char *line, size_t n);
/* The base64 challenge to send after SASL_CONTINUE ("" for PLAIN's empty one). */
const char *sasl_challenge(const struct sasl_exchange *x);
void sasl_clear(struct sasl_exchange *x);

/* Base64 (RFC 4648) decoding of a whole line into out; false if malformed or longer
 * than outsz.  Exposed for tests and fuzzing. */
bool sasl_base64_decode(const char *in, size_t n, unsigned char *out, size_t outsz, size_t *outlen);

#endif
