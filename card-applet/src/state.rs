//! What the card remembers across power cycles ([`CardState`], [`Personal`], the try
//! limits), the versioned file format of the virtual card, and where the state is
//! committed: the [`Store`] trait and [`MemStore`] (in `store.rs`, part of the no_std core)
//! and the file store (in `file_store.rs`, feature `std`).
//!
//! The state file *is* the card's secure memory (the EEPROM of a real card): it holds the
//! admin key, the PIN, the PUK and the current chain key in the clear. `FileStore` keeps
//! it with mode `0600`, writes it atomically and locks it; see its documentation.
//!
//! Format (version 2, see `docs/protocol.md` and `testdata/state-v2.json`), written by
//! `CardState::to_file_bytes` and read by `CardState::from_file_bytes` (feature `std`), which
//! also reads version 1 (`testdata/state-v1.json`: the same without `"oath"`, read as an
//! OATH applet with no salt and no credentials):
//!
//! ```json
//! {
//!   "format": "paysim-card-state",
//!   "version": 2,
//!   "admin_key_hex": "<64 hex>",
//!   "admin_tries": 10,
//!   "personal": null | {
//!     "serial": "PSIM-00000001",
//!     "pin_hex": "<16 hex: padded PIN block>", "pin_tries": 3,
//!     "puk_hex": "<16 hex>", "puk_tries": 10,
//!     "chain_key_hex": "<64 hex: ck_i>", "counter": i
//!   },
//!   "oath": {
//!     "salt_hex": null | "<16 hex>",
//!     "access": null | { "alg": "SHA1", "key_hex": "<hex>" },
//!     "credentials": [ {
//!       "name_hex": "<hex>", "kind": "HOTP" | "TOTP", "alg": "SHA1" | "SHA256" | "SHA512",
//!       "digits": 6, "key_hex": "<hex>", "touch": false, "increasing": false,
//!       "counter": 0, "last_challenge_hex": null | "<hex>"
//!     } ]
//!   }
//! }
//! ```

use zeroize::Zeroizing;

pub use crate::oath::{AccessKey, Credential, Kind as OathKind, OathState};
use crate::pin::{PinBlock, PukBlock};
use paysim_otp::ChainKey;

#[cfg(feature = "std")]
pub use crate::file_store::{create_factory, FileStore, StoreError, STATE_FILE_MAX};
pub use crate::store::{MemStore, Store};

/// PIN tries after personalization or a successful VERIFY.
pub const PIN_TRIES: u8 = 3;
/// PUK tries after personalization or a successful RESET RETRY COUNTER.
pub const PUK_TRIES: u8 = 10;
/// Admin authentication tries; the admin key blocks when they reach 0.
pub const ADMIN_TRIES: u8 = 10;
/// The `format` field of every state file.
pub const FORMAT_NAME: &str = "paysim-card-state";
/// The state-file format version this code writes.
pub const FORMAT_VERSION: u64 = 2;

/// Everything the card remembers across power cycles.
#[derive(Clone, PartialEq, Eq)]
pub struct CardState {
    /// The 32-byte admin (transport) key, set at creation, never changed, never output.
    pub admin_key: Zeroizing<[u8; 32]>,
    /// Admin authentication tries left (0 = blocked).
    pub admin_tries: u8,
    /// Present once the card has been personalized.
    pub personal: Option<Personal>,
    /// The YKOATH applet's credentials, access code and salt (format version 2).
    pub oath: OathState,
}

/// The part of the state PERSONALIZE writes.
#[derive(Clone, PartialEq, Eq)]
pub struct Personal {
    pub serial: alloc::string::String,
    pub pin: PinBlock,
    pub pin_tries: u8,
    pub puk: PukBlock,
    pub puk_tries: u8,
    /// `ck_i`, the chain key of the next code.
    pub chain_key: ChainKey,
    /// `i`, the counter of the next code.
    pub counter: u64,
}

impl core::fmt::Debug for CardState {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("CardState")
            .field("admin_key", &"<secret>")
            .field("admin_tries", &self.admin_tries)
            .field("personal", &self.personal)
            .field("oath", &self.oath)
            .finish()
    }
}

impl core::fmt::Debug for Personal {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Personal")
            .field("serial", &self.serial)
            .field("pin", &"<secret>")
            .field("pin_tries", &self.pin_tries)
            .field("puk", &"<secret>")
            .field("puk_tries", &self.puk_tries)
            .field("chain_key", &"<secret>")
            .field("counter", &self.counter)
            .finish()
    }
}

