/* doctor_internal.h - what the parts of `postern doctor` share: the run's state
 * (options, the ports surveyed, each step's result) and the steps' helpers.
 * doctor.c the options and the entry point; doctor_common.c the steps' helpers;
 * doctor_smtp.c the SMTP survey and session (steps 2-8); doctor_pop3.c step 9;
 * doctor_report.c the text and JSON reports.  Private to diag/. */
#ifndef POSTERN_DIAG_DOCTOR_INTERNAL_H
#define POSTERN_DIAG_DOCTOR_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "delivery/smtp_client.h"
#include "diag/doctor.h"
#include "net/client.h"
#include "wire/wire.h"

struct explain_cause;
struct explain_kb;

#define SLOTS 4
#define PSLOTS 2
#define ADDR_MAX 320
#define OUTSIDE_DEFAULT "postern-doctor@example.com"

extern const unsigned doctor_slot_names[SLOTS];
extern const char *const doctor_step_names[STEP_COUNT];
extern const unsigned doctor_pslot_names[PSLOTS];

enum mode { MODE_UNKNOWN, MODE_PLAIN, MODE_STARTTLS, MODE_IMPLICIT };
extern const char *const doctor_mode_names[];

struct slot {
	unsigned name, port;
	bool enabled, open;
	enum net_status st;
	char err[160];
	enum mode mode;
	struct net_cert cert;
	bool have_cert;
	char auth[160];          /* AUTH mechanisms offered (after TLS when there is TLS) */
	bool auth_before_tls;
};

/* A POP3 port: 995 (implicit TLS) or 110 (STLS). */
struct pslot {
	unsigned name, port;
	bool enabled, open;
	enum net_status st;
	enum mode mode;
};

struct pop3_result {
	bool tested, logged_in, capa, uidl, uidl_known, have_stat;
	const char *cause;       /* the POP3 step's own cause (the verdict may name an earlier one) */
	struct pslot *chosen;
	unsigned port;
	enum mode mode;
	unsigned long messages;
	unsigned long long octets;
};

struct step_result {
	enum { S_SKIP, S_OK, S_WARN, S_FAIL } status;
	char detail[512];
};

struct doctor {
	/* options */
	const char *server, *user, *from, *to, *outside, *source, *tls_name, *ca_file, *data;
	const char *security;    /* none, starttls, tls, or NULL: what the port speaks */
	char password[512];
	bool have_password, send, no_login, json, transcript, insecure, pop3;
	long client_port;        /* --port: a slot name or a port number, 0 none */
	const char *pop3_security;   /* --pop3-security, or NULL: what the port speaks */
	long pop3_port;          /* --pop3-port: 110, 995 or a port number, 0 none */
	bool smtp;               /* some SMTP port is to be tested */
	struct net_client_opts popts;
	FILE *transcript_to;     /* --transcript: stdout, or stderr with --json */
	/* state */
	struct slot slots[SLOTS];
	struct pslot pslots[PSLOTS];
	struct pop3_result pop;
	struct step_result steps[STEP_COUNT];
	struct slot *chosen;
	unsigned chosen_port;
	enum mode chosen_mode;
	char local_addr[64];
	bool logged_in;
	enum doctor_step failed;
	const char *cause_id;
	char verdict[1024];
	const struct explain_kb *kb;
	struct wire_reply last;
	unsigned total_ms;       /* the run's total time, 0 none (doctor_run's callers) */
	uint64_t deadline_ms;    /* doctor_now_ms() when it is up, 0 none */
};

struct slot *doctor_slot_by_name(struct doctor *d, unsigned name);
struct pslot *doctor_pslot_by_name(struct doctor *d, unsigned name);
void doctor_step_set(struct doctor *d, enum doctor_step s, int status, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* The first failure decides the verdict; always false. */
bool doctor_fail(struct doctor *d, enum doctor_step s, const char *cause, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
const char *doctor_reply_cause(struct doctor *d, const struct wire_reply *r, const char *fallback);
bool doctor_send_line(struct doctor *d, struct net_client *p, const char *line, const char *shown);
uint64_t doctor_now_ms(void);
/* The steps in order (resolve, SMTP survey and session, POP3): the CLI and doctor_run. */
void doctor_execute(struct doctor *d);
struct net_client *doctor_connect(struct doctor *d, unsigned port, enum net_status *st, char *err, size_t errsz);
void doctor_first_line(const char *text, char *out, size_t outsz);
const char *doctor_tls_name(const struct doctor *d);
struct slot *doctor_best_slot(struct doctor *d);
bool doctor_step_ports(struct doctor *d);
bool doctor_check_cert_at(struct doctor *d, enum doctor_step step, enum mode mode, unsigned port,
	const struct net_cert *c, char *note, size_t notesz, bool *warn);
void doctor_run_session(struct doctor *d);
struct pslot *doctor_pop_best(struct doctor *d);
void doctor_step_pop3(struct doctor *d);
void doctor_print_text(const struct doctor *d, const struct explain_cause *c);
void doctor_print_json(const struct doctor *d, const struct explain_cause *c);

#endif
