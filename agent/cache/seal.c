/*
 * seal: AEAD sealing of cached values under a guarded process key (AES-256-GCM
 * on a per-blob subkey where the CPU has AES-NI, XChaCha20-Poly1305 otherwise),
 * with identity-bound associated data and size-class padding.
 * See seal.h for the blob layout, the choice of AEAD and the padding scheme.
 */
#include "seal.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#define SEAL_MIN_CLASS  64u
#define SEAL_PAGE       4096u

/* The nonce: NONCE_PREFIX random bytes of the context, then the stored counter. */
#define NONCE_PREFIX (crypto_aead_xchacha20poly1305_ietf_NPUBBYTES - SEAL_NONCEBYTES)
_Static_assert(SEAL_NONCEBYTES == 8, "the stored nonce is a 64-bit counter");
_Static_assert(crypto_aead_xchacha20poly1305_ietf_NPUBBYTES == 24, "XChaCha20 nonce size");
_Static_assert(SEAL_TAGBYTES == crypto_aead_xchacha20poly1305_ietf_ABYTES, "tag size");
_Static_assert(SEAL_MAX_PLAIN % SEAL_PAGE == 0, "largest class is whole pages");

/* Associated data: a fixed context label, then each identifier as a 32-bit
 * big-endian length and its bytes.  The label keeps these blobs apart from
 * any other use of the key format; the lengths make ("ab","c") and ("a","bc")
 * different. */
static const char ad_label[] = "smcache/seal/v1";
#define AD_LABEL_LEN (sizeof ad_label - 1)
#define AD_MAX       (AD_LABEL_LEN + 4 + SEAL_ID_MAX + 4 + SEAL_ID_MAX)

_Static_assert(crypto_aead_aes256gcm_KEYBYTES == crypto_aead_xchacha20poly1305_ietf_KEYBYTES,
    "one key size for both AEADs");
_Static_assert(crypto_core_hchacha20_KEYBYTES == crypto_aead_xchacha20poly1305_ietf_KEYBYTES &&
    crypto_core_hchacha20_OUTPUTBYTES == crypto_aead_aes256gcm_KEYBYTES, "subkey sizes");
_Static_assert(crypto_core_hchacha20_INPUTBYTES == NONCE_PREFIX && NONCE_PREFIX + 8 == 24 &&
    crypto_aead_aes256gcm_NPUBBYTES == 12 && crypto_aead_aes256gcm_ABYTES == SEAL_TAGBYTES,
    "the AES-256-GCM nonce split of the 24-byte nonce field");

struct seal_ctx {
	unsigned char *key;   /* sodium_malloc'd; PROT_NONE while depth == 0 */
	unsigned       depth; /* seal_key_open() nesting */
	uint64_t       seals; /* the counter: seals made under this key */
	unsigned char  prefix[NONCE_PREFIX]; /* random, not secret */
	enum seal_aead aead;  /* never SEAL_AEAD_AUTO */
};

seal_ctx *
seal_ctx_new(void)
{
	return seal_ctx_new_aead(SEAL_AEAD_AUTO);
}

seal_ctx *
seal_ctx_new_aead(enum seal_aead aead)
{
	seal_ctx *s;
	int saved;

	if (sodium_init() < 0) {
		errno = EIO;
		return NULL;
	}
	if (aead == SEAL_AEAD_AUTO)
		aead = crypto_aead_aes256gcm_is_available() ? SEAL_AEAD_AES256GCM :
		    SEAL_AEAD_XCHACHA20POLY1305;
	if (aead != SEAL_AEAD_XCHACHA20POLY1305 && (aead != SEAL_AEAD_AES256GCM ||
	    !crypto_aead_aes256gcm_is_available())) {
		errno = ENOTSUP;
		return NULL;
	}
	if ((s = calloc(1, sizeof *s)) == NULL)
		return NULL;
	s->aead = aead;
	if ((s->key = sodium_malloc(crypto_aead_xchacha20poly1305_ietf_KEYBYTES)) == NULL)
		goto fail;
	crypto_aead_xchacha20poly1305_ietf_keygen(s->key);	/* 32 random bytes, for either */
	randombytes_buf(s->prefix, sizeof s->prefix);
	if (sodium_mprotect_noaccess(s->key) != 0)
		goto fail;
	return s;

fail:
	saved = errno;
	sodium_free(s->key); /* NULL-safe; wipes before unmapping */
	free(s);
	errno = saved;
	return NULL;
}

