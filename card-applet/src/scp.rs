//! The admin secure channel: key derivation, cryptograms and the protection of PERSONALIZE.
//!
//! Modelled on GlobalPlatform SCP03 (Amendment D) so that a JavaCard could implement it with
//! its AES and CMAC primitives, with 16-byte challenges and cryptograms and an AES-256 key:
//!
//! ```text
//! context  = host challenge (16) ‖ card challenge (16)
//! KDF(K, c, L) = first L bits of  CMAC(K, 00×11 ‖ c ‖ 00 ‖ L (2 bytes BE) ‖ 01 ‖ context)
//!                               ‖ CMAC(K, 00×11 ‖ c ‖ 00 ‖ L (2 bytes BE) ‖ 02 ‖ context) …
//!                (NIST SP 800-108 counter mode, AES-256-CMAC, SCP03 §4.1.5 byte layout)
//! S-ENC  = KDF(admin key, 04, 256)      S-MAC = KDF(admin key, 06, 256)
//! S-RMAC = KDF(admin key, 07, 256)
//! card cryptogram = KDF(S-MAC, 00, 128)  host cryptogram = KDF(S-MAC, 01, 128)
//! PERSONALIZE:  ciphertext = AES-256-CBC(S-ENC, ICV = AES-256(S-ENC, 00×15 ‖ 01),
//!                                        plaintext ‖ 80 ‖ 00…  (ISO/IEC 9797-1 method 2))
//!               C-MAC = CMAC(S-MAC, CLA INS P1 P2 ‖ ciphertext)
//!               R-MAC = CMAC(S-RMAC, C-MAC ‖ 90 00)
//! ```

use alloc::vec;
use alloc::vec::Vec;

use aes::cipher::{block_padding::Iso7816, BlockDecryptMut, BlockEncrypt, BlockEncryptMut, KeyInit, KeyIvInit};
use aes::Aes256;
use cmac::{Cmac, Mac};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Bytes of the card's and the host's challenge.
pub const CHALLENGE_LEN: usize = 16;
/// Bytes of a cryptogram or a MAC.
pub const MAC_LEN: usize = 16;

/// KDF derivation constants (SCP03 Table 4-1 values).
pub mod constant {
    pub const CARD_CRYPTOGRAM: u8 = 0x00;
    pub const HOST_CRYPTOGRAM: u8 = 0x01;
    pub const S_ENC: u8 = 0x04;
    pub const S_MAC: u8 = 0x06;
    pub const S_RMAC: u8 = 0x07;
}

fn cmac(key: &[u8; 32], parts: &[&[u8]]) -> [u8; MAC_LEN] {
    let mut mac = <Cmac<Aes256> as KeyInit>::new(key.into());
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// SP 800-108 counter-mode KDF with AES-256-CMAC, SCP03 layout. `out.len()` must be a
/// multiple of 16 and at most 255 blocks (it is 16 or 32 in this protocol).
pub fn kdf(key: &[u8; 32], constant: u8, context: &[u8], out: &mut [u8]) {
    let bits = u16::try_from(out.len().saturating_mul(8)).unwrap_or(u16::MAX).to_be_bytes();
    let mut label = [0u8; 12];
    label[11] = constant;
    for (i, chunk) in out.chunks_mut(MAC_LEN).enumerate() {
        let counter = u8::try_from(i + 1).unwrap_or(u8::MAX);
        let block = cmac(key, &[&label, &[0x00], &bits, &[counter], context]);
        chunk.copy_from_slice(&block[..chunk.len()]);
    }
}

/// The keys of one admin session, derived from the admin key and both challenges.
pub struct SessionKeys {
    enc: Zeroizing<[u8; 32]>,
    mac: Zeroizing<[u8; 32]>,
    rmac: Zeroizing<[u8; 32]>,
    context: [u8; 2 * CHALLENGE_LEN],
}

impl core::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("SessionKeys(<secret>)")
    }
}