impl CardState {
    /// A factory-fresh card: admin key set, nothing personalized.
    pub fn factory(admin_key: &[u8; 32]) -> Self {
        Self {
            admin_key: Zeroizing::new(*admin_key),
            admin_tries: ADMIN_TRIES,
            personal: None,
            oath: OathState::default(),
        }
    }
}

/// The JSON file format, versions 1 and 2. It needs `std`: serde_json writes into a buffer of fixed
/// capacity only through its `std` writer (a growing `Vec` would leave copies of the secrets
/// in the buffers it frees). A card without a file system keeps [`CardState`] in a layout of
/// its own, behind its [`Store`].
#[cfg(feature = "std")]
mod file_format {
    use std::path::Path;

    use serde::{Deserialize, Serialize};
    use zeroize::Zeroizing;

    use super::{CardState, Personal, ADMIN_TRIES, FORMAT_NAME, FORMAT_VERSION, PIN_TRIES, PUK_TRIES};
    use crate::file_store::StoreError;
    use crate::oath::{self, AccessKey, Credential, Kind, OathState};
    use crate::pin::{PinBlock, PukBlock};
    use paysim_otp::{ChainKey, HashAlg};
    use paysim_wire::CardSerial;

    /// Buffer reserved for serializing a state (more than the largest one needs: 32
    /// credentials with 64-byte names, 128-byte keys and 64-byte last challenges stay under
    /// 32 KiB; `tests/state_file.rs` checks it).
    pub(crate) const STATE_FILE_CAPACITY: usize = 40 * 1024;

    impl CardState {
        /// Serializes to the current file format (version 2), deterministic byte for byte.
        pub fn to_file_bytes(&self) -> Zeroizing<Vec<u8>> {
            let file = FileV2 {
                format: FORMAT_NAME.to_owned(),
                version: FORMAT_VERSION,
                admin_key_hex: hex::encode(self.admin_key.as_slice()),
                admin_tries: self.admin_tries,
                personal: self.personal.as_ref().map(|p| PersonalV1 {
                    serial: p.serial.clone(),
                    pin_hex: hex::encode(p.pin.as_bytes()),
                    pin_tries: p.pin_tries,
                    puk_hex: hex::encode(p.puk.as_bytes()),
                    puk_tries: p.puk_tries,
                    chain_key_hex: hex::encode(p.chain_key.expose()),
                    counter: p.counter,
                }),
                oath: OathV2::from_state(&self.oath),
            };
            // Room for the whole file up front: a growing Vec would leave copies of the secrets
            // in the buffers it frees. Serializing these plain structs cannot fail; if it ever
            // did, the empty result is refused by every writer (see `checked`).
            let mut text = Zeroizing::new(Vec::with_capacity(STATE_FILE_CAPACITY));
            if serde_json::to_writer_pretty(&mut *text, &file).is_err() {
                text.clear();
                return text;
            }
            text.push(b'\n');
            text
        }

        /// Parses a state file of any supported version. `what` names the file in errors.
        pub fn from_file_bytes(bytes: &[u8], what: &Path) -> Result<Self, StoreError> {
            let bad = |reason: &'static str| StoreError::Format { path: what.to_owned(), reason };
            let head: Head = serde_json::from_slice(bytes).map_err(|_| bad("not a card state file (bad JSON)"))?;
            if head.format != FORMAT_NAME {
                return Err(bad("not a card state file (wrong \"format\")"));
            }
            match head.version {
                1 => {
                    let f: FileV1 = serde_json::from_slice(bytes).map_err(|_| bad("malformed version-1 fields"))?;
                    base_state(&f.admin_key_hex, f.admin_tries, f.personal.as_ref(), OathState::default()).map_err(bad)
                }
                2 => {
                    let f: FileV2 = serde_json::from_slice(bytes).map_err(|_| bad("malformed version-2 fields"))?;
                    let oath = f.oath.to_state().map_err(bad)?;
                    base_state(&f.admin_key_hex, f.admin_tries, f.personal.as_ref(), oath).map_err(bad)
                }
                v => Err(StoreError::UnsupportedVersion { path: what.to_owned(), version: v }),
            }
        }
    }

    #[derive(Deserialize)]
    struct Head {
        format: String,
        version: u64,
    }