void
seal_ctx_free(seal_ctx *s)
{
	if (s == NULL)
		return;
	/* sodium_free() makes the pages writable, wipes and unmaps them. */
	sodium_free(s->key);
	free(s);
}

int
seal_key_open(seal_ctx *s)
{
	assert(s != NULL);
	if (s->depth == UINT_MAX) {
		errno = EOVERFLOW;
		return -1;
	}
	if (s->depth == 0 && sodium_mprotect_readonly(s->key) != 0)
		return -1;
	s->depth++;
	return 0;
}

void
seal_key_close(seal_ctx *s)
{
	assert(s != NULL);
	assert(s->depth > 0 && "seal_key_close without seal_key_open");
	if (s->depth == 0)
		return;
	/* If mprotect fails here (ENOMEM: too many mappings) the key merely stays
	 * readable until the next close; nothing else depends on it. */
	if (--s->depth == 0)
		(void)sodium_mprotect_noaccess(s->key);
}

unsigned
seal_key_depth(const seal_ctx *s)
{
	return s->depth;
}

const void *
seal_key_addr(const seal_ctx *s)
{
	return s->key;
}

const unsigned char *
seal_nonce_prefix(const seal_ctx *s)
{
	return s->prefix;
}

enum seal_aead
seal_ctx_aead(const seal_ctx *s)
{
	return s->aead;
}

const char *
seal_aead_name(enum seal_aead aead)
{
	switch (aead) {
	case SEAL_AEAD_AES256GCM:
		return "AES-256-GCM (HChaCha20 subkey per value)";
	case SEAL_AEAD_XCHACHA20POLY1305:
		return "XChaCha20-Poly1305";
	default:
		return "auto";
	}
}

/*
 * AES-256-GCM (see seal.h): subkey = HChaCha20(key, nonce[0..16)), GCM nonce =
 * nonce[16..24) (the seal counter) || 4 zero bytes. The subkey and its
 * expanded state live on the stack for one call and are wiped before it
 * returns. 0, or -1 (a tag that does not verify; the caller wipes out).
 */
static int
gcm_crypt(const seal_ctx *s, int decrypt, unsigned char *out, const unsigned char *in,
          size_t in_len, const unsigned char *ad, size_t ad_len, const unsigned char *nonce)
{
	crypto_aead_aes256gcm_state st;
	unsigned char subkey[crypto_aead_aes256gcm_KEYBYTES];
	unsigned char npub[crypto_aead_aes256gcm_NPUBBYTES] = { 0 };
	unsigned long long n;
	int rc;

	crypto_core_hchacha20(subkey, nonce, s->key, NULL);
	memcpy(npub, nonce + crypto_core_hchacha20_INPUTBYTES, 8);
	rc = crypto_aead_aes256gcm_beforenm(&st, subkey);
	sodium_memzero(subkey, sizeof subkey);
	if (rc == 0) {
		if (decrypt)
			rc = crypto_aead_aes256gcm_decrypt_afternm(out, &n, NULL, in, in_len, ad,
			    ad_len, npub, &st);
		else
			rc = crypto_aead_aes256gcm_encrypt_afternm(out, &n, in, in_len, ad, ad_len,
			    NULL, npub, &st);
	}
	sodium_memzero(&st, sizeof st);
	if (rc == 0 && n != (decrypt ? in_len - SEAL_TAGBYTES : in_len + SEAL_TAGBYTES))
		rc = -1;
	return rc == 0 ? 0 : -1;
}

/* Padded size for a plaintext of len <= SEAL_MAX_PLAIN bytes: its class (the
 * smallest power of two >= 64 that holds it up to a page, else whole pages)
 * plus the trailer. */
static size_t
padded_size(size_t len)
{
	size_t b;

	if (len > SEAL_PAGE)
		return (len + SEAL_PAGE - 1) / SEAL_PAGE * SEAL_PAGE + SEAL_TRAILERBYTES;
	for (b = SEAL_MIN_CLASS; b < len; b <<= 1)
		;
	return b + SEAL_TRAILERBYTES;
}