/// Why a protected PERSONALIZE payload was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnwrapError {
    /// The C-MAC did not verify (`6988`).
    Mac,
    /// The MAC was right but the ciphertext does not decrypt to padded data (`6A80`).
    Padding,
}

impl SessionKeys {
    /// Derives S-ENC, S-MAC and S-RMAC.
    pub fn derive(
        admin_key: &[u8; 32],
        host_challenge: &[u8; CHALLENGE_LEN],
        card_challenge: &[u8; CHALLENGE_LEN],
    ) -> Self {
        let mut context = [0u8; 2 * CHALLENGE_LEN];
        context[..CHALLENGE_LEN].copy_from_slice(host_challenge);
        context[CHALLENGE_LEN..].copy_from_slice(card_challenge);
        let mut keys =
            Self { enc: Zeroizing::new([0; 32]), mac: Zeroizing::new([0; 32]), rmac: Zeroizing::new([0; 32]), context };
        kdf(admin_key, constant::S_ENC, &context, keys.enc.as_mut_slice());
        kdf(admin_key, constant::S_MAC, &context, keys.mac.as_mut_slice());
        kdf(admin_key, constant::S_RMAC, &context, keys.rmac.as_mut_slice());
        keys
    }

    fn cryptogram(&self, c: u8) -> [u8; MAC_LEN] {
        let mut out = [0u8; MAC_LEN];
        kdf(&self.mac, c, &self.context, &mut out);
        out
    }

    /// The card's proof of the admin key, sent by the card.
    pub fn card_cryptogram(&self) -> [u8; MAC_LEN] {
        self.cryptogram(constant::CARD_CRYPTOGRAM)
    }

    /// The host's proof of the admin key, sent by the host.
    pub fn host_cryptogram(&self) -> [u8; MAC_LEN] {
        self.cryptogram(constant::HOST_CRYPTOGRAM)
    }

    /// Constant-time check of a received cryptogram or MAC.
    pub fn verify(expected: &[u8; MAC_LEN], got: &[u8]) -> bool {
        got.len() == MAC_LEN && bool::from(expected.as_slice().ct_eq(got))
    }

    fn icv(&self) -> [u8; 16] {
        let mut block = [0u8; 16];
        block[15] = 1;
        let cipher = Aes256::new(self.enc.as_ref().into());
        let mut b = block.into();
        cipher.encrypt_block(&mut b);
        b.into()
    }

    /// Encrypts and MACs a PERSONALIZE payload; returns `ciphertext ‖ C-MAC`.
    pub fn wrap(&self, header: [u8; 4], plaintext: &[u8]) -> Zeroizing<Vec<u8>> {
        let len = plaintext.len();
        let mut buf = Zeroizing::new(vec![0u8; (len / 16 + 1) * 16]);
        buf[..len].copy_from_slice(plaintext);
        let enc = cbc::Encryptor::<Aes256>::new(self.enc.as_ref().into(), &self.icv().into());
        let ct_len = enc.encrypt_padded_mut::<Iso7816>(buf.as_mut_slice(), len).map(|ct| ct.len()).unwrap_or(0);
        buf.truncate(ct_len);
        let mac = self.c_mac(header, &buf);
        buf.extend_from_slice(&mac);
        buf
    }

    /// C-MAC over the command header and the ciphertext.
    pub fn c_mac(&self, header: [u8; 4], ciphertext: &[u8]) -> [u8; MAC_LEN] {
        cmac(&self.mac, &[&header, ciphertext])
    }

    /// R-MAC of a successful PERSONALIZE: the card's proof that it accepted this command.
    pub fn r_mac(&self, c_mac: &[u8; MAC_LEN]) -> [u8; MAC_LEN] {
        cmac(&self.rmac, &[c_mac, &[0x90, 0x00]])
    }

