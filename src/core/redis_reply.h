/* hiredis replies turned into po_redis_reply trees (one allocation each),
 * so that nothing past src/core/redis*.c sees a hiredis type. */
#ifndef PO_REDIS_REPLY_H
#define PO_REDIS_REPLY_H

#include "redis.h"

struct redisReply;

/* The tree of reply in one malloc'd block (free() it), or NULL when out of
 * memory. Types that only RESP3 has (never asked for here) map to the
 * nearest RESP2 type. */
po_redis_reply *po_redis_reply_from_hiredis(const struct redisReply *reply);

#endif
