/* The built-in text embedder: no model to download, deterministic, fast.
 *
 * Text is normalized (ASCII case folded, runs of whitespace collapsed to
 * one space, trimmed), cut into character n-grams of lengths
 * PO_NGRAM_MIN..PO_NGRAM_MAX, and each n-gram is added with a hash-derived
 * sign into one of PO_NGRAM_DIM dimensions (signed feature hashing); the
 * vector is then L2-normalized, so the dot product of two vectors is their
 * cosine similarity. */
#ifndef PO_NGRAM_H
#define PO_NGRAM_H

#include <stddef.h>

#define PO_NGRAM_DIM 512
#define PO_NGRAM_MIN 3
#define PO_NGRAM_MAX 5

/* The identifier stored with every vector this embedder makes; vectors of
 * different embedders are never compared. Changes whenever the output of
 * po_ngram_embed would change. */
#define PO_NGRAM_EMBEDDER_ID "ngram-3-5-512-v1"

/* Embeds text (len bytes, any bytes) into out[PO_NGRAM_DIM]. An empty or
 * all-space text gives the zero vector. Returns 0. */
int po_ngram_embed(const char *text, size_t len, float *out);

#endif