    /// Checks the C-MAC, then decrypts. Returns the plaintext and the C-MAC (for the R-MAC).
    pub fn unwrap(&self, header: [u8; 4], data: &[u8]) -> Result<(Zeroizing<Vec<u8>>, [u8; MAC_LEN]), UnwrapError> {
        let Some(split) = data.len().checked_sub(MAC_LEN) else {
            return Err(UnwrapError::Mac);
        };
        let (ct, mac) = data.split_at(split);
        let expected = self.c_mac(header, ct);
        if !Self::verify(&expected, mac) {
            return Err(UnwrapError::Mac);
        }
        if ct.is_empty() || ct.len() % 16 != 0 {
            return Err(UnwrapError::Padding);
        }
        let mut buf = Zeroizing::new(ct.to_vec());
        let dec = cbc::Decryptor::<Aes256>::new(self.enc.as_ref().into(), &self.icv().into());
        let len = dec
            .decrypt_padded_mut::<Iso7816>(buf.as_mut_slice())
            .map(|pt| pt.len())
            .map_err(|_| UnwrapError::Padding)?;
        buf.truncate(len);
        Ok((buf, expected))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_sides_derive_the_same_keys_and_cryptograms_differ() {
        let k = [0x11; 32];
        let a = SessionKeys::derive(&k, &[1; 16], &[2; 16]);
        let b = SessionKeys::derive(&k, &[1; 16], &[2; 16]);
        assert_eq!(a.card_cryptogram(), b.card_cryptogram());
        assert_ne!(a.card_cryptogram(), a.host_cryptogram());
        let c = SessionKeys::derive(&k, &[1; 16], &[3; 16]);
        assert_ne!(a.card_cryptogram(), c.card_cryptogram());
        let d = SessionKeys::derive(&[0x12; 32], &[1; 16], &[2; 16]);
        assert_ne!(a.host_cryptogram(), d.host_cryptogram());
    }

    #[test]
    fn kdf_layout_is_sp800_108_counter_mode() {
        // Recompute the first block by hand from the documented layout.
        let key = [0x5A; 32];
        let ctx = [0xC0; 32];
        let mut out = [0u8; 32];
        kdf(&key, 0x04, &ctx, &mut out);
        let mut msg = vec![0u8; 11];
        msg.extend_from_slice(&[0x04, 0x00, 0x01, 0x00, 0x01]);
        msg.extend_from_slice(&ctx);
        let mut mac = <Cmac<Aes256> as KeyInit>::new((&key).into());
        mac.update(&msg);
        let first: [u8; 16] = mac.finalize().into_bytes().into();
        assert_eq!(&out[..16], &first);
        msg[15] = 0x02;
        let mut mac = <Cmac<Aes256> as KeyInit>::new((&key).into());
        mac.update(&msg);
        let second: [u8; 16] = mac.finalize().into_bytes().into();
        assert_eq!(&out[16..], &second);
    }

    #[test]
    fn wrap_unwrap_and_tamper() {
        let s = SessionKeys::derive(&[7; 32], &[1; 16], &[2; 16]);
        let hdr = [0x80, 0xE2, 0, 0];
        for len in [0, 1, 15, 16, 17, 80] {
            let pt: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let w = s.wrap(hdr, &pt);
            assert_eq!(w.len(), (len / 16 + 1) * 16 + 16);
            let (back, cmac) = s.unwrap(hdr, &w).unwrap();
            assert_eq!(back.as_slice(), &pt[..]);
            assert_eq!(cmac, s.c_mac(hdr, &w[..w.len() - 16]));
            let mut t = w.clone();
            t[0] ^= 1;
            assert_eq!(s.unwrap(hdr, &t).unwrap_err(), UnwrapError::Mac);
            assert_eq!(s.unwrap([0x80, 0xE2, 0, 1], &w).unwrap_err(), UnwrapError::Mac);
        }
        assert_eq!(s.unwrap(hdr, &[0; 5]).unwrap_err(), UnwrapError::Mac);
    }
}
