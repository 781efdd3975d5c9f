/* parse.h - the IMAP command parser: sans-I/O and incremental (RFC 3501 §9 syntax,
 * with LITERAL+ (RFC 7888), CONDSTORE/QRESYNC (RFC 7162), ESEARCH (RFC 4731),
 * SEARCHRES (RFC 5182), LIST-EXTENDED (RFC 5258), LIST-STATUS (RFC 5819),
 * SPECIAL-USE (RFC 6154), SASL-IR (RFC 4959), ID (RFC 2971), ENABLE (RFC 5161),
 * QUOTA (RFC 9208), MOVE (RFC 6851), UIDPLUS (RFC 4315), COMPRESS (RFC 4978)).
 *
 * The session feeds received bytes with imap_parser_feed(); it returns how many it
 * took and one event:
 *
 *   IMAP_EV_MORE      everything was taken; nothing to do yet;
 *   IMAP_EV_CONTINUE  a synchronising literal {N} was announced and fits: send
 *                     "+ Ready for literal data" (RFC 3501 §7.5), then feed on.
 *                     A non-synchronising {N+} never asks for one;
 *   IMAP_EV_COMMAND   a whole command (line and literals) was parsed: take it with
 *                     imap_parser_take() (the caller owns it: imap_cmd_free());
 *   IMAP_EV_LINE      a raw line, after imap_parser_expect_line() (an AUTHENTICATE
 *                     answer, IDLE's DONE): imap_parser_line();
 *   IMAP_EV_ERROR     the command cannot be parsed: imap_parser_error() says what
 *                     to answer (tagged when the tag was readable, else untagged
 *                     "* BAD"), with words naming what was wrong and where; when
 *                     .fatal the connection must close after the reply (a
 *                     non-synchronising literal too large to skip).
 *
 * Bounds: the line (without literals) IMAP_LINE_MAX; a literal IMAP_LITERAL_MAX,
 * except APPEND's message (IMAP_APPEND_LITERAL_MAX); IMAP_ARGS_MAX tokens;
 * parentheses and search keys nested IMAP_DEPTH_MAX deep.  A synchronising literal
 * over its bound is refused before the client sends it ("NO [TOOBIG]"); a line over
 * its bound is skipped to its end and answered BAD (fatal past IMAP_SKIP_MAX).  Everything a command holds is
 * allocated in its own arena: imap_cmd_free() releases it in one call.
 *
 * Mailbox names (and LIST patterns) are decoded from modified UTF-7 (RFC 3501
 * §5.1.3) to UTF-8 unless imap_parser_set_utf8() was called (UTF8=ACCEPT, RFC
 * 6855); "INBOX" in any case is returned as "INBOX" (RFC 3501 §5.1). */
#ifndef POSTERN_IMAP_PARSE_H
#define POSTERN_IMAP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define IMAP_LINE_MAX (64u << 10)
#define IMAP_SKIP_MAX (1u << 20)     /* an over-long line is skipped up to this, then the session ends */
#define IMAP_LITERAL_MAX (64u << 10)
#define IMAP_APPEND_LITERAL_MAX (64u << 20)
#define IMAP_ARGS_MAX 1000
#define IMAP_DEPTH_MAX 32
#define IMAP_TAG_MAX 63
#define IMAP_SEQ_STAR UINT32_MAX

