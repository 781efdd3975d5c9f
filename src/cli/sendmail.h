/* sendmail.h - the parts of the sendmail command (sendmail.c: options, the ways to
 * the server; sendmail_msg.c: the message) shared by its two files. */
#ifndef POSTERN_CLI_SENDMAIL_H
#define POSTERN_CLI_SENDMAIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define SM_MAX_RCPTS 1000
#define SM_ADDR_MAX 320

struct sm_message {
	char *data;
	size_t len, cap;
};

struct sm_rcpts {
	char domain[256];                   /* appended to an address without one */
	char (*addr)[SM_ADDR_MAX + 1];      /* SM_MAX_RCPTS of them */
	size_t n;
};

struct sm_envelope {
	char sender[SM_ADDR_MAX + 1];       /* MAIL FROM ("" with null_sender) */
	bool null_sender;
	char own[SM_ADDR_MAX + 1];          /* the caller's address: user@local_domain */
	char full_name[256];                /* -F, else the account's full name */
	const char *domain;                 /* for Message-ID */
};

/* Standard input up to EOF (or a lone "." line when dot_ends), at most limit octets. */
bool sm_read_input(FILE *in, bool dot_ends, uint64_t limit, struct sm_message *m, char *err, size_t errlen);
/* The message to send: in without Bcc:, with From:/Date:/Message-ID: when missing;
 * take_rcpts (-t): To:, Cc: and Bcc: addresses added to r. */
bool sm_prepare(const struct sm_message *in, const struct sm_envelope *e, bool take_rcpts, struct sm_rcpts *r,
	struct sm_message *out, char *err, size_t errlen);
/* A memory file holding m (for the SMTP client), or -1. */
int sm_memfd(const struct sm_message *m, char *err, size_t errlen);
/* Add addr once (qualified with r->domain when it has no @). */
bool sm_rcpts_add(struct sm_rcpts *r, const char *addr, char *err, size_t errlen);
void sm_message_free(struct sm_message *m);

#endif
