/*
 * seal: authenticated encryption of cached secret values under one process key.
 *
 * Every value the cache holds is kept sealed under a random key made at
 * start-up, with an AEAD chosen then by what the CPU does fast:
 *   - AES-256-GCM where the CPU has AES-NI and PCLMUL (libsodium's
 *     crypto_aead_aes256gcm_is_available()): subkey = HChaCha20(key,
 *     nonce[0..16)), GCM nonce = nonce[16..24) || 0^32;
 *   - XChaCha20-Poly1305 otherwise (which is HChaCha20 then ChaCha20-Poly1305
 *     the same way).
 * The 24-byte nonce is the context's 16 random bytes and a 64-bit seal counter
 * (below), so the GCM nonce is the counter: it never repeats under a subkey,
 * which is GCM's one rule (the deterministic construction of NIST SP 800-38D
 * 8.2.1; the 2^32-message bound of 8.3 is for random nonces and does not
 * apply), and a context stops sealing before the counter wraps (EOVERFLOW).
 * The subkey and the expanded GCM state are made on the stack for one call and
 * wiped, so nothing derived from the key outlives the guarded page. Measured
 * here (libsodium 1.0.18, ns per unseal, key open): 1 KiB 1,300 -> 950,
 * 64 KiB 48,500 -> 40,300; the subkey and GCM set-up cost ~100 ns of that.
 * (OpenSSL's GCM is faster at 64 KiB, ~23 us, but needs its key schedule in
 * OpenSSL's heap or ~1 us of set-up per call, and this file sees libsodium
 * only.)
 * The blob layout and sizes are the same for both. Blobs never leave the
 * process, so the choice is per context, not per blob.  The key sits in sodium_malloc() memory that is
 * PROT_NONE except between seal_key_open() and seal_key_close(); opening costs
 * an mprotect pair (~3 us, more than a decrypt), so callers open once per batch
 * of operations and use seal_seal()/seal_unseal(), which require the key open.
 * seal_seal_once()/seal_unseal_once() open and close around one operation for
 * cold paths.
 *
 * Blob layout:  counter (8) || ciphertext (padded plaintext) || tag (16)
 *
 * The 24-byte XChaCha20 nonce is the context's 16 random bytes (drawn with
 * the key) followed by a 64-bit counter the context increments for every
 * seal; only the counter is stored.  One key, one counter: no nonce repeats
 * under a key, which random nonces only make unlikely, and each blob costs
 * 16 bytes less (a 1 KiB value's blob is 1,052 bytes, not 1,068: with the
 * cache's version record that is a 1,120-byte malloc chunk instead of
 * 1,136).  A context is neither shared between processes nor used after a
 * fork (the agent never forks), so the counter cannot be replayed.
 *
 * The associated data binds a blob to its identity (ARN, VersionId) with
 * length-prefixed fields, so a blob moved to another entry fails to unseal.
 *
 * Plaintext is padded to a size class before sealing, with its true length
 * in a 4-byte trailer on top:  value || zeros || be32(length), where
 * value || zeros is a class:
 *   - powers of two from 64 B to 4 KiB, then
 *   - whole 4 KiB pages up to SEAL_MAX_PLAIN.
 * Why these classes: nearly all secrets (passwords, API keys, JSON credential
 * maps, PEM keys) are under 4 KiB, where only the size class leaks (7 classes)
 * and a value costs at most twice its size; the few large ones (certificate
 * chains, bundles) would double with pure powers of two, so above 4 KiB the
 * overhead is capped at one page and the length leaks only to 4 KiB.
 * Why the trailer is on top of the class rather than inside it: the common
 * sizes are powers of two (a 1 KiB or 4 KiB value), and a trailer inside
 * would push each of them into the next class, doubling both its memory and
 * its decryption time for 4 bytes.
 * Why a length trailer rather than sodium_pad()/sodium_unpad(): those run in
 * constant time over the whole block at ~2.2 ns/byte here, so unpadding a
 * 2 KiB block cost twice its decryption.  Constant time buys nothing here:
 * the tag is verified before the length is read, and the length is sent to
 * the client anyway.  The trailer is read in O(1).
 *
 * A seal_ctx is not thread-safe (the open count is a plain counter): use it
 * from one thread, the event loop.
 */
#ifndef SMC_SEAL_H
#define SMC_SEAL_H

#include <stddef.h>
#include <stdint.h>

#define SEAL_NONCEBYTES 8u   /* the stored part of the nonce: the counter */
#define SEAL_TAGBYTES   16u  /* crypto_aead_xchacha20poly1305_ietf_ABYTES */
#define SEAL_OVERHEAD   (SEAL_NONCEBYTES + SEAL_TAGBYTES)

/* Largest Secrets Manager secret value (SecretString or SecretBinary). */
#define SEAL_SECRET_MAX 65536u
/* Length trailer after the padded value. */
#define SEAL_TRAILERBYTES 4u
/* Largest plaintext, and its class: 17 pages, i.e. a maximal secret plus one
 * page for a header the caller may seal with it. */
