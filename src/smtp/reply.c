/* reply.c - the reply catalogue and the one function that writes replies.
 *
 * Codes and enhanced codes: RFC 5321 §4.2, RFC 3463 (class.subject.detail),
 * RFC 2034 (ENHANCEDSTATUSCODES: every 2xx/4xx/5xx reply after the greeting carries
 * one), RFC 1870 (SIZE: 552 5.3.4), RFC 3030 (CHUNKING), RFC 6531 (5.6.7).  The
 * enhanced codes are named by their ids in wire/enh.h, the one code catalogue (policy/
 * and delivery/ use it too); this file owns the words, hints and reply codes. */
#include "smtp/reply.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "util/buf.h"
#include "wire/enh.h"
#include "wire/wire.h"

#define E(id, code, enh, text, hint) [id] = { code, enh, text, hint }

static const struct reply_entry catalogue[REPLY_ID_COUNT] = {
	E(R_GREETING, 220, NULL, "%s ESMTP Postern ready", NULL),
	E(R_BYE, 221, ENH_OK, "Bye", NULL),
	E(R_RSET, 250, ENH_OK, "Ok: transaction reset", NULL),
	E(R_NOOP, 250, ENH_OK, "Ok", NULL),
	E(R_VRFY, 252, ENH_OK_PROTOCOL, "Cannot verify users here, but will accept mail and attempt delivery", NULL),
	E(R_HELP, 214, ENH_OK, "Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT HELP VRFY\nSee RFC 5321; mail administrators: see the Postern documentation", NULL),
	E(R_START_DATA, 354, NULL, "End data with <CR><LF>.<CR><LF>", NULL),
	E(R_BDAT_OK, 250, ENH_OK, "%llu octets received", NULL),
	E(R_QUEUED, 250, ENH_OK, "Ok: queued as %s", NULL),
	E(R_LMTP_GREETING, 220, NULL, "%s LMTP Postern ready (node to node)", NULL),
	E(R_LMTP_NEEDS_LHLO, 500, ENH_PERM_INVALID_COMMAND, "This is LMTP between the nodes of a cluster (RFC 2033): greet with LHLO, not %s",
		"Only Postern nodes speak here; mail programs and other servers use the smtp and submission ports"),
	E(R_NODE_OK, 250, ENH_OK_SECURITY, "Ok: node %s of this cluster", NULL),
	E(R_NODE_TOKEN_NEEDED, 530, ENH_PERM_SECURITY, "Node token required: this listener takes mail only from the nodes of this cluster, after XNODE <token>",
		"A node proves itself with a token made from the shared [cluster] secret_file; other servers use the smtp port"),
	E(R_NODE_TOKEN_REFUSED, 535, ENH_PERM_AUTH_INVALID, "Node token refused: %s",
		"Every node's [cluster] secret_file must hold the same secret, and the nodes' clocks must agree within 2 minutes"),
	E(R_SENDER_OK, 250, ENH_OK_ADDRESS, "Sender <%s> ok", NULL),
	E(R_RCPT_OK, 250, ENH_OK_DEST_VALID, "Recipient <%s> ok", NULL),
	E(R_SYNTAX_LINE_TOO_LONG, 500, ENH_PERM_LINE_TOO_LONG, "Line too long: a command line may be at most %zu octets",
		"The mail program sent a command longer than SMTP allows; it is ignored"),
	E(R_SYNTAX_BAD_BYTES, 500, ENH_PERM_SYNTAX, "Command refused: it contains control characters",
		"Commands must be plain text ending in CR LF"),
	E(R_UNKNOWN_COMMAND, 500, ENH_PERM_SYNTAX, "Unknown command \"%s\"", "Send HELP for the commands this server knows"),
	E(R_NOT_IMPLEMENTED, 502, ENH_PERM_INVALID_COMMAND, "%s is not supported here",
		"This server does not reveal lists or users; send to the address directly"),
	E(R_HELO_NEEDS_DOMAIN, 501, ENH_PERM_INVALID_ARGS, "%s needs your host name, e.g. \"EHLO client.example.org\"",
		"The mail program must give its host name after EHLO; most do this on their own"),
	E(R_NEED_HELO, 503, ENH_PERM_INVALID_COMMAND, "Send EHLO (or HELO) first", "The mail program must greet the server with EHLO before MAIL FROM"),
	E(R_NESTED_MAIL, 503, ENH_PERM_INVALID_COMMAND, "A sender is already set for this message", "Send RSET to start a new message, or go on with RCPT TO"),
	E(R_NEED_MAIL, 503, ENH_PERM_INVALID_COMMAND, "Send MAIL FROM first", "Give the sender with MAIL FROM:<address> before the recipients"),
	E(R_NO_RCPT_YET, 503, ENH_PERM_INVALID_COMMAND, "No recipients: there was no RCPT TO command before %s", "Give at least one recipient with RCPT TO:<address> before sending the message"),
	E(R_TOO_MANY_RCPTS, 452, ENH_TEMP_TOO_MANY_RCPTS, "Too many recipients: at most %u per message", "Send the rest in another message; those accepted so far are kept"),
	E(R_MSG_TOO_BIG_DECLARED, 552, ENH_PERM_TOO_BIG, "Message too big: it is %llu octets and the limit here is %llu", "Send a smaller message, e.g. share large files by link instead of attaching them"),
	E(R_MSG_TOO_BIG, 552, ENH_PERM_TOO_BIG, "Message too big: the limit here is %llu octets; the message was not accepted", "Send a smaller message, e.g. share large files by link instead of attaching them"),
	E(R_BARE_LINE_ENDING, 550, ENH_PERM_MEDIA, "Message refused: it contains %s line ends (a %s without %s); SMTP requires CR LF (RFC 5321 section 2.3.8)", "The sending program must end every line with CR LF; this protects against SMTP smuggling"),
	E(R_TEMP_SPOOL, 451, ENH_TEMP_SYSTEM, "Temporary failure: the message could not be stored", "Nothing was accepted; your mail program will try again later"),
	E(R_TEMP_COMMIT, 451, ENH_TEMP_SYSTEM, "Temporary failure: the message could not be stored safely", "Nothing was accepted; your mail program will try again later"),
	E(R_TOO_MANY_ERRORS, 421, ENH_TEMP_SECURITY, "%s Too many bad commands; closing the connection",
		"The mail program sent commands this server does not accept; check its outgoing server settings"),
	E(R_IDLE_TIMEOUT, 421, ENH_TEMP_BAD_CONNECTION, "%s Timeout: no command for %llu seconds; closing the connection",
		"Your mail program connects again by itself; if this keeps happening, check the network between it and the server"),
	E(R_TOO_MANY_CONNECTIONS, 421, ENH_TEMP_SECURITY, "%s Too many connections; try again later",
		"Nothing was lost: your mail program will try again in a few minutes"),
	E(R_TOO_MANY_FROM_IP, 421, ENH_TEMP_SECURITY, "%s Too many connections from your address (limit %llu); try again later",
		"Close other mail programs or devices sending from this address, or ask the administrator to raise [limits] connections_per_ip"),
	E(R_RESERVED_CONNECTIONS, 421, ENH_TEMP_SECURITY, "%s Server nearly full: the last connections are kept for clients that have none open; try again later",
		"Close other connections from your address (other mail programs or devices on the same network), or ask the administrator about [limits] connections"),
	/* Deadlines (net/deadline.c): RFC 3463 4.4.2 "bad connection", as for the idle timeout. */
	E(R_DEADLINE_LINE, 421, ENH_TEMP_BAD_CONNECTION, "%s Timeout: a command line took more than %llu seconds to arrive; closing the connection",
		"The connection is very slow or the client sends a byte at a time; your mail program connects again by itself"),
	E(R_DEADLINE_DATA_RATE, 421, ENH_TEMP_BAD_CONNECTION, "%s Timeout: the message arrives slower than %llu octets per second; closing the connection",
		"Nothing was accepted, your mail program sends it again later; if this keeps happening, check the network between it and the server"),
	E(R_DEADLINE_LOGIN, 421, ENH_TEMP_BAD_CONNECTION, "%s Timeout: no login within %llu seconds of connecting; closing the connection",
		"Set the mail program to log in on this port (authentication: normal password, security: STARTTLS or SSL/TLS)"),
	E(R_DEADLINE_SESSION, 421, ENH_TEMP_BAD_CONNECTION, "%s Session longer than %llu seconds; closing the connection",
		"Nothing accepted was lost: your mail program connects again by itself for the rest"),
	E(R_SHUTDOWN, 421, ENH_TEMP_NOT_ACCEPTING, "%s Service shutting down; try again later",
		"Nothing was lost: your mail program connects again when the server is back"),
	E(R_NO_DATA_ARG, 501, ENH_PERM_INVALID_ARGS, "DATA takes no argument",
		"Send DATA alone on its line"),
	E(R_BDAT_SYNTAX, 501, ENH_PERM_INVALID_ARGS, "The command must read BDAT <size> [LAST]",
		"For example BDAT 1024 LAST; the connection is closed because the bytes that follow cannot be told from commands"),
	E(R_BDAT_AFTER_FAILURE, 503, ENH_PERM_INVALID_COMMAND, "An earlier BDAT in this message failed; send RSET and start again",
		"Send RSET, then the message again"),
	E(R_DATA_AFTER_BDAT, 503, ENH_PERM_INVALID_COMMAND, "DATA cannot follow BDAT in the same message (RFC 3030)", "Send RSET to start again"),
	E(R_EIGHTBIT_NO_SMTPUTF8, 553, ENH_PERM_NON_ASCII, "The address <%s> is not ASCII and MAIL FROM had no SMTPUTF8 parameter", "The sending program must declare SMTPUTF8 to use such addresses"),
	E(R_STARTTLS_UNAVAILABLE, 502, ENH_PERM_INVALID_COMMAND, "STARTTLS is not offered on this port",
		"For an encrypted connection use the submission port: 587 with STARTTLS, or 465 with SSL/TLS"),
	E(R_AUTH_UNAVAILABLE, 502, ENH_PERM_INVALID_COMMAND, "AUTH is not offered on this port",
		"Log in on the submission port: 587 with STARTTLS, or 465 with SSL/TLS"),
	/* RFC 3207 */
	E(R_ALREADY_TLS, 503, ENH_PERM_INVALID_COMMAND, "TLS is already active",
		"The connection is already encrypted: go on with EHLO"),
	E(R_STARTTLS_ARG, 501, ENH_PERM_INVALID_ARGS, "STARTTLS takes no argument",
		"Send STARTTLS alone on its line"),
	/* RFC 4954 §4, §6 */
	E(R_AUTH_OK, 235, ENH_OK_SECURITY, "Authentication successful", NULL),
	E(R_AUTH_FAILED, 535, ENH_PERM_AUTH_INVALID, "Authentication credentials invalid: the user name or the password is wrong",
		"Use your full email address as the user name, with your password or an app password made for this device (your administrator creates one with: postern app-password add)"),
	E(R_AUTH_TEMPFAIL, 454, ENH_TEMP_SECURITY, "Temporary authentication failure; try again in a few minutes",
		"Nothing is wrong with your password: try again in a few minutes"),
	/* The login service could not read the account directory (a database that is down,
	 * slow, or whose connections are all busy): say so, so nobody changes a password. */
	E(R_AUTH_DIRECTORY_TEMPFAIL, 454, ENH_TEMP_SECURITY,
		"Temporary authentication failure: the account directory cannot be reached just now",
		"Nothing is wrong with your password: try again in a few minutes"),
	/* Throttling (auth/throttle.h): a block of one account from one address names the
	 * account, so the device with the stale password can be found; a block of the
	 * address (failures to several accounts) tells the innocent colleague that their
	 * password is not the problem. */
	E(R_AUTH_THROTTLED_ACCOUNT, 454, ENH_TEMP_SECURITY,
		"Too many failed logins as %s from your address: logging in to this account from here is blocked until %s",
		"A device that uses this account has a wrong password saved: correct it in every such device (other accounts are not blocked)"),
	E(R_AUTH_THROTTLED_ADDRESS, 454, ENH_TEMP_SECURITY,
		"Logging in from your address is blocked until %s: there were failed logins to several different accounts from it",
		"Your own password is not the problem: try again after that time, or from another network; the administrator sees the failed logins in the log"),
	E(R_AUTH_CANCELLED, 501, ENH_PERM_SECURITY, "Authentication cancelled by the client",
		"Log in again when you are ready"),
	E(R_AUTH_BAD_BASE64, 501, ENH_PERM_SYNTAX, "Cannot decode the response: it is not valid base64",
		"Choose \"normal password\" authentication in the mail program"),
	E(R_AUTH_MALFORMED, 501, ENH_PERM_SYNTAX, "The login data does not have the form the mechanism requires",
		"Choose \"normal password\" authentication in the mail program"),
	E(R_AUTH_AUTHZID, 535, ENH_PERM_AUTH_INVALID, "Logging in on behalf of another user is not supported", "Leave the authorization identity empty"),
	E(R_AUTH_TWICE, 503, ENH_PERM_INVALID_COMMAND, "Already logged in",
		"You are logged in: go on with MAIL FROM"),
	E(R_AUTH_IN_TX, 503, ENH_PERM_INVALID_COMMAND, "AUTH is not allowed during a mail transaction", "Send RSET first"),
	E(R_AUTH_NEEDS_STARTTLS, 530, ENH_PERM_SECURITY, "Must issue a STARTTLS command first: passwords are accepted only over an encrypted connection",
		"In your mail program set the outgoing server's security to STARTTLS (port 587) or SSL/TLS (port 465)"),
	E(R_AUTH_NEEDS_TLS_PORT, 538, ENH_PERM_ENCRYPTION_REQUIRED, "Encryption required: this port does not offer TLS, so it cannot accept passwords",
		"Use the submission port instead: 587 with STARTTLS, or 465 with SSL/TLS"),
	E(R_AUTH_UNKNOWN_MECH, 504, ENH_PERM_INVALID_ARGS, "Unrecognized authentication type: use PLAIN or LOGIN",
		"Choose \"normal password\" authentication in the mail program"),
	E(R_AUTH_NO_MECH, 501, ENH_PERM_INVALID_ARGS, "AUTH needs a mechanism: AUTH PLAIN or AUTH LOGIN",
		"Choose \"normal password\" authentication in the mail program"),
	E(R_AUTH_LINE_TOO_LONG, 500, ENH_PERM_LINE_TOO_LONG, "Authentication exchange line is too long",
		"Check the user name and password for pasted extra text; they are far longer than any real login"),
	/* RFC 5321 §4.3.2: a greeting is 220 or 554. */
	E(R_TLS_EXPECTED, 554, ENH_PERM_SECURITY, "%s No SMTP service in plaintext here: this port expects TLS from the first byte (RFC 8314)",
		"Set your mail program's security to SSL/TLS for this port, or use port 587 with STARTTLS"),
	E(R_RCPT_AFTER_REFUSED_MAIL, 503, ENH_PERM_INVALID_COMMAND, "No sender: MAIL FROM was refused (ref %s), so recipients cannot be given",
		"Fix what the MAIL FROM refusal says, then send the message again"),
	/* The server's own storage (RFC 3463 X.3.1 "mail system full"; RFC 5321 §4.2.2:
	 * 452 insufficient system storage, at MAIL and at the end of data). */
	E(R_NO_SPACE_MAIL, 452, ENH_TEMP_SYSTEM_FULL, "Insufficient system storage: this server is out of space for new mail and accepts none for now",
		"Nothing was accepted; your mail program will try again later (the server's administrator must free disk space)"),
	E(R_NO_SPACE_SIZE, 452, ENH_TEMP_SYSTEM_FULL, "Insufficient system storage: the message (%s, declared with SIZE) does not fit in the space this server has for new mail now",
		"Nothing was accepted; your mail program will try again later, or send a smaller message"),
	E(R_NO_SPACE_DATA, 452, ENH_TEMP_SYSTEM_FULL, "Insufficient system storage: this server ran out of space while storing the message",
		"Nothing was accepted; your mail program will try again later (the server's administrator must free disk space)"),
	E(R_BODY_8BIT_NOT_DECLARED, 554, ENH_PERM_MEDIA, "BINARYMIME content must be sent with BDAT, not DATA (RFC 3030)",
		"Send the message with BDAT, or declare BODY=8BITMIME instead of BINARYMIME"),
	/* RFC 3030 §2: the envelope is fixed once the first chunk went to the spool, so a
	 * recipient given later could not be delivered; refuse it rather than drop it. */
	E(R_CMD_AFTER_BDAT, 503, ENH_PERM_INVALID_COMMAND, "%s cannot come between the BDAT chunks of a message: its recipients were fixed by the first BDAT (RFC 3030)",
		"Give every recipient before the first BDAT; send the rest of this message with BDAT ... LAST, or RSET to start again"),
	/* Content rules, the same for DATA and BDAT; checked before the 250. */
	E(R_NUL_IN_MESSAGE, 550, ENH_PERM_MEDIA, "Message refused: it contains NUL bytes (octet zero), which mail may not carry (RFC 5322 section 4.1, RFC 2045 section 2.8)",
		"The sending program must encode binary content (base64); nothing was accepted"),
	E(R_MESSAGE_LINE_TOO_LONG, 550, ENH_PERM_MEDIA, "Message refused: line %llu is %llu octets long, and the limit here is %llu (the standard allows 998, RFC 5322 section 2.1.1)",
		"The sending program must wrap long lines or encode the text (quoted-printable or base64); nothing was accepted"),
	E(R_FROM_NOT_ONE, 550, ENH_PERM_MEDIA, "Message refused: it has %zu From: header fields, and a message has exactly one (RFC 5322 section 3.6)",
		"Check the program that created the message; nothing was accepted"),
	E(R_FROM_TOO_LONG, 550, ENH_PERM_MEDIA, "Message refused: its From: header field is longer than %zu octets, too long to check",
		"Send from one address, set in the account settings of your mail program; nothing was accepted"),
	E(R_TOO_MANY_REFUSED_RCPTS, 421, ENH_TEMP_SECURITY, "%s Too many unknown recipients (%u) on one connection; closing it",
		"Check the recipient addresses: this server does not let a client find out by trying which addresses exist; "
		"the administrator can raise [limits] refused_recipients"),
	E(R_FROM_TOO_MANY, 550, ENH_PERM_MEDIA, "Message refused: its From: header field lists more than %d addresses, too many to check",
		"Send from one address, set in the account settings of your mail program; nothing was accepted"),
	E(R_READY_TLS, 220, ENH_OK, "Ready to start TLS", NULL),   /* RFC 3207 §4 */
	/* The port-25 trap (wrong_port.c).  An mx listener takes mail for the local domains
	 * from other servers (RFC 5321); mail programs submit on the submission ports (RFC
	 * 6409, RFC 8314).  AUTH is never offered on mx, so it is a command not implemented
	 * here (RFC 5321 §4.2.4: 502; RFC 3463 X.5.1 "invalid command"), answered before any
	 * credentials are asked for or read.  The second %s is this server's submission
	 * ports ("465 with SSL/TLS, or 587 with STARTTLS"). */
	E(R_AUTH_WRONG_PORT, 502, ENH_PERM_INVALID_COMMAND,
		"AUTH is not offered on port %u: it is for mail from other mail servers\n"
		"Mail programs log in and send on this server's submission port: %s",
		"In your mail program set the outgoing server (SMTP) to that port and security, with authentication \"normal password\" and your full email address as the user name"),
	/* The relay refusal's hint on an mx listener: text %u this port, %s the ports. */
	E(R_RELAY_WRONG_PORT, 554, ENH_PERM_NOT_AUTHORIZED,
		"Port %u is for mail from other mail servers; mail programs send on this server's submission port: %s",
		"In your mail program set the outgoing server (SMTP) to that port and turn on \"My outgoing server (SMTP) requires authentication\""),
	/* A line of the 503 at DATA after such a refusal (explain503.c). */
	E(R_WRONG_PORT_503, 503, ENH_PERM_INVALID_COMMAND,
		"Wrong port: port %u is for mail from other mail servers; send on this server's submission port: %s, after logging in",
		"Change the outgoing server (SMTP) settings of the mail program"),
};