enum imap_cmd_name {
	IMAP_CMD_NONE = 0,
	/* any state (RFC 3501 §6.1) */
	IMAP_CMD_CAPABILITY, IMAP_CMD_NOOP, IMAP_CMD_LOGOUT, IMAP_CMD_ID, IMAP_CMD_COMPRESS,
	/* not authenticated (§6.2) */
	IMAP_CMD_STARTTLS, IMAP_CMD_AUTHENTICATE, IMAP_CMD_LOGIN,
	/* authenticated (§6.3) */
	IMAP_CMD_ENABLE, IMAP_CMD_SELECT, IMAP_CMD_EXAMINE, IMAP_CMD_CREATE, IMAP_CMD_DELETE, IMAP_CMD_RENAME,
	IMAP_CMD_SUBSCRIBE, IMAP_CMD_UNSUBSCRIBE, IMAP_CMD_LIST, IMAP_CMD_LSUB, IMAP_CMD_STATUS, IMAP_CMD_APPEND,
	IMAP_CMD_NAMESPACE, IMAP_CMD_IDLE, IMAP_CMD_GETQUOTA, IMAP_CMD_GETQUOTAROOT, IMAP_CMD_SETQUOTA,
	/* selected (§6.4) */
	IMAP_CMD_CHECK, IMAP_CMD_CLOSE, IMAP_CMD_UNSELECT, IMAP_CMD_EXPUNGE, IMAP_CMD_SEARCH, IMAP_CMD_FETCH,
	IMAP_CMD_STORE, IMAP_CMD_COPY, IMAP_CMD_MOVE,
	/* not authenticated, for the nodes of a cluster only (docs/architecture.md) */
	IMAP_CMD_XCLIENT,
	IMAP_CMD_COUNT
};

/* A sequence set (RFC 3501 §9 sequence-set).  '*' is IMAP_SEQ_STAR; lo <= hi holds
 * for two numbers, and a range with '*' has hi = IMAP_SEQ_STAR (the caller
 * normalises with the current maximum: imap_seq_contains()).  "$" (RFC 5182) is
 * saved = true with n = 0. */
struct imap_seq { uint32_t lo, hi; };
struct imap_seqset { struct imap_seq *r; size_t n; bool saved; };

/* Is v in the set when '*' means max?  ("n:*" with n > max still holds max, RFC
 * 3501 §9: the range is taken in either order.) */
bool imap_seq_contains(const struct imap_seqset *s, uint32_t v, uint32_t max);

enum imap_fetch_att {
	FA_FLAGS, FA_INTERNALDATE, FA_RFC822_SIZE, FA_ENVELOPE, FA_BODYSTRUCTURE, FA_BODY /* no ext */,
	FA_UID, FA_MODSEQ, FA_RFC822, FA_RFC822_HEADER, FA_RFC822_TEXT, FA_BODY_SECTION /* BODY[..] / BODY.PEEK[..] */,
	FA_BINARY_SECTION /* BINARY[..] / BINARY.PEEK[..] (RFC 3516) */, FA_BINARY_SIZE,
};

enum imap_section_kind { SEC_ALL, SEC_HEADER, SEC_HEADER_FIELDS, SEC_HEADER_FIELDS_NOT, SEC_TEXT, SEC_MIME };

struct imap_section {
	uint32_t part[16]; size_t n_part;     /* 1.2.3 */
	enum imap_section_kind kind;
	char **fields; size_t n_fields;       /* HEADER.FIELDS (...), upper-cased as given */
};

struct imap_fetch_item {
	enum imap_fetch_att att;
	bool peek;
	struct imap_section sec;
	bool partial; uint32_t offset, length; /* <offset.length> */
};

enum imap_search_op {
	SK_ALL, SK_ANSWERED, SK_DELETED, SK_DRAFT, SK_FLAGGED, SK_NEW, SK_OLD, SK_RECENT, SK_SEEN,
	SK_UNANSWERED, SK_UNDELETED, SK_UNDRAFT, SK_UNFLAGGED, SK_UNSEEN,
	SK_KEYWORD, SK_UNKEYWORD,                      /* str */
	SK_BCC, SK_CC, SK_FROM, SK_SUBJECT, SK_TO,     /* str */
	SK_BODY, SK_TEXT,                              /* str */
	SK_HEADER,                                     /* str = field name, str2 = value */
	SK_BEFORE, SK_ON, SK_SINCE,                    /* date: 00:00 UTC of the day (INTERNALDATE) */
	SK_SENTBEFORE, SK_SENTON, SK_SENTSINCE,        /* date (Date: header) */
	SK_LARGER, SK_SMALLER,                         /* num */
	SK_SEQSET, SK_UID,                             /* set */
	SK_MODSEQ,                                     /* num; str = entry name or NULL, str2 = entry type */
	SK_NOT,                                        /* one child */
	SK_OR,                                         /* two children */
	SK_AND,                                        /* children (a parenthesised list, and the top) */
};

