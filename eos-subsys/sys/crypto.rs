// SPDX-License-Identifier: GPL-2.0

//! HMAC-SHA256 from the kernel crypto API.

use crate::handshake::Mac;
use crate::proto::MAC_LEN;
use core::ptr::NonNull;
use kernel::{bindings, error::from_err_ptr, error::to_result, prelude::*};

/// A keyed `hmac(sha256)` transform.
pub(crate) struct HmacSha256 {
    tfm: NonNull<bindings::crypto_shash>,
}

// SAFETY: after `setkey` the transform is only read; `crypto_shash_tfm_digest` keeps its state
// in an on-stack descriptor, so concurrent digests on one transform are allowed.
unsafe impl Send for HmacSha256 {}
// SAFETY: see `Send`.
unsafe impl Sync for HmacSha256 {}

impl HmacSha256 {
    /// Allocates a transform keyed with `key`. May sleep.
    pub(crate) fn new(key: &[u8]) -> Result<Self> {
        // SAFETY: the algorithm name is a NUL-terminated string; no other preconditions.
        let tfm = from_err_ptr(unsafe {
            bindings::crypto_alloc_shash(c"hmac(sha256)".as_ptr().cast(), 0, 0)
        })?;
        let tfm = NonNull::new(tfm).ok_or(ENOMEM)?;
        let this = Self { tfm };
        let len = u32::try_from(key.len()).map_err(|_| EINVAL)?;
        // SAFETY: `tfm` is a live transform; `key` is valid for `len` bytes.
        to_result(unsafe { bindings::crypto_shash_setkey(this.tfm.as_ptr(), key.as_ptr(), len) })?;
        Ok(this)
    }

    /// The tag of `data`.
    pub(crate) fn digest(&self, data: &[u8]) -> Result<[u8; MAC_LEN]> {
        let mut out = [0u8; MAC_LEN];
        let len = u32::try_from(data.len()).map_err(|_| EINVAL)?;
        // SAFETY: `tfm` is live and keyed; `data` is valid for `len` bytes; `out` has room for
        // the 32-byte digest of sha256.
        to_result(unsafe {
            bindings::crypto_shash_tfm_digest(
                self.tfm.as_ptr(),
                data.as_ptr(),
                len,
                out.as_mut_ptr(),
            )
        })?;
        Ok(out)
    }
}

impl Drop for HmacSha256 {
    fn drop(&mut self) {
        // SAFETY: `tfm` came from `crypto_alloc_shash` and is freed exactly once, here.
        unsafe { bindings::crypto_free_shash(self.tfm.as_ptr()) };
    }
}

impl Mac for HmacSha256 {
    fn mac(&self, msg: &[u8]) -> Option<[u8; MAC_LEN]> {
        self.digest(msg).ok()
    }
}

/// `N` bytes from the kernel's CSPRNG.
pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    // SAFETY: `b` is valid for writing `N` bytes.
    unsafe { kernel::bindings::get_random_bytes(b.as_mut_ptr().cast(), N) };
    b
}

extern "C" {
    fn elastic_aead_new(key: *const u8, len: core::ffi::c_uint) -> *mut core::ffi::c_void;
    fn elastic_aead_free(tfm: *mut core::ffi::c_void);
    fn elastic_aead_crypt(
        tfm: *mut core::ffi::c_void,
        seal: bool,
        iv: *const u8,
        aad: *const u8,
        aad_len: core::ffi::c_uint,
        aad2: *const u8,
        aad2_len: core::ffi::c_uint,
        data: *mut u8,
        len: core::ffi::c_uint,
        tag: *mut u8,
    ) -> core::ffi::c_int;
}

/// AES-256-GCM (`gcm(aes)`, eos-subsys/record.c) under one key: one direction of a link.
///
/// # Invariants
///
/// `tfm` is a keyed AEAD transform from `elastic_aead_new`, freed only by `drop`.
pub(crate) struct AesGcm {
    tfm: NonNull<core::ffi::c_void>,
}

// SAFETY: after keying the transform is only read; each operation has its own request.
unsafe impl Send for AesGcm {}
// SAFETY: see `Send`.
unsafe impl Sync for AesGcm {}

impl AesGcm {
    /// A transform keyed with `key`. May sleep.
    pub(crate) fn new(key: &[u8; crate::record::KEY_LEN]) -> Result<Self> {
        // SAFETY: `key` is valid for its length; the helper copies it into the transform.
        let tfm = from_err_ptr(unsafe { elastic_aead_new(key.as_ptr(), key.len() as _) })?;
        Ok(Self {
            tfm: NonNull::new(tfm).ok_or(ENOMEM)?,
        })
    }

    fn crypt(
        &self,
        seal: bool,
        nonce: &[u8; 12],
        aad: [&[u8]; 2],
        data: &mut [u8],
        tag: *mut u8,
    ) -> bool {
        let (Ok(aad_len), Ok(aad2_len), Ok(len)) = (
            u32::try_from(aad[0].len()),
            u32::try_from(aad[1].len()),
            u32::try_from(data.len()),
        ) else {
            return false;
        };
        // SAFETY: by the type invariant `tfm` is live and keyed; every buffer is valid for the
        // length given, `tag` for 16 bytes; the helper only reads `aad` and `nonce`.
        let r = unsafe {
            elastic_aead_crypt(
                self.tfm.as_ptr(),
                seal,
                nonce.as_ptr(),
                aad[0].as_ptr(),
                aad_len,
                aad[1].as_ptr(),
                aad2_len,
                data.as_mut_ptr(),
                len,
                tag,
            )
        };
        r == 0
    }
}

impl Drop for AesGcm {
    fn drop(&mut self) {
        // SAFETY: by the type invariant, freed exactly once, here.
        unsafe { elastic_aead_free(self.tfm.as_ptr()) };
    }
}

impl crate::record::Aead for AesGcm {
    fn seal(
        &self,
        nonce: &[u8; crate::record::NONCE_LEN],
        aad: [&[u8]; 2],
        data: &mut [u8],
        tag: &mut [u8; crate::record::TAG_LEN],
    ) -> bool {
        self.crypt(true, nonce, aad, data, tag.as_mut_ptr())
    }

    fn open(
        &self,
        nonce: &[u8; crate::record::NONCE_LEN],
        aad: [&[u8]; 2],
        data: &mut [u8],
        tag: &[u8; crate::record::TAG_LEN],
    ) -> bool {
        // The helper only reads the tag when opening.
        let mut t = *tag;
        self.crypt(false, nonce, aad, data, t.as_mut_ptr())
    }
}