/* Verdicts made in the session; the hint "" adds no line (as a verdict's empty hint). */
struct verdict_entry {
	int code;
	const char *enh;
	const char *reason;   /* NULL: the caller gives it */
	const char *hint;
};

#define V(id, code, enh, reason, hint) [id] = { code, enh, reason, hint }

static const struct verdict_entry verdicts[VERDICT_ID_COUNT] = {
	/* MAIL and RCPT syntax (RFC 5321 §4.1.2; RFC 1869 §6: 555 for an unknown parameter) */
	V(V_MAIL_PARAM_UNKNOWN, 555, ENH_PERM_INVALID_ARGS, NULL, "Remove the parameter, or send EHLO to see the extensions this server offers"),
	V(V_MAIL_BAD_ADDRESS, 501, ENH_PERM_BAD_SENDER_SYNTAX, NULL, "Use MAIL FROM:<you@example.org>"),
	V(V_MAIL_SYNTAX, 501, ENH_PERM_INVALID_ARGS, NULL, "Use MAIL FROM:<you@example.org>"),
	V(V_RCPT_PARAM_UNKNOWN, 555, ENH_PERM_INVALID_ARGS, NULL, ""),
	V(V_RCPT_SYNTAX, 501, ENH_PERM_INVALID_ARGS, NULL, "Use RCPT TO:<someone@example.org>"),
	V(V_RCPT_BAD_ADDRESS, 501, ENH_PERM_BAD_MAILBOX_SYNTAX, NULL, "Use RCPT TO:<someone@example.org>"),
	/* RFC 6531 §3.4 */
	V(V_RCPT_NOT_ASCII, 553, ENH_PERM_NON_ASCII, "the address is not ASCII and MAIL FROM had no SMTPUTF8 parameter",
		"The sending program must declare SMTPUTF8 to use such addresses"),
	/* Remembered for the 503 only; the client got R_TOO_MANY_RCPTS. */
	V(V_TOO_MANY_RCPTS, 452, ENH_TEMP_TOO_MANY_RCPTS, "too many recipients", ""),
	/* The From: of a logged-in user's message (RFC 6409 §6.1) */
	V(V_FROM_BAD_ADDRESS, 550, ENH_PERM_MEDIA, NULL, "Set your name and email address in the account settings of your mail program"),
	V(V_DIRECTORY_TEMPFAIL, 451, ENH_TEMP_SYSTEM, "temporary failure: the user directory could not be read",
		"Your mail program will try again later"),
	/* DATA or BDAT with nothing to send: the text names every refusal (explain503.c) */
	V(V_NOTHING_TO_SEND, 503, ENH_PERM_INVALID_COMMAND, NULL, ""),
	/* A decision could not even be asked (session.c, session_decide) */
	V(V_DECISION_NO_MEMORY, 451, ENH_TEMP_SYSTEM, "temporary failure: the server is short of memory",
		"Nothing is lost: your mail program will try again later"),
	/* sendmail -f by a local user (serve/smtp.c, the local socket): the reason names who they are */
	V(V_LOCAL_SENDER_NOT_OWNED, 550, ENH_PERM_NOT_AUTHORIZED, NULL,
		"Leave out -f (the sender is then your own address), or send as root or the server's user, who may use any -f"),
};

