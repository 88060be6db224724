//! Writing a bank credential to an OATH key (YubiKey, Nitrokey 3, the virtual card's YKOATH
//! application) over PC/SC: `bank-tools oath enroll`. The bank's key is made here, written to
//! the card with PUT and handed to the bank's enrollment; it is never written to a file.
//!
//! The credential (PAYSIM-OATH-1, `docs/protocol.md` section 9): name `PAYSIM Bank:<user>`,
//! type TOTP with HMAC-SHA256 (`0x22`), 8 digits, a 32-byte key, touch on request.

use card_applet::host::oath::{self, OathError};
use card_link::{Transport, TransportExt};
use paysim_otp::{OathKey, OATH_DIGITS, OATH_KEY_LEN, OATH_KEY_TYPE};

/// Why writing the credential failed.
#[derive(Debug, thiserror::Error)]
pub enum OathToolError {
    #[error(transparent)]
    Link(#[from] card_link::Error),
    #[error("the OATH application refused {command}: {source}")]
    Card {
        command: &'static str,
        #[source]
        source: OathError,
    },
    #[error("the OATH application is protected by an access code: give it on standard input with --access-code-stdin")]
    AccessCodeNeeded,
    #[error("the key already holds a credential {0:?}; delete it first (`ykman oath accounts delete`) or enroll another user")]
    NameTaken(String),
    #[error("no randomness for the key: {0}")]
    Random(String),
}

fn card(command: &'static str) -> impl Fn(OathError) -> OathToolError {
    move |source| OathToolError::Card { command, source }
}

/// A fresh random key for a credential.
pub fn new_key() -> Result<OathKey, OathToolError> {
    let mut k = zeroize::Zeroizing::new([0u8; OATH_KEY_LEN]);
    getrandom::getrandom(k.as_mut()).map_err(|e| OathToolError::Random(e.to_string()))?;
    Ok(OathKey::from_bytes(*k))
}

/// What to write.
pub struct Credential<'a> {
    pub user: &'a str,
    pub key: &'a OathKey,
    pub touch: bool,
}

/// In one exclusive transaction: SELECT, VALIDATE with `access_code` if the application is
/// protected, LIST (an existing credential of that name is refused, never overwritten), PUT.
/// Returns the credential's name.
pub fn put_credential(
    link: &mut (impl Transport + ?Sized),
    cred: &Credential<'_>,
    access_code: Option<&str>,
) -> Result<String, OathToolError> {
    let name = oath::credential_name(cred.user);
    link.exchange(|ex| {
        let sel = oath::parse_select(&ex.transmit(&oath::select())?).map_err(card("SELECT"))?;
        if let Some(card_challenge) = &sel.challenge {
            let code = access_code.ok_or(OathToolError::AccessCodeNeeded)?;
            let key = oath::access_key(code.as_bytes(), &sel.salt);
            let mut host = [0u8; 8];
            getrandom::getrandom(&mut host).map_err(|e| OathToolError::Random(e.to_string()))?;
            let resp = ex.transmit(&oath::validate(&key, card_challenge, &host))?;
            oath::parse_validate(&resp, &key, &host).map_err(card("VALIDATE"))?;
        }
        let listed = oath::parse_list(&ex.transmit(&oath::list())?).map_err(card("LIST"))?;
        if listed.iter().any(|l| l.name == name) {
            return Err(OathToolError::NameTaken(name.clone()));
        }
        let put = oath::put(&name, OATH_KEY_TYPE, OATH_DIGITS, cred.key.expose(), cred.touch).map_err(card("PUT"))?;
        oath::parse_put(&ex.transmit(&put)?).map_err(card("PUT"))?;
        Ok(name.clone())
    })
}

/// Deletes the credential `name` again (when the bank refused the enrollment after PUT).
pub fn delete_credential(
    link: &mut (impl Transport + ?Sized),
    name: &str,
    access_code: Option<&str>,
) -> Result<(), OathToolError> {
    link.exchange(|ex| {
        let sel = oath::parse_select(&ex.transmit(&oath::select())?).map_err(card("SELECT"))?;
        if let (Some(card_challenge), Some(code)) = (&sel.challenge, access_code) {
            let key = oath::access_key(code.as_bytes(), &sel.salt);
            let mut host = [0u8; 8];
            getrandom::getrandom(&mut host).map_err(|e| OathToolError::Random(e.to_string()))?;
            let resp = ex.transmit(&oath::validate(&key, card_challenge, &host))?;
            oath::parse_validate(&resp, &key, &host).map_err(card("VALIDATE"))?;
        }
        let del = oath::delete(name).map_err(card("DELETE"))?;
        oath::parse_delete(&ex.transmit(&del)?).map_err(card("DELETE"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use card_link::MemCard;

    #[test]
    fn the_credential_is_written_once_and_answers_the_bank_challenge() {
        let mut link = MemCard::factory(&[1; 32]);
        let key = new_key().unwrap();
        let cred = Credential { user: "dave", key: &key, touch: false };
        assert_eq!(put_credential(&mut link, &cred, None).unwrap(), "PAYSIM Bank:dave");
        let e = put_credential(&mut link, &cred, None).unwrap_err();
        assert!(matches!(e, OathToolError::NameTaken(_)), "{e}");
        let q = paysim_otp::oath_login_challenge(&[5; 32], b"v");
        let code = link
            .exchange(|ex| -> card_link::Result<Vec<u8>> {
                ex.transmit(&oath::select())?;
                ex.transmit(&oath::calculate("PAYSIM Bank:dave", &q).unwrap())
            })
            .unwrap();
        assert!(paysim_otp::oath_code(key.expose(), &q).matches(oath::parse_calculate(&code).unwrap().as_str()));
        delete_credential(&mut link, "PAYSIM Bank:dave", None).unwrap();
        put_credential(&mut link, &cred, None).unwrap();
    }
}