/* Whether n is a padded length seal_seal() produces: a class plus the trailer. */
static int
padded_valid(size_t n)
{
	if (n < SEAL_MIN_CLASS + SEAL_TRAILERBYTES || n > SEAL_MAX_PADDED)
		return 0;
	n -= SEAL_TRAILERBYTES;
	if (n <= SEAL_PAGE)
		return (n & (n - 1)) == 0;
	return n % SEAL_PAGE == 0;
}

size_t
seal_sealed_size(size_t plain_len)
{
	if (plain_len > SEAL_MAX_PLAIN)
		return 0;
	return SEAL_OVERHEAD + padded_size(plain_len);
}

size_t
seal_plain_capacity(size_t blob_len)
{
	if (blob_len < SEAL_OVERHEAD || !padded_valid(blob_len - SEAL_OVERHEAD))
		return 0;
	return blob_len - SEAL_OVERHEAD;
}

static void
put_be32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

static void
put_be64(unsigned char *p, uint64_t v)
{
	put_be32(p, (uint32_t)(v >> 32));
	put_be32(p + 4, (uint32_t)v);
}

/* The full nonce for a blob: the context's prefix, then the blob's counter. */
static void
nonce_of(const seal_ctx *s, const uint8_t *blob, unsigned char *nonce)
{
	memcpy(nonce, s->prefix, NONCE_PREFIX);
	memcpy(nonce + NONCE_PREFIX, blob, SEAL_NONCEBYTES);
}

static uint32_t
get_be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Encodes the identity into ad (AD_MAX bytes).  -1/EINVAL if an identifier
 * is longer than SEAL_ID_MAX. */
static int
ad_encode(unsigned char *ad, size_t *ad_len, const char *arn, const char *version_id)
{
	size_t alen = strnlen(arn, SEAL_ID_MAX + 1);
	size_t vlen = strnlen(version_id, SEAL_ID_MAX + 1);
	unsigned char *p = ad;

	if (alen > SEAL_ID_MAX || vlen > SEAL_ID_MAX) {
		errno = EINVAL;
		return -1;
	}
	memcpy(p, ad_label, AD_LABEL_LEN);
	p += AD_LABEL_LEN;
	put_be32(p, (uint32_t)alen);
	p += 4;
	memcpy(p, arn, alen);
	p += alen;
	put_be32(p, (uint32_t)vlen);
	p += 4;
	memcpy(p, version_id, vlen);
	p += vlen;
	*ad_len = (size_t)(p - ad);
	return 0;
}

/* Whether [a, a+alen) and [b, b+blen) overlap (by address, not by object). */
static int
overlaps(const void *a, size_t alen, const void *b, size_t blen)
{
	uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;

	return alen != 0 && blen != 0 && x < y + blen && y < x + alen;
}

int
seal_seal(seal_ctx *s, const char *arn, const char *version_id,
          const uint8_t *plain, size_t plain_len,
          uint8_t *blob, size_t blob_size, size_t *blob_len)
{
	unsigned char ad[AD_MAX], nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES];
	unsigned char *m;
	unsigned long long clen;
	size_t ad_len = 0, need, padded;
	int rc = -1;

	assert(s != NULL && arn != NULL && version_id != NULL && blob != NULL);
	assert(plain != NULL || plain_len == 0);
	assert(s->depth > 0 && "seal_seal with the key closed");

	need = seal_sealed_size(plain_len);
	if (need == 0 || blob_size < need) {
		errno = EINVAL;
		goto out;
	}
	assert(!overlaps(plain, plain_len, blob, need));
	if (s->seals == UINT64_MAX) {
		errno = EOVERFLOW;
		goto out;
	}
	if (ad_encode(ad, &ad_len, arn, version_id) != 0)
		goto out;

	/* Pad in the ciphertext region and encrypt in place: no temporary. */
	padded = need - SEAL_OVERHEAD;
	m = blob + SEAL_NONCEBYTES;
	if (plain_len > 0)
		memcpy(m, plain, plain_len);
	memset(m + plain_len, 0, padded - SEAL_TRAILERBYTES - plain_len);
	put_be32(m + padded - SEAL_TRAILERBYTES, (uint32_t)plain_len);
	put_be64(blob, s->seals++);
	nonce_of(s, blob, nonce);
	if (s->aead == SEAL_AEAD_AES256GCM)
		clen = gcm_crypt(s, 0, m, m, padded, ad, ad_len, nonce) == 0 ?
		    padded + SEAL_TAGBYTES : 0;
	else if (crypto_aead_xchacha20poly1305_ietf_encrypt(m, &clen, m, padded, ad, ad_len,
	                                                    NULL, nonce, s->key) != 0)
		clen = 0;
	if (clen != padded + SEAL_TAGBYTES) {
		errno = EINVAL;
		goto out;
	}
	rc = 0;