#define SEAL_MAX_PLAIN  (SEAL_SECRET_MAX + 4096u)
/* Largest padded plaintext (class plus trailer): what seal_unseal() may need. */
#define SEAL_MAX_PADDED (SEAL_MAX_PLAIN + SEAL_TRAILERBYTES)
#define SEAL_MAX_BLOB   (SEAL_MAX_PADDED + SEAL_OVERHEAD)

/* Longest ARN or VersionId accepted in the associated data (IAM's ARN limit). */
#define SEAL_ID_MAX     2048u

typedef struct seal_ctx seal_ctx;

enum seal_aead {
	SEAL_AEAD_AUTO,			/* AES-256-GCM with AES-NI, else XChaCha20-Poly1305 */
	SEAL_AEAD_XCHACHA20POLY1305,
	SEAL_AEAD_AES256GCM,
};

/* Creates a context with a fresh random key (calls sodium_init()) and the AEAD
 * SEAL_AEAD_AUTO picks.  The key is left closed.  Returns NULL on failure
 * (errno set). */
seal_ctx *seal_ctx_new(void);
/* The same with a given AEAD; NULL with errno ENOTSUP for AES-256-GCM on a
 * CPU without AES-NI. */
seal_ctx *seal_ctx_new_aead(enum seal_aead aead);
/* The AEAD a context uses (never SEAL_AEAD_AUTO), and a name for logs. */
enum seal_aead seal_ctx_aead(const seal_ctx *s);
const char *seal_aead_name(enum seal_aead aead);

/* Wipes and frees the key; NULL is a no-op.  The key may be open or closed. */
void seal_ctx_free(seal_ctx *s);

/* Makes the key readable.  Nests: only the outermost open/close pair changes
 * page protection.  Returns 0, or -1 if mprotect failed (the key stays closed
 * and the open count unchanged). */
int seal_key_open(seal_ctx *s) __attribute__((warn_unused_result));

/* Undoes one seal_key_open(); the last close makes the key PROT_NONE again.
 * Closing a key that is not open is a programming error (assert). */
void seal_key_close(seal_ctx *s);

/* Current nesting depth (0 = closed). */
unsigned seal_key_depth(const seal_ctx *s);

/* Address of the key, for tests that check the page protection.  Never
 * dereference it outside such a test. */
const void *seal_key_addr(const seal_ctx *s);

/* The first 16 bytes of every nonce of this context (random, not secret), for
 * tests that rebuild the construction from the primitives. */
const unsigned char *seal_nonce_prefix(const seal_ctx *s);

/* Blob size for a plaintext of plain_len bytes; 0 if plain_len > SEAL_MAX_PLAIN. */
size_t seal_sealed_size(size_t plain_len);

/* Padded plaintext size: the output buffer seal_unseal() needs for a blob of
 * blob_len bytes.  0 if blob_len is not a size seal_seal() produces. */
size_t seal_plain_capacity(size_t blob_len);

/*
 * Seals plain[0..plain_len) for the entry (arn, version_id) into blob, which
 * holds blob_size >= seal_sealed_size(plain_len) bytes and must not overlap
 * plain.  The plaintext is padded inside blob and encrypted in place there, so
 * no temporary copy is made.  *blob_len (if not NULL) receives the blob length.
 * Requires the key open.  Returns 0, or -1 with errno EINVAL (too long,
 * buffer too small, identifier too long) or EOVERFLOW (2^64 seals under this
 * key) and blob zeroed.
 */
int seal_seal(seal_ctx *s, const char *arn, const char *version_id,
              const uint8_t *plain, size_t plain_len,
              uint8_t *blob, size_t blob_size, size_t *blob_len);

/*
 * Authenticates and decrypts blob for the entry (arn, version_id) into out,
 * which holds out_size >= seal_plain_capacity(blob_len) bytes (keep it in
 * locked memory).  On success *plain_len is the true length and
 * out[*plain_len .. seal_plain_capacity(blob_len)) are zero, so the value is
 * also NUL-terminated.  Requires the key open.  On failure returns -1 with
 * out[0..out_size) zeroed, *plain_len = 0 and errno EBADMSG (tampered blob or
 * wrong identity) or EINVAL (malformed length, buffer too small).
 */
int seal_unseal(seal_ctx *s, const char *arn, const char *version_id,
                const uint8_t *blob, size_t blob_len,
                uint8_t *out, size_t out_size, size_t *plain_len);

/* One-shot variants: open the key, do one operation, close it.  For cold paths
 * only (each costs an mprotect pair).  Same contract otherwise. */
int seal_seal_once(seal_ctx *s, const char *arn, const char *version_id,
                   const uint8_t *plain, size_t plain_len,
                   uint8_t *blob, size_t blob_size, size_t *blob_len);
int seal_unseal_once(seal_ctx *s, const char *arn, const char *version_id,
                     const uint8_t *blob, size_t blob_len,
                     uint8_t *out, size_t out_size, size_t *plain_len);

#endif /* SMC_SEAL_H */
