/* parse.h - small, strict parsers for configuration values and protocol numbers. */
#ifndef POSTERN_UTIL_PARSE_H
#define POSTERN_UTIL_PARSE_H

#include <stdbool.h>
#include <string.h>
#include <stdint.h>
#include <stddef.h>

/* Decimal digits only, no sign, no overflow.  */
bool parse_u64(const char *s, size_t n, uint64_t *out);
/* "1234", "10K", "25M", "1G" (powers of 1024). */
bool parse_size(const char *s, uint64_t *out);
/* "30", "30s", "5m", "2h", "1d" -> seconds. */
bool parse_duration(const char *s, uint64_t *out);
/* "2ms", "1s", "0" -> milliseconds (a bare number other than 0 is refused: it
 * would read as seconds everywhere else). */
bool parse_duration_ms(const char *s, uint64_t *out);
/* "yes/no/true/false/on/off/1/0". */
bool parse_bool(const char *s, bool *out);
/* ASCII case-insensitive compare of n bytes. */
bool ascii_ieq(const char *a, const char *b, size_t n);
void ascii_lower(char *s);
/* 1536 -> "1.5 KB", 5242880 -> "5.0 MB", for messages to people.  Returns out. */
const char *format_size(uint64_t bytes, char *out, size_t outsz);

/* ASCII character classes, whatever the locale (ctype's answers depend on it). */
static inline bool ascii_is_alpha(unsigned char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static inline bool ascii_is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
/* atext of RFC 5322 §3.2.3 (ASCII only; a caller that allows UTF-8 adds c >= 0x80). */
static inline bool rfc5322_is_atext(unsigned char c)
{
	return ascii_is_alpha(c) || ascii_is_digit(c) || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* The value of one hexadecimal digit (either case), or -1. */
int parse_hex_digit(int c);

#endif