void reply_verdict(struct verdict *v, enum verdict_id id, enum refusal_cause cause, const char *reason)
{
	assert(id >= 0 && id < VERDICT_ID_COUNT);
	const struct verdict_entry *e = &verdicts[id];
	verdict_set(v, e->code >= 500 ? VERDICT_PERM : VERDICT_TEMP, e->code, e->enh, cause,
		reason ? reason : e->reason, e->hint);
}

/* The cause id (data/explain.ini's fixed list, what `postern explain` names) of each
 * refusal in the catalogue, for the refusals metric; test_refusal_ids checks every row
 * against the knowledge base's own answer for the entry.  A refusal without a row
 * counts as "unknown". */
static const char *const refusal_cause_ids[REPLY_ID_COUNT] = {
	[R_SYNTAX_LINE_TOO_LONG] = "syntax_error", [R_SYNTAX_BAD_BYTES] = "syntax_error",
	[R_UNKNOWN_COMMAND] = "syntax_error", [R_NOT_IMPLEMENTED] = "syntax_error",
	[R_HELO_NEEDS_DOMAIN] = "syntax_error", [R_NO_DATA_ARG] = "syntax_error", [R_BDAT_SYNTAX] = "syntax_error",
	[R_STARTTLS_UNAVAILABLE] = "syntax_error", [R_AUTH_UNAVAILABLE] = "syntax_error",
	[R_STARTTLS_ARG] = "syntax_error", [R_AUTH_CANCELLED] = "syntax_error", [R_AUTH_BAD_BASE64] = "syntax_error",
	[R_AUTH_MALFORMED] = "syntax_error", [R_AUTH_UNKNOWN_MECH] = "syntax_error", [R_AUTH_LINE_TOO_LONG] = "syntax_error",
	[R_AUTH_NO_MECH] = "syntax_error", [R_NUL_IN_MESSAGE] = "syntax_error", [R_MESSAGE_LINE_TOO_LONG] = "syntax_error",
	[R_FROM_NOT_ONE] = "syntax_error", [R_FROM_TOO_LONG] = "syntax_error", [R_FROM_TOO_MANY] = "syntax_error",
	[R_NEED_HELO] = "command_sequence", [R_NESTED_MAIL] = "command_sequence", [R_NEED_MAIL] = "command_sequence",
	[R_NO_RCPT_YET] = "command_sequence", [R_BDAT_AFTER_FAILURE] = "command_sequence",
	[R_DATA_AFTER_BDAT] = "command_sequence", [R_ALREADY_TLS] = "command_sequence", [R_AUTH_TWICE] = "command_sequence",
	[R_AUTH_IN_TX] = "command_sequence", [R_RCPT_AFTER_REFUSED_MAIL] = "command_sequence",
	[R_CMD_AFTER_BDAT] = "command_sequence",
	[R_TOO_MANY_RCPTS] = "throttled", [R_TOO_MANY_ERRORS] = "throttled", [R_TOO_MANY_CONNECTIONS] = "throttled",
	[R_TOO_MANY_FROM_IP] = "throttled", [R_RESERVED_CONNECTIONS] = "throttled",
	[R_AUTH_THROTTLED_ACCOUNT] = "throttled", [R_AUTH_THROTTLED_ADDRESS] = "throttled",
	[R_MSG_TOO_BIG_DECLARED] = "message_too_large", [R_MSG_TOO_BIG] = "message_too_large",
	[R_TEMP_SPOOL] = "server_unavailable", [R_TEMP_COMMIT] = "server_unavailable", [R_IDLE_TIMEOUT] = "server_unavailable",
	[R_SHUTDOWN] = "server_unavailable", [R_DEADLINE_LINE] = "server_unavailable",
	[R_DEADLINE_DATA_RATE] = "server_unavailable", [R_DEADLINE_LOGIN] = "server_unavailable",
	[R_DEADLINE_SESSION] = "server_unavailable",
	[R_NO_SPACE_MAIL] = "server_storage_full", [R_NO_SPACE_SIZE] = "server_storage_full",
	[R_NO_SPACE_DATA] = "server_storage_full",
	[R_AUTH_FAILED] = "wrong_credentials", [R_AUTH_TEMPFAIL] = "server_unavailable", [R_AUTH_DIRECTORY_TEMPFAIL] = "server_unavailable", [R_AUTH_AUTHZID] = "wrong_credentials",
	[R_AUTH_NEEDS_STARTTLS] = "tls_required", [R_AUTH_NEEDS_TLS_PORT] = "tls_required",
	[R_TLS_EXPECTED] = "tls_mode_mismatch",
	[R_TOO_MANY_REFUSED_RCPTS] = "unknown_recipient",
	[R_EIGHTBIT_NO_SMTPUTF8] = "address_not_ascii",
	[R_BARE_LINE_ENDING] = "message_format", [R_BODY_8BIT_NOT_DECLARED] = "message_format",
	[R_AUTH_WRONG_PORT] = "wrong_port", [R_RELAY_WRONG_PORT] = "wrong_port", [R_WRONG_PORT_503] = "wrong_port",
	[R_LMTP_NEEDS_LHLO] = "syntax_error", [R_NODE_TOKEN_NEEDED] = "not_authenticated",
	[R_NODE_TOKEN_REFUSED] = "wrong_credentials",
};

