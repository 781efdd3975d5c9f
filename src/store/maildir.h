/* maildir.h - Maildir++ mailboxes as Dovecot reads them.
 *
 * Delivery writes tmp/<unique>, fsyncs it, renames it to
 * new/<unique>,S=<size>,W=<vsize> and fsyncs new/ (Dovecot's maildir-save does the
 * same).  Files use LF line ends; S= is the file size, W= the size with CRLF line
 * ends (what POP3 reports). */
#ifndef POSTERN_STORE_MAILDIR_H
#define POSTERN_STORE_MAILDIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum store_result { STORE_OK, STORE_TEMP, STORE_PERM };

/* Create path/{cur,new,tmp} (and path itself, and missing parents). */
bool maildir_create(const char *path, char *err, size_t errlen);

/* Deliver: `prefix` (LF-terminated header lines such as Return-Path and Delivered-To)
 * followed by `size` bytes read from fd at `offset`, with CRLF turned into LF.
 * Writes the new file's name (relative to path) into name_out. */
enum store_result maildir_deliver(const char *path, const char *prefix, int fd, off_t offset,
	uint64_t size, char *name_out, size_t name_outsz, char *err, size_t errlen);

#endif
