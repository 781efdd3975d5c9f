/* enh.c - the enhanced status code catalogue (see enh.h): every code Postern uses,
 * with the registry's words (RFC 5248 §2.4, the IANA "SMTP Enhanced Status Codes"
 * registry) and the document that defines it.  RFC 3463 §3 sections: X.0 §3.1,
 * X.1 addresses §3.2, X.2 mailboxes §3.3, X.3 mail system §3.4, X.4 network and
 * routing §3.5, X.5 protocol §3.6, X.6 content §3.7, X.7 security or policy §3.8. */
#include "wire/enh.h"

#include <string.h>

#define ROW(id, meaning, rfc) { #id, id, meaning, rfc }

static const struct wire_enh_entry catalogue[] = {
	ROW(ENH_OK, "other or undefined status", "RFC 3463 §3.1"),
	ROW(ENH_OK_ADDRESS, "other address status", "RFC 3463 §3.2"),
	ROW(ENH_OK_DEST_VALID, "destination address valid", "RFC 3463 §3.2"),
	ROW(ENH_OK_PROTOCOL, "other or undefined protocol status", "RFC 3463 §3.6"),
	ROW(ENH_OK_SECURITY, "authentication succeeded", "RFC 4954 §6"),

	ROW(ENH_TEMP, "other or undefined status", "RFC 3463 §3.1"),
	ROW(ENH_TEMP_MAILBOX_FULL, "mailbox full", "RFC 3463 §3.3"),
	ROW(ENH_TEMP_SYSTEM, "other or undefined mail system status", "RFC 3463 §3.4"),
	ROW(ENH_TEMP_SYSTEM_FULL, "mail system full", "RFC 3463 §3.4"),
	ROW(ENH_TEMP_NOT_ACCEPTING, "system not accepting network messages", "RFC 3463 §3.4"),
	ROW(ENH_TEMP_NO_ANSWER, "no answer from host", "RFC 3463 §3.5"),
	ROW(ENH_TEMP_BAD_CONNECTION, "bad connection", "RFC 3463 §3.5"),
	ROW(ENH_TEMP_DIRECTORY_SERVER, "directory server failure", "RFC 3463 §3.5"),
	ROW(ENH_TEMP_TOO_MANY_RCPTS, "too many recipients", "RFC 3463 §3.6"),
	ROW(ENH_TEMP_SECURITY, "other or undefined security status", "RFC 3463 §3.8"),
	ROW(ENH_TEMP_NOT_AUTHORIZED, "delivery not authorized, message refused (temporary)", "RFC 3463 §3.8"),
	ROW(ENH_TEMP_CRYPTO_FAILURE, "cryptographic failure", "RFC 3463 §3.8"),
	ROW(ENH_TEMP_ENCRYPTION_NEEDED, "encryption needed", "RFC 5248"),
	ROW(ENH_TEMP_SPF_ERROR, "SPF validation error", "RFC 7372 §3.2"),

	ROW(ENH_PERM, "other or undefined status", "RFC 3463 §3.1"),
	ROW(ENH_PERM_BAD_MAILBOX, "bad destination mailbox address", "RFC 3463 §3.2"),
	ROW(ENH_PERM_BAD_SYSTEM, "bad destination system address", "RFC 3463 §3.2"),
	ROW(ENH_PERM_BAD_MAILBOX_SYNTAX, "bad destination mailbox address syntax", "RFC 3463 §3.2"),
	ROW(ENH_PERM_BAD_SENDER_SYNTAX, "bad sender's mailbox address syntax", "RFC 3463 §3.2"),
	ROW(ENH_PERM_NULL_MX, "recipient address has null MX", "RFC 7505"),
	ROW(ENH_PERM_MAILBOX_FULL, "mailbox full", "RFC 3463 §3.3"),
	ROW(ENH_PERM_TOO_BIG, "message too big for system", "RFC 3463 §3.4"),
	ROW(ENH_PERM_INVALID_COMMAND, "invalid command", "RFC 3463 §3.6"),
	ROW(ENH_PERM_SYNTAX, "syntax error", "RFC 3463 §3.6"),
	ROW(ENH_PERM_INVALID_ARGS, "invalid command arguments", "RFC 3463 §3.6"),
	ROW(ENH_PERM_LINE_TOO_LONG, "authentication exchange line is too long", "RFC 4954 §6"),
	ROW(ENH_PERM_MEDIA, "other or undefined media error", "RFC 3463 §3.7"),
	ROW(ENH_PERM_CONVERSION, "conversion required but not supported", "RFC 3463 §3.7"),
	ROW(ENH_PERM_NON_ASCII, "non-ASCII addresses not permitted for that sender/recipient", "RFC 6531"),
	ROW(ENH_PERM_SECURITY, "other or undefined security status", "RFC 3463 §3.8"),
	ROW(ENH_PERM_NOT_AUTHORIZED, "delivery not authorized, message refused", "RFC 3463 §3.8"),
	ROW(ENH_PERM_AUTH_INVALID, "authentication credentials invalid", "RFC 4954 §6"),
	ROW(ENH_PERM_ENCRYPTION_REQUIRED, "encryption required for requested authentication mechanism", "RFC 4954 §6"),
	ROW(ENH_PERM_NO_DKIM_PASS, "no passing DKIM signature found", "RFC 7372 §3.1"),
	ROW(ENH_PERM_NO_DKIM_ACCEPTABLE, "no acceptable DKIM signature found", "RFC 7372 §3.1"),
	ROW(ENH_PERM_NO_DKIM_AUTHOR, "no valid author-matched DKIM signature found", "RFC 7372 §3.1"),
	ROW(ENH_PERM_SPF_FAILED, "SPF validation failed", "RFC 7372 §3.2"),
	ROW(ENH_PERM_SPF_ERROR, "SPF validation error", "RFC 7372 §3.2"),
	ROW(ENH_PERM_REVERSE_DNS, "reverse DNS validation failed", "RFC 7372 §3.3"),
	ROW(ENH_PERM_AUTH_CHECKS_FAILED, "multiple authentication checks failed", "RFC 7372 §3.4"),
};

const struct wire_enh_entry *wire_enh_catalogue(size_t *n)
{
	*n = sizeof(catalogue) / sizeof(catalogue[0]);
	return catalogue;
}

const char *wire_enh_meaning(const char *code)
{
	if (!code)
		return NULL;
	for (size_t i = 0; i < sizeof(catalogue) / sizeof(catalogue[0]); i++)
		if (strcmp(catalogue[i].code, code) == 0)
			return catalogue[i].meaning;
	return NULL;
}
