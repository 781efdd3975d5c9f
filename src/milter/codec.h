/* codec.h - the Sendmail milter protocol, version 6 as Postfix speaks it, client
 * side, sans-I/O: bytes in, events out.  Encoders build the MTA's commands
 * (SMFIC_*), the reader frames a filter's byte stream into packets and decodes each
 * reply (SMFIR_*) into an event, strictly: every string NUL-terminated inside its
 * packet, every count checked, anything else a decode error in words.
 *
 * A packet on the wire (libmilter mfdef.h; Postfix milter8.c):
 *     uint32 length (network order, counting the command byte and the data)
 *     char   command
 *     data   length - 1 octets
 * A filter's packet is accepted up to MILTER_PACKET_MAX octets (command + data): the
 * client never offers SMFIP_MDS_256K/1M, so 64 KiB is the filter's limit too. */
#ifndef POSTERN_MILTER_CODEC_H
#define POSTERN_MILTER_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MILTER_VERSION 6               /* the version the client offers */
#define MILTER_VERSION_MIN 2           /* older filters are refused */
#define MILTER_PACKET_MAX 65536u       /* command byte + data, from a filter */
#define MILTER_BODY_CHUNK_MAX 65535u   /* SMFIC_BODY data */
#define MILTER_REPLY_MAX 1024          /* an 'y' reply, lines joined */
#define MILTER_SYMLISTS_MAX 7          /* one per macro stage */

/* Commands, MTA to filter (mfdef.h SMFIC_*). */
enum milter_cmd {
	MILTER_CMD_ABORT = 'A', MILTER_CMD_BODY = 'B', MILTER_CMD_CONNECT = 'C', MILTER_CMD_MACRO = 'D',
	MILTER_CMD_BODYEOB = 'E', MILTER_CMD_HELO = 'H', MILTER_CMD_QUIT_NC = 'K', MILTER_CMD_HEADER = 'L',
	MILTER_CMD_MAIL = 'M', MILTER_CMD_EOH = 'N', MILTER_CMD_OPTNEG = 'O', MILTER_CMD_QUIT = 'Q',
	MILTER_CMD_RCPT = 'R', MILTER_CMD_DATA = 'T', MILTER_CMD_UNKNOWN = 'U',
};

/* Replies, filter to MTA (mfdef.h SMFIR_*). */
enum milter_reply {
	MILTER_R_ADDRCPT = '+', MILTER_R_DELRCPT = '-', MILTER_R_ADDRCPT_PAR = '2', MILTER_R_SHUTDOWN = '4',
	MILTER_R_ACCEPT = 'a', MILTER_R_REPLBODY = 'b', MILTER_R_CONTINUE = 'c', MILTER_R_DISCARD = 'd',
	MILTER_R_CHGFROM = 'e', MILTER_R_CONN_FAIL = 'f', MILTER_R_ADDHEADER = 'h', MILTER_R_INSHEADER = 'i',
	MILTER_R_SETSYMLIST = 'l', MILTER_R_CHGHEADER = 'm', MILTER_R_PROGRESS = 'p', MILTER_R_QUARANTINE = 'q',
	MILTER_R_REJECT = 'r', MILTER_R_SKIP = 's', MILTER_R_TEMPFAIL = 't', MILTER_R_REPLYCODE = 'y',
	MILTER_R_OPTNEG = 'O',
};

/* Actions a filter may take (SMFIF_*), negotiated at OPTNEG. */
#define MILTER_F_ADDHDRS     0x001u
#define MILTER_F_CHGBODY     0x002u
#define MILTER_F_ADDRCPT     0x004u
#define MILTER_F_DELRCPT     0x008u
#define MILTER_F_CHGHDRS     0x010u
#define MILTER_F_QUARANTINE  0x020u
#define MILTER_F_CHGFROM     0x040u
#define MILTER_F_ADDRCPT_PAR 0x080u
#define MILTER_F_SETSYMLIST  0x100u
#define MILTER_F_ALL         0x1ffu

