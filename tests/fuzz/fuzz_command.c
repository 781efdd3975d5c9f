/* fuzz_command.c - smtp_command_parse on arbitrary bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/command.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *line = malloc(size ? size : 1);
	if (!line)
		return 0;
	memcpy(line, data, size);
	struct smtp_command c;
	enum smtp_command_status st = smtp_command_parse(line, size, &c);
	if (c.arg == NULL)
		abort();
	if (st == SMTP_CMD_OK) {
		if (c.verb >= SMTP_VERB_COUNT || c.verb_text != line || (c.verb_len == 0 && c.arg_len == 0))
			abort();
		if (c.arg < line || c.arg + c.arg_len > line + size)
			abort();
		if (c.verb_len > size)
			abort();
		/* no control bytes got through, and no trailing white space in the argument */
		for (size_t i = 0; i < size; i++)
			if (((unsigned char)line[i] < 0x20 && line[i] != '\t') || line[i] == 0x7f)
				abort();
		if (c.arg_len && (c.arg[c.arg_len - 1] == ' ' || c.arg[c.arg_len - 1] == '\t'))
			abort();
		(void)smtp_verb_name(c.verb);
	} else if (c.verb != SMTP_UNKNOWN) {
		abort();
	}
	free(line);
	return 0;
}