const char *reply_cause_id(enum reply_id id)
{
	return (unsigned)id < REPLY_ID_COUNT && refusal_cause_ids[id] ? refusal_cause_ids[id] : "unknown";
}

const struct reply_entry *reply_get(enum reply_id id)
{
	assert((unsigned)id < REPLY_ID_COUNT && catalogue[id].code != 0);
	return &catalogue[id];
}

#define REPLY_LINE_MAX 512   /* RFC 5321 §4.5.3.1.5, CR LF included */

void reply_write(struct buf *out, int code, const char *enh, const char *text)
{
	assert(code >= 200 && code <= 599);
	assert(enh == NULL || (wire_enh_valid(enh) && enh[0] - '0' == code / 100));
	const char *p = text;
	for (;;) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);
		bool last = nl == NULL || nl[1] == '\0';
		char prefix[16];
		int pn = snprintf(prefix, sizeof(prefix), "%d%c%s%s", code, last ? ' ' : '-',
			enh ? enh : "", enh ? " " : "");
		size_t room = REPLY_LINE_MAX - 2 - (size_t)pn;
		if (n > room)
			n = room;
		buf_append(out, prefix, (size_t)pn);
		/* Reply text is ours, but may quote client bytes: never let CR/LF through. */
		for (size_t i = 0; i < n; i++) {
			char c = p[i];
			buf_appendc(out, (c == '\r' || c == '\n' || c == '\0') ? ' ' : c);
		}
		buf_append(out, "\r\n", 2);
		if (last)
			break;
		p = nl + 1;
	}
}

