//! The chain seed a card is personalized with (the patent's claim 4, made safe).
//!
//! ```text
//! seed      = HKDF-SHA256(salt = "PAYSIM-1 SEED", ikm = secret, info = materials, L = 32)   # RFC 5869
//! materials = for each material given, in tag order: tag byte ‖ u16 big-endian length ‖ bytes
//!             1 user id, 2 certificate SHA-256, 3 SIM ICCID, 4 TF-card id, 5 device IMEI,
//!             6 sticker-card id, 7 user identification
//! ```
//!
//! Identity materials are guessable, so they only bind the seed to a person and a device: the
//! entropy comes from the 32-byte [`Secret`], which a seed cannot be made without. The known-
//! answer vector is in `tools/README.md` and checked by the tests below.

use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

/// HKDF salt of the seed derivation.
pub const SALT: &[u8] = b"PAYSIM-1 SEED";
/// Length of the secret and of the seed, in bytes.
pub const LEN: usize = 32;
/// Longest identity material accepted, in bytes.
pub const MATERIAL_MAX: usize = 255;

/// The identity materials, by their tag byte in the `info` string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Tag {
    UserId = 1,
    CertSha256 = 2,
    Iccid = 3,
    TfCardId = 4,
    Imei = 5,
    StickerId = 6,
    UserIdentification = 7,
}

impl Tag {
    /// The flag name of the material, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Tag::UserId => "user id",
            Tag::CertSha256 => "certificate SHA-256",
            Tag::Iccid => "SIM ICCID",
            Tag::TfCardId => "TF-card id",
            Tag::Imei => "device IMEI",
            Tag::StickerId => "sticker-card id",
            Tag::UserIdentification => "user identification",
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SeedError {
    #[error("the secret must be exactly 32 bytes (64 hex digits in a file), got {0} bytes")]
    SecretLength(usize),
    #[error("the secret is one byte repeated: it is not random; use 32 random bytes")]
    SecretNotRandom,
    #[error("the secret file must hold 64 hex digits or 32 raw bytes")]
    SecretFormat,
    #[error("the {} is given twice", .0.name())]
    Duplicate(Tag),
    #[error("the {} must be 1 to 255 bytes long", .0.name())]
    MaterialLength(Tag),
    #[error("the certificate SHA-256 must be 64 hex digits")]
    CertHash,
}

/// The 32 random bytes that give the seed its entropy. Zeroized on drop, never shown by `Debug`.
pub struct Secret(Zeroizing<[u8; LEN]>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<secret>)")
    }
}

impl Secret {
    /// A fresh secret from the operating system's CSPRNG.
    pub fn random() -> Result<Self, getrandom::Error> {
        let mut bytes = Zeroizing::new([0u8; LEN]);
        getrandom::getrandom(bytes.as_mut())?;
        Ok(Self(bytes))
    }

    /// A given secret. Refuses anything but 32 bytes, and a byte repeated 32 times (an
    /// all-zero "secret" would leave only the guessable materials).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SeedError> {
        let arr: [u8; LEN] = bytes.try_into().map_err(|_| SeedError::SecretLength(bytes.len()))?;
        let arr = Zeroizing::new(arr);
        if arr.iter().all(|b| *b == arr[0]) {
            return Err(SeedError::SecretNotRandom);
        }
        Ok(Self(arr))
    }

    /// Parses a secret file: 64 hex digits (surrounding white space ignored) or 32 raw bytes.
    pub fn from_file_contents(contents: &[u8]) -> Result<Self, SeedError> {
        let trimmed = contents.trim_ascii();
        if trimmed.len() == 2 * LEN && trimmed.iter().all(u8::is_ascii_hexdigit) {
            let bytes = Zeroizing::new(hex::decode(trimmed).map_err(|_| SeedError::SecretFormat)?);
            return Self::from_bytes(&bytes);
        }
        if contents.len() == LEN {
            return Self::from_bytes(contents);
        }
        Err(SeedError::SecretFormat)
    }
}

/// The identity materials given for one card, kept in tag order.
#[derive(Default)]
pub struct Materials(Vec<(Tag, Vec<u8>)>);

impl std::fmt::Debug for Materials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.iter().map(|(t, _)| t)).finish()
    }
}

impl Materials {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a material; 1-255 bytes, each tag at most once.
    pub fn add(&mut self, tag: Tag, bytes: impl Into<Vec<u8>>) -> Result<&mut Self, SeedError> {
        let bytes = bytes.into();
        if bytes.is_empty() || bytes.len() > MATERIAL_MAX {
            return Err(SeedError::MaterialLength(tag));
        }
        match self.0.binary_search_by_key(&tag, |(t, _)| *t) {
            Ok(_) => Err(SeedError::Duplicate(tag)),
            Err(at) => {
                self.0.insert(at, (tag, bytes));
                Ok(self)
            }
        }
    }