out:
	sodium_memzero(ad, ad_len);
	if (rc != 0)
		sodium_memzero(blob, blob_size); /* may hold a copy of the plaintext */
	if (blob_len != NULL)
		*blob_len = rc == 0 ? need : 0;
	return rc;
}

int
seal_unseal(seal_ctx *s, const char *arn, const char *version_id,
            const uint8_t *blob, size_t blob_len,
            uint8_t *out, size_t out_size, size_t *plain_len)
{
	unsigned char ad[AD_MAX], nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES];
	unsigned long long mlen;
	size_t ad_len = 0, cap, len = 0;
	int rc = -1;

	assert(s != NULL && arn != NULL && version_id != NULL);
	assert(blob != NULL && out != NULL && plain_len != NULL);
	assert(s->depth > 0 && "seal_unseal with the key closed");

	cap = seal_plain_capacity(blob_len);
	if (cap == 0 || out_size < cap) {
		errno = EINVAL;
		goto out;
	}
	assert(!overlaps(blob, blob_len, out, cap));
	if (ad_encode(ad, &ad_len, arn, version_id) != 0)
		goto out;
	nonce_of(s, blob, nonce);
	if (s->aead == SEAL_AEAD_AES256GCM)
		mlen = gcm_crypt(s, 1, out, blob + SEAL_NONCEBYTES, blob_len - SEAL_NONCEBYTES,
		    ad, ad_len, nonce) == 0 ? cap : 0;
	else if (crypto_aead_xchacha20poly1305_ietf_decrypt(out, &mlen, NULL,
	                                                    blob + SEAL_NONCEBYTES,
	                                                    blob_len - SEAL_NONCEBYTES,
	                                                    ad, ad_len, nonce, s->key) != 0)
		mlen = 0;
	if (mlen != cap) {
		errno = EBADMSG;
		goto out;
	}
	/* Authentic, so the trailer is ours; still insist on the canonical
	 * class for the length rather than trust it blindly. */
	len = get_be32(out + cap - SEAL_TRAILERBYTES);
	if (len > cap - SEAL_TRAILERBYTES || padded_size(len) != cap) {
		errno = EBADMSG;
		goto out;
	}
	sodium_memzero(out + len, cap - len); /* the trailer; padding is zero */
	rc = 0;

out:
	sodium_memzero(ad, ad_len);
	if (rc != 0) {
		sodium_memzero(out, out_size);
		len = 0;
	}
	*plain_len = len;
	return rc;
}

int
seal_seal_once(seal_ctx *s, const char *arn, const char *version_id,
               const uint8_t *plain, size_t plain_len,
               uint8_t *blob, size_t blob_size, size_t *blob_len)
{
	int rc;

	if (seal_key_open(s) != 0) {
		sodium_memzero(blob, blob_size);
		if (blob_len != NULL)
			*blob_len = 0;
		return -1;
	}
	rc = seal_seal(s, arn, version_id, plain, plain_len, blob, blob_size, blob_len);
	seal_key_close(s);
	return rc;
}

int
seal_unseal_once(seal_ctx *s, const char *arn, const char *version_id,
                 const uint8_t *blob, size_t blob_len,
                 uint8_t *out, size_t out_size, size_t *plain_len)
{
	int rc;

	if (seal_key_open(s) != 0) {
		sodium_memzero(out, out_size);
		*plain_len = 0;
		return -1;
	}
	rc = seal_unseal(s, arn, version_id, blob, blob_len, out, out_size, plain_len);
	seal_key_close(s);
	return rc;
}