struct imap_search_key {
	enum imap_search_op op;
	char *str, *str2;
	time_t date;
	uint64_t num;
	struct imap_seqset set;
	struct imap_search_key *child; size_t n_child;
};

/* SEARCH RETURN options (RFC 4731, RFC 5182) */
enum { IMAP_SEARCH_RET_MIN = 1, IMAP_SEARCH_RET_MAX = 2, IMAP_SEARCH_RET_ALL = 4, IMAP_SEARCH_RET_COUNT = 8,
	IMAP_SEARCH_RET_SAVE = 16 };

/* STATUS items (RFC 3501 §6.3.10, RFC 7162 HIGHESTMODSEQ, RFC 8438 SIZE, RFC 9051 DELETED) */
enum { IMAP_STATUS_MESSAGES = 1, IMAP_STATUS_RECENT = 2, IMAP_STATUS_UIDNEXT = 4, IMAP_STATUS_UIDVALIDITY = 8,
	IMAP_STATUS_UNSEEN = 16, IMAP_STATUS_HIGHESTMODSEQ = 32, IMAP_STATUS_SIZE = 64, IMAP_STATUS_DELETED = 128 };

/* LIST selection options and return options (RFC 5258, RFC 6154, RFC 5819) */
enum { IMAP_LIST_SEL_SUBSCRIBED = 1, IMAP_LIST_SEL_REMOTE = 2, IMAP_LIST_SEL_RECURSIVEMATCH = 4,
	IMAP_LIST_SEL_SPECIAL_USE = 8 };
enum { IMAP_LIST_RET_SUBSCRIBED = 1, IMAP_LIST_RET_CHILDREN = 2, IMAP_LIST_RET_SPECIAL_USE = 4,
	IMAP_LIST_RET_STATUS = 8 };

enum imap_store_op { IMAP_STORE_SET, IMAP_STORE_ADD, IMAP_STORE_REMOVE };

struct imap_arena;

struct imap_cmd {
	char tag[IMAP_TAG_MAX + 1];
	enum imap_cmd_name name;
	bool uid;                       /* "UID FETCH" etc. */
	/* SELECT EXAMINE CREATE DELETE SUBSCRIBE UNSUBSCRIBE STATUS APPEND GETQUOTAROOT: the mailbox;
	 * RENAME: from (mailbox2: to); COPY MOVE: the destination.  UTF-8. */
	char *mailbox, *mailbox2;
	/* FETCH STORE COPY MOVE, UID EXPUNGE */
	struct imap_seqset set;
	struct {
		struct imap_fetch_item *items; size_t n;   /* macros ALL/FAST/FULL expanded */
		bool changedsince_given; uint64_t changedsince;
		bool vanished;                            /* UID FETCH only, with CHANGEDSINCE */
	} fetch;
	struct {
		enum imap_store_op op; bool silent;
		char **flags; size_t n_flags;             /* "\Seen", "$Forwarded", as given */
		bool unchangedsince_given; uint64_t unchangedsince;
	} store;
	struct {
		char *charset;                             /* NULL: none given (US-ASCII) */
		struct imap_search_key *key;               /* SK_AND of the keys */
		bool return_given; unsigned ret;           /* RETURN (...): ESEARCH; () means ALL */
	} search;
	struct {
		char **flags; size_t n_flags;
		bool date_given; time_t date;
		const char *data; size_t len;              /* the message (in the arena) */
	} append;
	struct {
		char *reference;
		char **patterns; size_t n_patterns;
		bool extended;                             /* selection options, several patterns or RETURN */
		unsigned select_opts, return_opts;
		unsigned status_items;                     /* RETURN (STATUS (...)) */
	} list;
	unsigned status_items;                         /* STATUS */
	struct { char **caps; size_t n; } enable;      /* upper-cased */
	struct { char **pairs; size_t n_pairs; } id;   /* key, value alternating (value NULL = NIL); NIL: n_pairs 0 */
	struct {
		bool condstore, qresync;
		uint32_t uidvalidity; uint64_t modseq;     /* QRESYNC */
		bool known_uids_given; struct imap_seqset known_uids;
		bool match_given; struct imap_seqset seq_match, uid_match;
	} select;
	struct { char *mech; bool has_initial; char *initial; } auth;   /* upper-cased mech; initial "=" is "" */
	struct { char *user, *pass; size_t pass_len; } login;
	struct { char *token, *addr, *login; } xclient;   /* XCLIENT token address login */
	char *quota_root;                              /* GETQUOTA, SETQUOTA */
	char *compress;                                /* COMPRESS: the mechanism, upper-cased */
	struct imap_arena *arena;
};