void reply_writef(struct buf *out, int code, const char *enh, const char *fmt, ...)
{
	char text[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	reply_write(out, code, enh, text);
}

void reply_vformat(char *text, size_t textsz, enum reply_id id, va_list ap)
{
	const struct reply_entry *e = reply_get(id);
	int n = vsnprintf(text, textsz, e->text, ap);
	if (n < 0)
		n = 0;
	if ((size_t)n >= textsz)
		n = (int)textsz - 1;
	size_t len = (size_t)n;
	if (e->hint && len < textsz)
		snprintf(text + len, textsz - len, "\n%s", e->hint);
}

void reply_vid(struct buf *out, const char *ref, char *summary, size_t summarysz,
	enum reply_id id, va_list ap)
{
	const struct reply_entry *e = reply_get(id);
	char text[2048];
	reply_vformat(text, sizeof(text), id, ap);
	if (summary && summarysz) {
		snprintf(summary, summarysz, "%s", text);
		summary[strcspn(summary, "\n")] = '\0';
	}
	size_t len = strlen(text);
	if (ref && len < sizeof(text))
		snprintf(text + len, sizeof(text) - len, " (ref %s)", ref);
	reply_write(out, e->code, e->enh, text);
}

void reply_vid_line(struct buf *out, enum reply_id id, va_list ap)
{
	const struct reply_entry *e = reply_get(id);
	char text[2048];
	int n = vsnprintf(text, sizeof(text), e->text, ap);
	if (n >= 0 && (size_t)n < sizeof(text) && e->hint)
		snprintf(text + n, sizeof(text) - (size_t)n, " - %s", e->hint);
	reply_write(out, e->code, e->enh, text);
}

void reply_id(struct buf *out, enum reply_id id, ...)
{
	va_list ap;
	va_start(ap, id);
	reply_vid(out, NULL, NULL, 0, id, ap);
	va_end(ap);
}
