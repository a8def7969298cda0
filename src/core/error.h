/* Error codes shared by the whole engine.
 *
 * Every core function returns 0 on success or one of these negative codes,
 * and hands results back through out-parameters (the lmdb.h shape).
 * po_strerror() gives the text people read; po_errname() the stable short
 * name ("ETIMEDOUT") that Lua callers branch on. */
#ifndef PO_ERROR_H
#define PO_ERROR_H

enum po_error {
  PO_OK = 0,
  PO_ENOMEM = -1,     /* allocation failed */
  PO_EINVAL = -2,     /* invalid argument */
  PO_EIO = -3,        /* an operating-system call failed; errno has details */
  PO_ETIMEDOUT = -4,  /* a deadline passed */
  PO_ECANCELED = -5,  /* the operation was cancelled */
  PO_EJSON = -6,      /* malformed JSON */
  PO_ETOODEEP = -7,   /* nesting deeper than the documented limit */
  PO_ENOENT = -8,     /* no such item (timer already fired, file missing) */
  PO_EUNAVAIL = -9,   /* an optional system library could not be loaded */
  PO_ESTORE = -10,    /* the LMDB store failed (details from po_store_last_error) */
  PO_EMAPFULL = -11,  /* the store's map cannot grow any more */
  PO_ESCHEMA = -12,   /* the store was written by a newer schema version */
  PO_EPERM = -13,     /* permission denied (path not writable) */
  PO_EOUTSIDE = -14,     /* a path leads outside the directory it is confined to */
  PO_ECONNREFUSED = -15, /* the server refused the connection */
  PO_ECONN = -16,        /* a connection failed otherwise: reset, closed early, no such host */
  PO_ETLS = -17,         /* TLS handshake or certificate verification failed */
  PO_EREDIS = -18,       /* a Redis server answered with an error reply */
  PO_EAUTH = -19,        /* a server refused the credentials */
  PO_EUNSUPPORTED = -20, /* a feature this build or its libraries lack (rediss:// without TLS) */
};

/* Human-readable text for a PO_E... code; never NULL. */
const char *po_strerror(int code);

/* Stable short name for a PO_E... code ("ETIMEDOUT"); never NULL. */
const char *po_errname(int code);

#endif
