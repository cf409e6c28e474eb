// SPDX-License-Identifier: GPL-2.0
/*
 * The cipher of the ElasticOS record layer (core/src/record.rs): AES-256-GCM
 * through the kernel's AEAD API ("gcm(aes)", whichever implementation the
 * crypto layer picks: AES-NI and PCLMULQDQ where the CPU has them). One call
 * seals or opens one frame in place; its parts may be anywhere in the kernel's
 * address space (a vmalloc'ed receive buffer, page data, the vmapped stack),
 * so the scatterlist is built a page at a time. Used by elastic/sys/crypto.rs.
 */
#include <crypto/aead.h>
#include <linux/err.h>
#include <linux/mm.h>
#include <linux/scatterlist.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>

#define ELASTIC_AEAD_TAG 16
#define ELASTIC_AEAD_IV 12

struct crypto_aead *elastic_aead_new(const u8 *key, unsigned int len);
void elastic_aead_free(struct crypto_aead *tfm);
int elastic_aead_crypt(struct crypto_aead *tfm, bool seal, const u8 *iv,
		       const u8 *aad, unsigned int aad_len, const u8 *aad2,
		       unsigned int aad2_len, u8 *data, unsigned int len, u8 *tag);

/* A transform keyed with @key (32 bytes: AES-256), 16-byte tags. May sleep. */
struct crypto_aead *elastic_aead_new(const u8 *key, unsigned int len)
{
	struct crypto_aead *tfm = crypto_alloc_aead("gcm(aes)", 0, 0);
	int r;

	if (IS_ERR(tfm))
		return tfm;
	r = crypto_aead_setkey(tfm, key, len);
	if (!r)
		r = crypto_aead_setauthsize(tfm, ELASTIC_AEAD_TAG);
	if (r) {
		crypto_free_aead(tfm);
		return ERR_PTR(r);
	}
	return tfm;
}

void elastic_aead_free(struct crypto_aead *tfm)
{
	crypto_free_aead(tfm);
}

/* Adds [@buf, @buf + @len) to @sg from entry *@n on, a page at a time. */
static int elastic_sg_add(struct scatterlist *sg, int max, int *n,
			  const void *buf, size_t len)
{
	while (len) {
		size_t off = offset_in_page(buf);
		size_t chunk = min_t(size_t, len, PAGE_SIZE - off);
		struct page *page = is_vmalloc_or_module_addr(buf) ?
			vmalloc_to_page(buf) : virt_to_page(buf);

		if (*n == max || !page)
			return -EINVAL;
		sg_set_page(&sg[(*n)++], page, chunk, off);
		buf += chunk;
		len -= chunk;
	}
	return 0;
}

/*
 * Seals (@seal) or opens @data (@len bytes) in place under @tfm with the
 * 12-byte nonce @iv; @aad then @aad2 are authenticated in clear (as one: the
 * header, and a payload that goes in clear); the 16-byte tag is written to
 * @tag (seal) or checked against it (open: -EBADMSG if it does not match, and
 * @data is then garbage). May sleep.
 */
int elastic_aead_crypt(struct crypto_aead *tfm, bool seal, const u8 *iv,
		       const u8 *aad, unsigned int aad_len, const u8 *aad2,
		       unsigned int aad2_len, u8 *data, unsigned int len, u8 *tag)
{
	int max = DIV_ROUND_UP(aad_len, PAGE_SIZE) +
		  DIV_ROUND_UP(aad2_len, PAGE_SIZE) +
		  DIV_ROUND_UP(len, PAGE_SIZE) + 8;
	u8 nonce[ELASTIC_AEAD_IV];
	struct aead_request *req;
	struct scatterlist *sg;
	DECLARE_CRYPTO_WAIT(wait);
	int n = 0, ret;

	sg = kmalloc_array(max, sizeof(*sg), GFP_KERNEL);
	req = aead_request_alloc(tfm, GFP_KERNEL);
	ret = -ENOMEM;
	if (!sg || !req)
		goto out;
	sg_init_table(sg, max);
	ret = elastic_sg_add(sg, max, &n, aad, aad_len) ?:
	      elastic_sg_add(sg, max, &n, aad2, aad2_len) ?:
	      elastic_sg_add(sg, max, &n, data, len) ?:
	      elastic_sg_add(sg, max, &n, tag, ELASTIC_AEAD_TAG);
	if (ret)
		goto out;
	sg_mark_end(&sg[n - 1]);
	memcpy(nonce, iv, sizeof(nonce));
	aead_request_set_callback(req, CRYPTO_TFM_REQ_MAY_SLEEP |
				  CRYPTO_TFM_REQ_MAY_BACKLOG,
				  crypto_req_done, &wait);
	aead_request_set_ad(req, aad_len + aad2_len);
	aead_request_set_crypt(req, sg, sg, seal ? len : len + ELASTIC_AEAD_TAG,
			       nonce);
	ret = crypto_wait_req(seal ? crypto_aead_encrypt(req) :
				     crypto_aead_decrypt(req), &wait);
out:
	if (req)
		aead_request_free(req);
	kfree(sg);
	return ret;
}
