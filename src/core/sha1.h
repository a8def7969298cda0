/* SHA-1 (FIPS 180-4), for naming Lua scripts the way Redis does: EVALSHA
 * takes the hex SHA-1 of the script's text. Not for anything that needs a
 * secure hash. */
#ifndef PO_SHA1_H
#define PO_SHA1_H

#include <stddef.h>

/* Writes the 20-byte digest of data[0..len) into out. */
void po_sha1(const void *data, size_t len, unsigned char out[20]);

/* Writes the digest as 40 lower-case hex digits and a NUL into hex. */
void po_sha1_hex(const void *data, size_t len, char hex[41]);

#endif