void imap_cmd_free(struct imap_cmd **c);
const char *imap_cmd_label(enum imap_cmd_name n);   /* "FETCH" ... */

enum imap_event { IMAP_EV_MORE, IMAP_EV_CONTINUE, IMAP_EV_COMMAND, IMAP_EV_LINE, IMAP_EV_ERROR };

struct imap_parse_error {
	char tag[IMAP_TAG_MAX + 1];     /* "" when no tag could be read: answer "* BAD" */
	bool no;                        /* answer NO (TOOBIG), else BAD */
	const char *code;               /* RFC 5530 / RFC 9051 response code, or NULL */
	char text[320];                 /* what was wrong and where (client text escaped) */
	bool fatal;                     /* close after replying */
};

struct imap_parser;

struct imap_parser *imap_parser_new(void);
void imap_parser_free(struct imap_parser **p);
void imap_parser_set_utf8(struct imap_parser *p, bool utf8_accept);
/* The next input is one raw line (an AUTHENTICATE answer, IDLE's DONE), bounded by
 * IMAP_LINE_MAX; it comes back as IMAP_EV_LINE. */
void imap_parser_expect_line(struct imap_parser *p);
size_t imap_parser_feed(struct imap_parser *p, const void *data, size_t n, enum imap_event *ev);
struct imap_cmd *imap_parser_take(struct imap_parser *p);            /* after IMAP_EV_COMMAND */
const struct imap_parse_error *imap_parser_error(const struct imap_parser *p);
const char *imap_parser_line(const struct imap_parser *p, size_t *n); /* after IMAP_EV_LINE */
/* A line is partly received (not inside a literal). */
bool imap_parser_pending(const struct imap_parser *p);
/* Literal octets are being received (the transport's data-rate deadline applies, not
 * the line's). */
bool imap_parser_in_literal(const struct imap_parser *p);
/* Parse one complete command held in memory (the line without its final CRLF, with
 * literals inline as "{N}\r\n" + N octets) - the tables of the unit tests use it. */
enum imap_event imap_parse_command(struct imap_parser *p, const char *text, size_t n);

/* Modified UTF-7 (RFC 3501 §5.1.3) <-> UTF-8.  False: not valid (or does not fit). */
bool imap_mutf7_decode(const char *in, size_t n, char *out, size_t outsz);
bool imap_mutf7_encode(const char *utf8, size_t n, char *out, size_t outsz);

/* RFC 3501 date-time "dd-Mon-yyyy hh:mm:ss +zzzz" / date "d-Mon-yyyy" (UTC midnight). */
bool imap_parse_datetime(const char *s, size_t n, time_t *out);
bool imap_parse_date(const char *s, size_t n, time_t *out);

#endif
