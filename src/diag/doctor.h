/* doctor.h - `postern doctor`: test a mail client's settings against a server step by
 * step and name the cause of the first failure (ids shared with explain).  The CLI
 * (diag.h) prints the report; doctor_run is the same run for a caller inside the
 * server (the web page "Test my settings"): options in, each step's result out. */
#ifndef POSTERN_DIAG_DOCTOR_H
#define POSTERN_DIAG_DOCTOR_H

#include <stdbool.h>
#include <stddef.h>

struct explain_kb;

enum doctor_step {
	STEP_NONE = 0, STEP_RESOLVE, STEP_PORTS, STEP_TLS, STEP_EHLO, STEP_LOGIN, STEP_SENDER,
	STEP_RELAY, STEP_SEND, STEP_POP3, STEP_COUNT
};

/* Exit status for a failed step: 10 + step (11 name ... 18 test message, 19 POP3); 0 all passed. */
#define DOCTOR_EXIT_BASE 10

enum doctor_status { DOCTOR_SKIP, DOCTOR_OK, DOCTOR_WARN, DOCTOR_FAIL };

/* One client's settings to test.  Only the one SMTP port (and with pop3 the one POP3
 * port) is tried: the caller knows the server's ports, no survey of the usual ones. */
struct doctor_options {
	const char *server;          /* host name or address to connect to */
	const char *tls_name;        /* the name the certificate must be for (NULL: server) */
	unsigned smtp_port;          /* 0: no SMTP steps */
	bool smtp_implicit_tls;      /* true: TLS from the first byte (465); false: STARTTLS (587) */
	const char *user, *password; /* NULL user: no login step */
	const char *from;            /* MAIL FROM (NULL: user) */
	bool insecure;               /* a certificate no mail program trusts is a warning, not a failure */
	unsigned pop3_port;          /* 0: no POP3 step */
	bool pop3_implicit_tls;
	unsigned connect_ms, io_ms;  /* each connect, each reply (0: 5 s, 10 s) */
	unsigned total_ms;           /* the whole run; nothing is started after it (0: none) */
	const struct explain_kb *kb; /* required: cause ids for replies */
};

struct doctor_outcome {
	struct { enum doctor_status status; char detail[512]; } steps[STEP_COUNT];
	enum doctor_step failed;     /* STEP_NONE: every step passed */
	char cause_id[48];           /* explain's id of the first failure's cause ("" none) */
	char verdict[1024];          /* the first failure in words ("" none) */
};

/* Run the steps (blocking: seconds, bounded by total_ms).  false: out of memory. */
bool doctor_run(const struct doctor_options *o, struct doctor_outcome *out);
/* "name resolves", "ports answer", ... */
const char *doctor_step_name(enum doctor_step s);

#endif
