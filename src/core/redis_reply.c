#include "redis_reply.h"

#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>

static int is_array(const redisReply *r) {
  return r->type == REDIS_REPLY_ARRAY || (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_STATUS &&
                                          r->type != REDIS_REPLY_ERROR && r->type != REDIS_REPLY_INTEGER &&
                                          r->type != REDIS_REPLY_NIL && r->element);
}

static void measure(const redisReply *r, size_t *nodes, size_t *bytes) {
  (*nodes)++;
  if (is_array(r)) {
    for (size_t i = 0; i < r->elements; i++) measure(r->element[i], nodes, bytes);
  } else if (r->str) {
    *bytes += r->len + 1;
  }
}

static int map_type(const redisReply *r) {
  switch (r->type) {
  case REDIS_REPLY_NIL: return PO_REDIS_NIL;
  case REDIS_REPLY_INTEGER: return PO_REDIS_INTEGER;
  case REDIS_REPLY_STRING: return PO_REDIS_STRING;
  case REDIS_REPLY_STATUS: return PO_REDIS_STATUS;
  case REDIS_REPLY_ERROR: return PO_REDIS_ERROR;
  default:
    if (is_array(r)) return PO_REDIS_ARRAY;
    return r->str ? PO_REDIS_STRING : PO_REDIS_INTEGER; /* RESP3 double, bignum, bool */
  }
}

/* Fills node from r; children go at *next_node, strings at *next_byte. */
static void fill(po_redis_reply *node, const redisReply *r, po_redis_reply **next_node, char **next_byte) {
  memset(node, 0, sizeof *node);
  node->type = map_type(r);
  if (node->type == PO_REDIS_ARRAY) {
    po_redis_reply *kids = *next_node;
    *next_node += r->elements;
    node->n = r->elements;
    node->elements = kids;
    for (size_t i = 0; i < r->elements; i++) fill(&kids[i], r->element[i], next_node, next_byte);
    return;
  }
  node->integer = r->integer;
  if (r->str && node->type != PO_REDIS_INTEGER) {
    memcpy(*next_byte, r->str, r->len);
    (*next_byte)[r->len] = '\0';
    node->str = *next_byte;
    node->len = r->len;
    *next_byte += r->len + 1;
  }
}

po_redis_reply *po_redis_reply_from_hiredis(const redisReply *reply) {
  size_t nodes = 0, bytes = 0;
  measure(reply, &nodes, &bytes);
  po_redis_reply *tree = malloc(nodes * sizeof *tree + bytes);
  if (!tree) return NULL;
  po_redis_reply *next_node = tree + 1;
  char *next_byte = (char *)(tree + nodes);
  fill(tree, reply, &next_node, &next_byte);
  return tree;
}