    /// Adds the certificate's SHA-256 given as 64 hex digits (stored as its 32 bytes).
    pub fn add_cert_sha256_hex(&mut self, hex_digits: &str) -> Result<&mut Self, SeedError> {
        let bytes = hex::decode(hex_digits.trim()).map_err(|_| SeedError::CertHash)?;
        if bytes.len() != 32 {
            return Err(SeedError::CertHash);
        }
        self.add(Tag::CertSha256, bytes)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The HKDF `info` string: tag ‖ u16 BE length ‖ bytes, in tag order.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (tag, bytes) in &self.0 {
            out.push(*tag as u8);
            // `add` keeps every material at most 255 bytes, so this never saturates.
            let len = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(bytes);
        }
        out
    }
}

/// `HKDF-SHA256(salt = "PAYSIM-1 SEED", ikm = secret, info = materials, L = 32)`.
pub fn derive(secret: &Secret, materials: &Materials) -> Zeroizing<[u8; LEN]> {
    let hk = Hkdf::<Sha256>::new(Some(SALT), secret.0.as_ref());
    let mut seed = Zeroizing::new([0u8; LEN]);
    // 32 bytes is far below HKDF-SHA256's 255 * 32 limit: expand cannot fail here.
    if hk.expand(&materials.encode(), seed.as_mut()).is_err() {
        unreachable!("HKDF-SHA256 expand of 32 bytes");
    }
    seed
}

#[cfg(test)]
mod tests {

    use super::*;
    use paysim_otp::hmac_sha256;

    fn vector_secret() -> Secret {
        Secret::from_bytes(&(0u8..32).collect::<Vec<_>>()).unwrap()
    }

    fn vector_materials() -> Materials {
        let mut m = Materials::new();
        // Added out of order on purpose: the encoding sorts by tag.
        m.add(Tag::Imei, "490154203237518").unwrap();
        m.add(Tag::UserId, "alice").unwrap();
        m.add_cert_sha256_hex("8466704473f5d2d54a42710d1ebd5d25981daff3e701bbd254ffca8a816a51a4").unwrap();
        m
    }

    /// The vector documented in tools/README.md.
    #[test]
    fn known_answer_vector() {
        let m = vector_materials();
        assert_eq!(
            hex::encode(m.encode()),
            "010005616c696365020020\
             8466704473f5d2d54a42710d1ebd5d25981daff3e701bbd254ffca8a816a51a4\
             05000f343930313534323033323337353138"
        );
        assert_eq!(
            hex::encode(*derive(&vector_secret(), &m)),
            "bd3790c882c240375142f620b70aa215703dcfcbc4d6105c5763e1440f887001"
        );
        assert_eq!(
            hex::encode(*derive(&vector_secret(), &Materials::new())),
            "f2fc32d31bfb16c2f38896f7989a2b7e97cce1a0760fa98433a6fe3130992ac2"
        );
    }

    /// RFC 5869 by hand (extract, one expand block) with the workspace's HMAC-SHA256.
    #[test]
    fn matches_hkdf_written_out() {
        let m = vector_materials();
        let prk = hmac_sha256(SALT, &(0u8..32).collect::<Vec<_>>());
        let mut t1 = m.encode();
        t1.push(1);
        assert_eq!(*derive(&vector_secret(), &m), hmac_sha256(&prk, &t1));
    }

    #[test]
    fn every_material_changes_the_seed() {
        let base = derive(&vector_secret(), &vector_materials());
        let mut other = vector_materials();
        other.add(Tag::StickerId, "S-1").unwrap();
        assert_ne!(*base, *derive(&vector_secret(), &other));
        let mut secret = (0u8..32).collect::<Vec<_>>();
        secret[31] ^= 1;
        assert_ne!(*base, *derive(&Secret::from_bytes(&secret).unwrap(), &vector_materials()));
    }

    #[test]
    fn refuses_weak_or_malformed_input() {
        assert_eq!(Secret::from_bytes(&[0u8; 32]).unwrap_err(), SeedError::SecretNotRandom);
        assert_eq!(Secret::from_bytes(&[1u8; 16]).unwrap_err(), SeedError::SecretLength(16));
        assert_eq!(Secret::from_file_contents(b"abc").unwrap_err(), SeedError::SecretFormat);
        let hex_file = format!("{}\n", hex::encode((0u8..32).collect::<Vec<_>>()));
        assert!(Secret::from_file_contents(hex_file.as_bytes()).is_ok());
        let raw: Vec<u8> = (100u8..132).collect();
        assert!(Secret::from_file_contents(&raw).is_ok());
        let mut m = Materials::new();
        m.add(Tag::UserId, "a").unwrap();
        assert_eq!(m.add(Tag::UserId, "b").unwrap_err(), SeedError::Duplicate(Tag::UserId));
        assert_eq!(m.add(Tag::Iccid, "").unwrap_err(), SeedError::MaterialLength(Tag::Iccid));
        assert_eq!(m.add(Tag::Imei, vec![b'1'; 256]).unwrap_err(), SeedError::MaterialLength(Tag::Imei));
        assert_eq!(m.add_cert_sha256_hex("abcd").unwrap_err(), SeedError::CertHash);
    }

    #[test]
    fn random_secrets_differ() {
        let a = derive(&Secret::random().unwrap(), &Materials::new());
        let b = derive(&Secret::random().unwrap(), &Materials::new());
        assert_ne!(*a, *b);
    }
}