/* Protocol steps a filter may opt out of or not answer (SMFIP_*). */
#define MILTER_P_NOCONNECT   0x00000001u
#define MILTER_P_NOHELO      0x00000002u
#define MILTER_P_NOMAIL      0x00000004u
#define MILTER_P_NORCPT      0x00000008u
#define MILTER_P_NOBODY      0x00000010u
#define MILTER_P_NOHDRS      0x00000020u
#define MILTER_P_NOEOH       0x00000040u
#define MILTER_P_NR_HDR      0x00000080u   /* no reply to each header (SMFIP_NOHREPL) */
#define MILTER_P_NOUNKNOWN   0x00000100u
#define MILTER_P_NODATA      0x00000200u
#define MILTER_P_SKIP        0x00000400u   /* the MTA understands SMFIR_SKIP */
#define MILTER_P_RCPT_REJ    0x00000800u   /* the filter wants rejected recipients too */
#define MILTER_P_NR_CONN     0x00001000u
#define MILTER_P_NR_HELO     0x00002000u
#define MILTER_P_NR_MAIL     0x00004000u
#define MILTER_P_NR_RCPT     0x00008000u
#define MILTER_P_NR_DATA     0x00010000u
#define MILTER_P_NR_UNKN     0x00020000u
#define MILTER_P_NR_EOH      0x00040000u
#define MILTER_P_NR_BODY     0x00080000u
#define MILTER_P_HDR_LEADSPC 0x00100000u   /* header values with their leading space */
#define MILTER_P_MDS_256K    0x10000000u   /* larger data sizes: never offered */
#define MILTER_P_MDS_1M      0x20000000u
/* What the client offers: every step flag above, the size flags excepted. */
#define MILTER_P_OFFERED     0x001fffffu

/* Macro stages (SMFIM_*), as numbered in SMFIR_SETSYMLIST and the OPTNEG reply. */
enum milter_stage { MILTER_STAGE_CONNECT, MILTER_STAGE_HELO, MILTER_STAGE_MAIL, MILTER_STAGE_RCPT,
	MILTER_STAGE_DATA, MILTER_STAGE_EOM, MILTER_STAGE_EOH };

/* --- encoding ---------------------------------------------------------------------- */

/* An output buffer the caller owns: each encoder appends one whole packet or, when it
 * does not fit (or its data would be over the limits), nothing and returns false. */
struct milter_out {
	unsigned char *p;
	size_t len, cap;
};

bool milter_enc_optneg(struct milter_out *o, uint32_t version, uint32_t actions, uint32_t protocol);
/* SMFIC_MACRO: the command letter the macros belong to, then name/value pairs.
 * names[i] as sent ("j", "{auth_authen}"); a NULL value is sent as "". */
bool milter_enc_macro(struct milter_out *o, char cmd, const char *const *names, const char *const *values,
	size_t n);
/* SMFIC_CONNECT: hostname, family ('4', '6', 'L' local, 'U' unknown), and for '4'
 * and '6' the port (sent in network order) and the address; for 'L' the path as
 * address, port 0; for 'U' nothing more. */
bool milter_enc_connect(struct milter_out *o, const char *hostname, char family, unsigned port,
	const char *addr);
bool milter_enc_helo(struct milter_out *o, const char *helo);
/* SMFIC_MAIL / SMFIC_RCPT: argv[0] the address in <>, then ESMTP parameters, each
 * NUL-terminated. argc >= 1. */
bool milter_enc_mail(struct milter_out *o, const char *const *argv, size_t argc);
bool milter_enc_rcpt(struct milter_out *o, const char *const *argv, size_t argc);
bool milter_enc_header(struct milter_out *o, const char *name, const char *value);
bool milter_enc_body(struct milter_out *o, const void *p, size_t n);   /* n <= MILTER_BODY_CHUNK_MAX */
/* The commands without data: DATA, EOH, BODYEOB, ABORT, QUIT, QUIT_NC. */
bool milter_enc_bare(struct milter_out *o, char cmd);

/* --- decoding ---------------------------------------------------------------------- */

enum milter_ev_kind {
	MILTER_EV_ACCEPT, MILTER_EV_CONTINUE, MILTER_EV_DISCARD, MILTER_EV_REJECT, MILTER_EV_TEMPFAIL,
	MILTER_EV_REPLYCODE, MILTER_EV_QUARANTINE, MILTER_EV_PROGRESS, MILTER_EV_SKIP,
	MILTER_EV_ADDHEADER, MILTER_EV_INSHEADER, MILTER_EV_CHGHEADER, MILTER_EV_REPLBODY,
	MILTER_EV_ADDRCPT, MILTER_EV_ADDRCPT_PAR, MILTER_EV_DELRCPT, MILTER_EV_CHGFROM,
	MILTER_EV_SETSYMLIST, MILTER_EV_OPTNEG,
	MILTER_EV_SHUTDOWN, MILTER_EV_CONN_FAIL,   /* libmilter's own: a temporary failure */
};

struct milter_symlist {
	uint32_t stage;         /* enum milter_stage */
	const char *macros;     /* space-separated names, as the filter sent them */
};

/* One decoded reply.  Pointers point into the decoded packet (the reader's buffer):
 * valid until the next milter_reader_feed. */
