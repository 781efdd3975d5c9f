/* enh.h - the catalogue of the enhanced status codes Postern sends or writes
 * (RFC 3463, the IANA "SMTP Enhanced Status Codes" registry of RFC 5248).  Every
 * room names a code by its id here (ENH_PERM_MAILBOX_FULL), never by a literal
 * "5.2.2": tests/unit/test_reply.c fails on an enhanced-code literal anywhere in src/
 * outside this file and enh.c.  The ids are string constants, so they fit static
 * tables ("E(..., 552, ENH_PERM_MAILBOX_FULL, ...)") and string concatenation
 * ("552 " ENH_PERM_MAILBOX_FULL " the mailbox ...") alike.
 *
 * Names: ENH_OK_ (class 2), ENH_TEMP_ (class 4), ENH_PERM_ (class 5), then what the
 * registry says the subject.detail means.  The class must match the reply code's
 * first digit (smtp/reply.c asserts it).
 *
 * To add a code: (1) a #define below, in order, with the registry's words and the RFC
 * that defines it; (2) a row in enh.c's table with the same id; test_wire checks that
 * every id here has a row, that each is a valid code of its class, and that none is
 * listed twice.  Codes in data files (data/explain.ini, explain rules) are data, not code: they
 * stay as they are. */
#ifndef POSTERN_WIRE_ENH_H
#define POSTERN_WIRE_ENH_H

#include <stddef.h>

/* --- class 2: success ----------------------------------------------------------- */
#define ENH_OK                        "2.0.0"
#define ENH_OK_ADDRESS                "2.1.0"
#define ENH_OK_DEST_VALID             "2.1.5"
#define ENH_OK_PROTOCOL               "2.5.0"
#define ENH_OK_SECURITY               "2.7.0"

/* --- class 4: temporary failure ------------------------------------------------- */
#define ENH_TEMP                      "4.0.0"
#define ENH_TEMP_MAILBOX_FULL         "4.2.2"
#define ENH_TEMP_SYSTEM               "4.3.0"
#define ENH_TEMP_SYSTEM_FULL          "4.3.1"
#define ENH_TEMP_NOT_ACCEPTING        "4.3.2"
#define ENH_TEMP_NO_ANSWER            "4.4.1"
#define ENH_TEMP_BAD_CONNECTION       "4.4.2"
#define ENH_TEMP_DIRECTORY_SERVER     "4.4.3"
#define ENH_TEMP_TOO_MANY_RCPTS       "4.5.3"
#define ENH_TEMP_SECURITY             "4.7.0"
#define ENH_TEMP_NOT_AUTHORIZED       "4.7.1"
#define ENH_TEMP_CRYPTO_FAILURE       "4.7.5"
#define ENH_TEMP_ENCRYPTION_NEEDED    "4.7.10"
#define ENH_TEMP_SPF_ERROR            "4.7.24"

/* --- class 5: permanent failure ------------------------------------------------- */
#define ENH_PERM                      "5.0.0"
#define ENH_PERM_BAD_MAILBOX          "5.1.1"
#define ENH_PERM_BAD_SYSTEM           "5.1.2"
#define ENH_PERM_BAD_MAILBOX_SYNTAX   "5.1.3"
#define ENH_PERM_BAD_SENDER_SYNTAX    "5.1.7"
#define ENH_PERM_NULL_MX              "5.1.10"
#define ENH_PERM_MAILBOX_FULL         "5.2.2"
#define ENH_PERM_TOO_BIG              "5.3.4"
#define ENH_PERM_INVALID_COMMAND      "5.5.1"
#define ENH_PERM_SYNTAX               "5.5.2"
#define ENH_PERM_INVALID_ARGS         "5.5.4"
#define ENH_PERM_LINE_TOO_LONG        "5.5.6"
#define ENH_PERM_MEDIA                "5.6.0"
#define ENH_PERM_CONVERSION           "5.6.3"
#define ENH_PERM_NON_ASCII            "5.6.7"
#define ENH_PERM_SECURITY             "5.7.0"
#define ENH_PERM_NOT_AUTHORIZED       "5.7.1"
#define ENH_PERM_AUTH_INVALID         "5.7.8"
#define ENH_PERM_ENCRYPTION_REQUIRED  "5.7.11"
#define ENH_PERM_NO_DKIM_PASS         "5.7.20"
#define ENH_PERM_NO_DKIM_ACCEPTABLE   "5.7.21"
#define ENH_PERM_NO_DKIM_AUTHOR       "5.7.22"
#define ENH_PERM_SPF_FAILED           "5.7.23"
#define ENH_PERM_SPF_ERROR            "5.7.24"
#define ENH_PERM_REVERSE_DNS          "5.7.25"
#define ENH_PERM_AUTH_CHECKS_FAILED   "5.7.26"

/* One catalogue row: the id's name ("ENH_PERM_MAILBOX_FULL"), the code, the
 * registry's words and the defining document. */
struct wire_enh_entry {
	const char *name;
	const char *code;
	const char *meaning;
	const char *rfc;
};

/* The whole catalogue, in the order above; *n gets its length. */
const struct wire_enh_entry *wire_enh_catalogue(size_t *n);
/* The registry's words for code ("5.2.2" -> "mailbox full"), or NULL when Postern's
 * catalogue does not hold it. */
const char *wire_enh_meaning(const char *code);

#endif
