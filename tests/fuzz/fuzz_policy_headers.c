/*
 * libFuzzer target for policy_headers_parse(): the input is a message as
 * received, in an exactly-sized buffer so ASan sees any read past its end.
 * Oracle: limits hold (mailbox count, string lengths, NUL-terminated),
 * domains carry no ASCII upper case and no control octet, a From: field
 * yields mailboxes or an error (never both, never neither), a second
 * parse gives the same result, and each mailbox written back as
 * "From: <local@domain>" parses to itself.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_mailbox(const struct policy_mailbox *m)
{
	size_t l = strnlen(m->local, sizeof m->local), d = strnlen(m->domain, sizeof m->domain);

	if (l == 0 || l >= sizeof m->local || d == 0 || d >= sizeof m->domain)
		__builtin_trap();
	for (size_t i = 0; i < d; i++) {
		unsigned char c = (unsigned char)m->domain[i];
		if ((c >= 'A' && c <= 'Z') || (c < 0x20 && c != '\t') || c == 0x7f)
			__builtin_trap();
	}
	for (size_t i = 0; i < l; i++) {
		unsigned char c = (unsigned char)m->local[i];
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			__builtin_trap();
	}
}

static int same_mailbox(const struct policy_mailbox *a, const struct policy_mailbox *b)
{
	return strcmp(a->local, b->local) == 0 && strcmp(a->domain, b->domain) == 0;
}

static void round_trip(const struct policy_mailbox *m)
{
	char text[sizeof m->local + sizeof m->domain + 16];
	struct policy_headers h;
	int n = snprintf(text, sizeof text, "From: <%s@%s>\r\n\r\n", m->local, m->domain);

	if (n < 0 || (size_t)n >= sizeof text)
		__builtin_trap();
	if (policy_headers_parse(text, (size_t)n, &h) < 0)
		return;
	if (h.from_error != NULL || h.nfrom != 1 || !same_mailbox(&h.from[0], m))
		__builtin_trap();
	policy_headers_clear(&h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct policy_headers a, b;
	char *copy = malloc(size ? size : 1);

	if (copy == NULL)
		return 0;
	memcpy(copy, data, size);
	if (policy_headers_parse(copy, size, &a) < 0) {
		free(copy);
		return 0;
	}
	if (a.nfrom > POLICY_HEADER_MAILBOXES_MAX || (a.nfrom > 0) != (a.from != NULL))
		__builtin_trap();
	if (a.from_fields == 0 && (a.nfrom != 0 || a.from_error != NULL))
		__builtin_trap();
	if (a.from_fields > 0 && !a.too_large && (a.nfrom > 0) == (a.from_error != NULL))
		__builtin_trap();
	if (a.sender_fields == 0 && a.sender_error != NULL)
		__builtin_trap();
	for (size_t i = 0; i < a.nfrom; i++)
		check_mailbox(&a.from[i]);
	if (a.sender_fields > 0 && !a.too_large && a.sender_error == NULL)
		check_mailbox(&a.sender);

	if (policy_headers_parse(copy, size, &b) == 0) {
		if (a.from_fields != b.from_fields || a.sender_fields != b.sender_fields ||
		    a.too_large != b.too_large || a.nfrom != b.nfrom ||
		    a.from_error != b.from_error || a.sender_error != b.sender_error)
			__builtin_trap();
		for (size_t i = 0; i < a.nfrom; i++)
			if (!same_mailbox(&a.from[i], &b.from[i]))
				__builtin_trap();
		if (a.sender_error == NULL && !same_mailbox(&a.sender, &b.sender))
			__builtin_trap();
		policy_headers_clear(&b);
	}
	free(copy);
	for (size_t i = 0; i < a.nfrom; i++)
		round_trip(&a.from[i]);
	policy_headers_clear(&a);
	return 0;
}