struct milter_event {
	enum milter_ev_kind kind;
	char cmd;                      /* the reply letter */
	const char *name, *value;      /* headers; ADDRCPT, ADDRCPT_PAR, DELRCPT, CHGFROM: name = address,
	                                  value = ESMTP args or NULL; QUARANTINE: name = reason */
	uint32_t index;                /* INSHEADER: position; CHGHEADER: occurrence (1-based) */
	const unsigned char *data;     /* REPLBODY */
	size_t len;
	/* REPLYCODE, validated */
	int code;                      /* 421..599 */
	char enh[16];                  /* "5.7.1" or "" when the filter gave none */
	char reply[MILTER_REPLY_MAX];  /* as sent, lines joined with " " (codes of later lines dropped) */
	/* OPTNEG */
	uint32_t version, actions, protocol;
	struct milter_symlist symlists[MILTER_SYMLISTS_MAX];
	size_t n_symlists;
};

/* Decode one packet's command and data (the length prefix already removed).  False
 * with the reason in err ("unknown reply 'Z'", "header name not NUL-terminated"). */
bool milter_decode(char cmd, const unsigned char *data, size_t len, struct milter_event *ev, char *err,
	size_t errlen);

/* The reader: frames a byte stream into packets. */
struct milter_reader {
	unsigned char head[4];
	size_t head_len;
	uint32_t want;             /* the packet's length (command + data), once head is full */
	unsigned char *pkt;        /* MILTER_PACKET_MAX octets, owned */
	size_t pkt_len;
	bool failed;
};
enum milter_rd { MILTER_RD_MORE, MILTER_RD_EVENT, MILTER_RD_ERROR };

bool milter_reader_init(struct milter_reader *r);
void milter_reader_free(struct milter_reader *r);
/* Feed bytes: consumes at most up to the end of the current packet and sets *used.
 * MILTER_RD_EVENT: a whole packet was decoded into ev (feed the rest of the bytes
 * after looking at it); MILTER_RD_MORE: all bytes taken, the packet is not complete;
 * MILTER_RD_ERROR: the stream is broken (length 0 or over the limit, or the packet
 * does not decode) — err says how, and every later feed fails the same way. */
enum milter_rd milter_reader_feed(struct milter_reader *r, const void *p, size_t n, size_t *used,
	struct milter_event *ev, char *err, size_t errlen);

/* Check a filter's 'y' reply ("550 5.7.1 words", or lines joined by CR LF, each
 * "550-5.7.1 words" but the last): code 4xx or 5xx, every line the same code, an
 * enhanced code (when there is one) whose class is the code's first digit.  Fills
 * code, enh and the joined text; false with the reason in err. */
bool milter_reply_check(const char *s, int *code, char *enh, size_t enhsz, char *joined, size_t joinedsz,
	char *err, size_t errlen);

/* --- negotiation ------------------------------------------------------------------ */

/* What a filter's OPTNEG reply settles for the conversation. */
struct milter_nego {
	uint32_t version;          /* the lower of the filter's and ours */
	uint32_t actions;          /* MILTER_F_*: what the filter may do (what it asked, of what we offer) */
	uint32_t protocol;         /* MILTER_P_*: the steps it opted out of or does not answer */
	bool has_list[MILTER_SYMLISTS_MAX];   /* the filter named the macros it wants at a stage */
	char lists[MILTER_SYMLISTS_MAX][512]; /* those names, space-separated */
};
/* From the decoded OPTNEG reply (Postfix milter8.c: bits the MTA did not offer are
 * dropped, the size flags are ignored since no packet exceeds 64 KiB, a version above
 * ours speaks ours).  False with words when a macro list is too long. */
bool milter_negotiate(const struct milter_event *ev, uint32_t offered_actions, uint32_t offered_protocol,
	struct milter_nego *n, char *err, size_t errlen);
/* The flags of a command: the one that says it is not sent (SMFIP_NO*) and the one
 * that says it is not answered (SMFIP_NR_*); 0 when there is none. */
void milter_step_flags(char cmd, uint32_t *no_flag, uint32_t *nr_flag);
/* Does the filter want this command sent / answered?  cmd: 'C' 'H' 'M' 'R' 'T' 'L' 'N' 'B'. */
bool milter_nego_sends(const struct milter_nego *n, char cmd);
bool milter_nego_awaits(const struct milter_nego *n, char cmd);
/* Is macro `name` ("j", "{auth_authen}") wanted at the stage of command cmd?  True for
 * every name when the filter set no list for that stage. */
bool milter_nego_wants_macro(const struct milter_nego *n, char cmd, const char *name);

/* The name of a reply letter for words: "reject", "unknown reply 'Z'". */
const char *milter_ev_name(enum milter_ev_kind k);

#endif