    #[derive(Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct FileV1 {
        format: String,
        version: u64,
        admin_key_hex: String,
        admin_tries: u8,
        personal: Option<PersonalV1>,
    }

    /// Version 2: version 1 and the YKOATH applet's `"oath"` object.
    #[derive(Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct FileV2 {
        format: String,
        version: u64,
        admin_key_hex: String,
        admin_tries: u8,
        personal: Option<PersonalV1>,
        oath: OathV2,
    }

    #[derive(Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct OathV2 {
        salt_hex: Option<String>,
        access: Option<AccessV2>,
        credentials: Vec<CredentialV2>,
    }

    #[derive(Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct AccessV2 {
        alg: String,
        key_hex: String,
    }

    #[derive(Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct CredentialV2 {
        name_hex: String,
        kind: String,
        alg: String,
        digits: u8,
        key_hex: String,
        touch: bool,
        increasing: bool,
        counter: u32,
        last_challenge_hex: Option<String>,
    }

    impl Drop for FileV2 {
        fn drop(&mut self) {
            use zeroize::Zeroize;
            self.admin_key_hex.zeroize();
        }
    }

    impl Drop for AccessV2 {
        fn drop(&mut self) {
            use zeroize::Zeroize;
            self.key_hex.zeroize();
        }
    }

    impl Drop for CredentialV2 {
        fn drop(&mut self) {
            use zeroize::Zeroize;
            self.key_hex.zeroize();
        }
    }

    fn alg_name(alg: HashAlg) -> String {
        match alg {
            HashAlg::Sha1 => "SHA1",
            HashAlg::Sha256 => "SHA256",
            HashAlg::Sha512 => "SHA512",
        }
        .to_owned()
    }

    fn alg_of(name: &str) -> Result<HashAlg, &'static str> {
        match name {
            "SHA1" => Ok(HashAlg::Sha1),
            "SHA256" => Ok(HashAlg::Sha256),
            "SHA512" => Ok(HashAlg::Sha512),
            _ => Err("an OATH alg is not SHA1, SHA256 or SHA512"),
        }
    }

    /// A hex string into a zeroizing buffer.
    fn hex_vec(text: &str, reason: &'static str) -> Result<Zeroizing<Vec<u8>>, &'static str> {
        let mut out = Zeroizing::new(vec![0u8; text.len() / 2]);
        hex::decode_to_slice(text, out.as_mut_slice()).map_err(|_| reason)?;
        Ok(out)
    }

    impl OathV2 {
        fn from_state(s: &OathState) -> Self {
            Self {
                salt_hex: s.salt.map(hex::encode),
                access: s
                    .access
                    .as_ref()
                    .map(|a| AccessV2 { alg: alg_name(a.alg), key_hex: hex::encode(a.key.as_slice()) }),
                credentials: s
                    .credentials
                    .iter()
                    .map(|c| CredentialV2 {
                        name_hex: hex::encode(&c.name),
                        kind: match c.kind {
                            Kind::Hotp => "HOTP",
                            Kind::Totp => "TOTP",
                        }
                        .to_owned(),
                        alg: alg_name(c.alg),
                        digits: c.digits,
                        key_hex: hex::encode(c.key.as_slice()),
                        touch: c.touch,
                        increasing: c.increasing,
                        counter: c.counter,
                        last_challenge_hex: c.last_challenge.as_ref().map(hex::encode),
                    })
                    .collect(),
            }
        }

        /// The applet's state, with the same limits the applet's commands enforce.
        fn to_state(&self) -> Result<OathState, &'static str> {
            let salt = match &self.salt_hex {
                None => None,
                Some(h) => Some(*hex_array::<{ oath::SALT_LEN }>(h, "oath salt_hex is not 16 hex digits")?),
            };
            let access = match &self.access {
                None => None,
                Some(a) => {
                    let alg = alg_of(&a.alg)?;
                    let key = hex_vec(&a.key_hex, "oath access key_hex is not hex")?;
                    if !(1..=oath::block_len(alg)).contains(&key.len()) {
                        return Err("oath access key of a bad length");
                    }
                    Some(AccessKey { alg, key })
                }
            };
            if self.credentials.len() > oath::MAX_CREDENTIALS {
                return Err("more OATH credentials than the applet holds");
            }
            let mut credentials: Vec<Credential> = Vec::with_capacity(self.credentials.len());
            for c in &self.credentials {
                let name = hex::decode(&c.name_hex).map_err(|_| "an OATH name_hex is not hex")?;
                if !(1..=oath::NAME_MAX).contains(&name.len()) || credentials.iter().any(|o| o.name == name) {
                    return Err("an OATH name is empty, longer than 64 bytes or repeated");
                }
                let kind = match c.kind.as_str() {
                    "HOTP" => Kind::Hotp,
                    "TOTP" => Kind::Totp,
                    _ => return Err("an OATH kind is not HOTP or TOTP"),
                };
                let alg = alg_of(&c.alg)?;
                if !(6..=8).contains(&c.digits) {
                    return Err("OATH digits out of range");
                }
                let key = hex_vec(&c.key_hex, "an OATH key_hex is not hex")?;
                if !(1..=oath::block_len(alg)).contains(&key.len()) {
                    return Err("an OATH key of a bad length");
                }
                let last_challenge = match &c.last_challenge_hex {
                    None => None,
                    Some(h) => {
                        let v = hex::decode(h).map_err(|_| "an OATH last_challenge_hex is not hex")?;
                        if v.len() > oath::CHALLENGE_MAX || oath::strip(&v).len() != v.len() {
                            return Err("an OATH last challenge is too long or not canonical");
                        }
                        Some(v)
                    }
                };
                credentials.push(Credential {
                    name,
                    kind,
                    alg,
                    digits: c.digits,
                    key,
                    touch: c.touch,
                    increasing: c.increasing,
                    counter: c.counter,
                    last_challenge,
                });
            }
            Ok(OathState { salt, access, credentials })
        }
    }

    #[derive(Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct PersonalV1 {
        serial: String,
        pin_hex: String,
        pin_tries: u8,
        puk_hex: String,
        puk_tries: u8,
        chain_key_hex: String,
        counter: u64,
    }

    impl Drop for FileV1 {
        fn drop(&mut self) {
            use zeroize::Zeroize;
            self.admin_key_hex.zeroize();
        }
    }

    impl Drop for PersonalV1 {
        fn drop(&mut self) {
            use zeroize::Zeroize;
            self.pin_hex.zeroize();
            self.puk_hex.zeroize();
            self.chain_key_hex.zeroize();
        }
    }

    fn hex_array<const N: usize>(text: &str, reason: &'static str) -> Result<Zeroizing<[u8; N]>, &'static str> {
        let mut out = Zeroizing::new([0u8; N]);
        hex::decode_to_slice(text, out.as_mut_slice()).map_err(|_| reason)?;
        Ok(out)
    }

    /// The fields versions 1 and 2 share, checked, with the applet state `oath`.
    fn base_state(
        admin_key_hex: &str,
        admin_tries: u8,
        personal: Option<&PersonalV1>,
        oath: OathState,
    ) -> Result<CardState, &'static str> {
        let admin_key = hex_array::<32>(admin_key_hex, "admin_key_hex is not 64 hex digits")?;
        if admin_tries > ADMIN_TRIES {
            return Err("admin_tries out of range");
        }
        let personal = match personal {
            None => None,
            Some(p) => {
                if !CardSerial::is_valid(&p.serial) {
                    return Err("serial is not 1-16 of [A-Z0-9-]");
                }
                let pin = hex_array::<8>(&p.pin_hex, "pin_hex is not 16 hex digits")?;
                let pin = PinBlock::from_block(pin.as_slice()).map_err(|_| "pin_hex is not a PIN block")?;
                let puk = hex_array::<8>(&p.puk_hex, "puk_hex is not 16 hex digits")?;
                let puk = PukBlock::from_block(puk.as_slice()).map_err(|_| "puk_hex is not a PUK block")?;
                let ck = hex_array::<32>(&p.chain_key_hex, "chain_key_hex is not 64 hex digits")?;
                if p.pin_tries > PIN_TRIES || p.puk_tries > PUK_TRIES {
                    return Err("pin_tries or puk_tries out of range");
                }
                Some(Personal {
                    serial: p.serial.clone(),
                    pin,
                    pin_tries: p.pin_tries,
                    puk,
                    puk_tries: p.puk_tries,
                    chain_key: ChainKey::from_bytes(*ck),
                    counter: p.counter,
                })
            }
        };
        Ok(CardState { admin_key, admin_tries, personal, oath })
    }
}
