#include "error.h"

const char *po_strerror(int code) {
  switch (code) {
  case PO_OK: return "success";
  case PO_ENOMEM: return "out of memory";
  case PO_EINVAL: return "invalid argument";
  case PO_EIO: return "input/output error";
  case PO_ETIMEDOUT: return "timed out";
  case PO_ECANCELED: return "canceled";
  case PO_EJSON: return "malformed JSON";
  case PO_ETOODEEP: return "nesting too deep";
  case PO_ENOENT: return "no such item";
  case PO_EUNAVAIL: return "library not available";
  case PO_ESTORE: return "store failure";
  case PO_EMAPFULL: return "store map full";
  case PO_ESCHEMA: return "store written by a newer version of poengine";
  case PO_EPERM: return "permission denied";
  case PO_EOUTSIDE: return "path leads outside the root";
  case PO_ECONNREFUSED: return "connection refused";
  case PO_ECONN: return "connection failed";
  case PO_ETLS: return "TLS failure";
  case PO_EREDIS: return "Redis error reply";
  case PO_EAUTH: return "authentication refused";
  case PO_EUNSUPPORTED: return "not supported by this build";
  default: return "unknown error";
  }
}

const char *po_errname(int code) {
  switch (code) {
  case PO_OK: return "OK";
  case PO_ENOMEM: return "ENOMEM";
  case PO_EINVAL: return "EINVAL";
  case PO_EIO: return "EIO";
  case PO_ETIMEDOUT: return "ETIMEDOUT";
  case PO_ECANCELED: return "ECANCELED";
  case PO_EJSON: return "EJSON";
  case PO_ETOODEEP: return "ETOODEEP";
  case PO_ENOENT: return "ENOENT";
  case PO_EUNAVAIL: return "EUNAVAIL";
  case PO_ESTORE: return "ESTORE";
  case PO_EMAPFULL: return "EMAPFULL";
  case PO_ESCHEMA: return "ESCHEMA";
  case PO_EPERM: return "EPERM";
  case PO_EOUTSIDE: return "EOUTSIDE";
  case PO_ECONNREFUSED: return "ECONNREFUSED";
  case PO_ECONN: return "ECONN";
  case PO_ETLS: return "ETLS";
  case PO_EREDIS: return "EREDIS";
  case PO_EAUTH: return "EAUTH";
  case PO_EUNSUPPORTED: return "EUNSUPPORTED";
  default: return "EUNKNOWN";
  }
}
