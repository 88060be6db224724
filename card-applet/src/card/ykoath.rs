//! The YKOATH applet's handlers: methods of [`Card`], so that they commit through the same
//! store, with the same rule, as the PAYSIM applet's (the new HOTP counter or last challenge
//! is committed before the code leaves the card; a failed commit answers `6581`).
//!
//! Instructions marked *auth* in `docs/protocol.md` answer `6982` while an access code is set
//! and this session has not passed VALIDATE.

use alloc::vec::Vec;

use iso7816::Status;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::{Applet, Card, Outcome};
use crate::oath::command::{Command, Put, SetCode};
use crate::oath::{
    self, alg_nibble, tag, AccessKey, Credential, Kind, TouchPolicy, CHALLENGE_LEN, MAX_CREDENTIALS, SALT_LEN,
};
use crate::store::Store;
use paysim_otp::{dynamic_truncation, hmac};

/// The applet's volatile state: cleared by SELECT (of either applet) and by reset.
#[derive(Default)]
pub(super) struct Session {
    /// VALIDATE succeeded since the last SELECT.
    validated: bool,
    /// The challenge the last SELECT sent (only when an access code is set); one VALIDATE
    /// consumes it, so each guess of the code costs a SELECT.
    challenge: Option<[u8; CHALLENGE_LEN]>,
}

impl Session {
    /// Whether VALIDATE succeeded since the last SELECT.
    pub(super) fn validated(&self) -> bool {
        self.validated
    }
}

/// Appends one TLV with a BER length (values here are at most 130 bytes).
fn push_tlv(out: &mut Vec<u8>, t: u8, value: &[u8]) {
    out.push(t);
    match u8::try_from(value.len()) {
        Ok(n) if n < 0x80 => out.push(n),
        Ok(n) => out.extend_from_slice(&[0x81, n]),
        Err(_) => {
            let n = u16::try_from(value.len()).unwrap_or(u16::MAX);
            out.push(0x82);
            out.extend_from_slice(&n.to_be_bytes());
        }
    }
    out.extend_from_slice(value);
}

/// The response of one credential to `message`: `75 digits‖HMAC` (full) or
/// `76 digits‖value` with the dynamic-truncation value reduced modulo `10^digits`, as a
/// YubiKey 5 answers it.
fn response(cred: &Credential, message: &[u8], truncate: bool, out: &mut Vec<u8>) -> Result<(), Status> {
    let mac = Zeroizing::new(hmac(cred.alg, &cred.key, message));
    if truncate {
        let value = dynamic_truncation(&mac).ok_or(Status::UnspecifiedCheckingError)?;
        let code = value % 10u32.pow(u32::from(cred.digits));
        let mut v = [0u8; 5];
        v[0] = cred.digits;
        v[1..].copy_from_slice(&code.to_be_bytes());
        push_tlv(out, tag::TRUNCATED, &v);
    } else {
        let mut v = Zeroizing::new(Vec::with_capacity(1 + mac.len()));
        v.push(cred.digits);
        v.extend_from_slice(&mac);
        push_tlv(out, tag::RESPONSE, &v);
    }
    Ok(())
}

impl<S: Store> Card<S> {
    /// Runs one parsed YKOATH command (the applet is selected).
    pub(super) fn dispatch_oath(&mut self, cmd: Command<'_>) -> Outcome {
        match cmd {
            Command::Put(p) => self.oath_put(p),
            Command::Delete { name } => self.oath_delete(name),
            Command::SetCode(code) => self.oath_set_code(code),
            Command::Reset => self.oath_reset(),
            Command::Rename { from, to } => self.oath_rename(from, to),
            Command::List => self.oath_list(),
            Command::Calculate { name, challenge, truncate } => self.oath_calculate(name, challenge, truncate),
            Command::Validate { response, challenge } => self.oath_validate(response, challenge),
            Command::CalculateAll { challenge, truncate } => self.oath_calculate_all(challenge, truncate),
        }
    }

    /// `6982` while an access code is set and not validated in this session.
    fn oath_authorized(&self) -> Result<(), Status> {
        if self.state.oath.access.is_some() && !self.oath.validated {
            Err(Status::SecurityStatusNotSatisfied)
        } else {
            Ok(())
        }
    }

    fn draw<const N: usize>(&mut self) -> Result<[u8; N], Status> {
        let mut buf = [0u8; N];
        if (self.random)(&mut buf) {
            Ok(buf)
        } else {
            Err(Status::UnspecifiedCheckingError)
        }
    }

    /// SELECT of the YKOATH applet: `79 version`, `71 salt`, and while an access code is set
    /// `74 challenge` (fresh, for VALIDATE) and `7B algorithm`. No data for P2 = `0C`.
    ///
    /// A card without a salt yet (factory, or a version-1 state file) draws one and commits
    /// it first: `6F00` no randomness, `6581` the salt could not be committed (the applet is
    /// then not selected).
    pub(super) fn oath_select(&mut self, fci: bool) -> Outcome {
        self.deselect();
        let salt = match self.state.oath.salt {
            Some(salt) => salt,
            None => {
                let salt = self.draw::<SALT_LEN>()?;
                self.state.oath.salt = Some(salt);
                self.commit()?;
                salt
            }
        };
        let mut out = Vec::new();
        push_tlv(&mut out, tag::VERSION, &oath::VERSION);
        push_tlv(&mut out, tag::NAME, &salt);
        if let Some(alg) = self.state.oath.access.as_ref().map(|a| a.alg) {
            let challenge = self.draw::<CHALLENGE_LEN>()?;
            self.oath.challenge = Some(challenge);
            push_tlv(&mut out, tag::CHALLENGE, &challenge);
            push_tlv(&mut out, tag::ALGORITHM, &[alg_nibble(alg)]);
        }
        self.selected = Applet::Oath;
        Ok(if fci { out } else { Vec::new() })
    }

    /// PUT (*auth*): adds the credential, or replaces the one of the same name in place.
    ///
    /// `9000`; `6982`; `6A84` already [`MAX_CREDENTIALS`]; `6581` write failed.
    fn oath_put(&mut self, p: Put<'_>) -> Outcome {
        self.oath_authorized()?;
        let cred = Credential {
            name: p.name.to_vec(),
            kind: p.kind,
            alg: p.alg,
            digits: p.digits,
            key: Zeroizing::new(p.key.to_vec()),
            touch: p.touch,
            increasing: p.increasing,
            counter: match p.kind {
                Kind::Hotp => p.counter.unwrap_or(0),
                Kind::Totp => 0,
            },
            last_challenge: None,
        };
        let creds = &mut self.state.oath.credentials;
        match creds.iter().position(|c| c.name == p.name) {
            Some(i) => creds[i] = cred,
            None if creds.len() >= MAX_CREDENTIALS => return Err(Status::NotEnoughMemory),
            None => creds.push(cred),
        }
        self.commit()?;
        Ok(Vec::new())
    }

    /// DELETE (*auth*). `9000`; `6982`; `6984` no such credential; `6581`.
    fn oath_delete(&mut self, name: &[u8]) -> Outcome {
        self.oath_authorized()?;
        let i = self.state.oath.find(name).ok_or(Status::ReferenceDataNotUsable)?;
        self.state.oath.credentials.remove(i);
        self.commit()?;
        Ok(Vec::new())
    }

    /// SET CODE (*auth*): sets the access key after checking `response = HMAC(key,
    /// challenge)`, or removes it (`73 00`). The session stays validated with the new key.
    ///
    /// `9000`; `6982`; `6984` the response does not match the key; `6581`.
    fn oath_set_code(&mut self, code: Option<SetCode<'_>>) -> Outcome {
        self.oath_authorized()?;
        match code {
            None => {
                self.state.oath.access = None;
                self.oath.challenge = None;
            }
            Some(c) => {
                let want = Zeroizing::new(hmac(c.alg, c.key, c.challenge));
                if !bool::from(want.as_slice().ct_eq(c.response)) {
                    return Err(Status::ReferenceDataNotUsable);
                }
                self.state.oath.access = Some(AccessKey { alg: c.alg, key: Zeroizing::new(c.key.to_vec()) });
                self.oath.validated = true;
            }
        }
        self.commit()?;
        Ok(Vec::new())
    }

    /// RESET: every credential and the access code are gone, and a new salt is drawn (the
    /// device id ykman shows changes). Needs no VALIDATE: it is how an owner who forgot the
    /// code starts again.
    ///
    /// `9000`; `6F00` no randomness (nothing changed); `6581`.
    fn oath_reset(&mut self) -> Outcome {
        let salt = self.draw::<SALT_LEN>()?;
        self.state.oath = oath::OathState { salt: Some(salt), access: None, credentials: Vec::new() };
        self.oath = Session::default();
        self.commit()?;
        tracing::info!("OATH applet reset");
        Ok(Vec::new())
    }

    /// RENAME (*auth*). `9000`; `6982`; `6984` no credential `from`; `6A89` a credential
    /// `to` exists already; `6581`.
    fn oath_rename(&mut self, from: &[u8], to: &[u8]) -> Outcome {
        self.oath_authorized()?;
        let i = self.state.oath.find(from).ok_or(Status::ReferenceDataNotUsable)?;
        if self.state.oath.find(to).is_some() {
            return Err(Status::FileAlreadyExists);
        }
        self.state.oath.credentials[i].name = to.to_vec();
        self.commit()?;
        Ok(Vec::new())
    }

    /// LIST (*auth*): `72 [type|alg]‖name` per credential, in the order they were added.
    /// `9000`; `6982`.
    fn oath_list(&mut self) -> Outcome {
        self.oath_authorized()?;
        let mut out = Vec::new();
        for c in &self.state.oath.credentials {
            let mut v = Vec::with_capacity(1 + c.name.len());
            v.push(c.kind.nibble() | alg_nibble(c.alg));
            v.extend_from_slice(&c.name);
            push_tlv(&mut out, tag::NAME_LIST, &v);
        }
        Ok(out)
    }

    /// Asks the touch policy; `6982` when the touch is denied (a YubiKey answers that when
    /// nobody touches it in time).
    fn touch(&self) -> Result<(), Status> {
        match self.touch {
            TouchPolicy::Allow => {
                tracing::info!("touch required: granted by the virtual card's touch policy");
                Ok(())
            }
            TouchPolicy::Deny => {
                tracing::info!("touch required: denied by the virtual card's touch policy");
                Err(Status::SecurityStatusNotSatisfied)
            }
        }
    }

    /// CALCULATE (*auth*): one code. HOTP: the card's counter is the message (any challenge
    /// is ignored) and moves on, committed before the code leaves. TOTP: the challenge (1-64
    /// bytes) is the message; for an only-increasing credential it must not be lower than
    /// the last one (equal is allowed, as in ykneo-oath's `OathObj.calculate`), and a higher
    /// one is committed before the code leaves. A touch credential asks the touch policy
    /// first.
    ///
    /// `9000` + `75`/`76`; `6982` not validated, the touch denied, or an only-increasing
    /// challenge lower than the last (ykneo-oath's status word); `6984` no such credential;
    /// `6A80` an empty TOTP challenge; `6985` an HOTP counter at its end; `6581` write failed
    /// (no code).
    fn oath_calculate(&mut self, name: &[u8], challenge: &[u8], truncate: bool) -> Outcome {
        self.oath_authorized()?;
        let i = self.state.oath.find(name).ok_or(Status::ReferenceDataNotUsable)?;
        let cred = &self.state.oath.credentials[i];
        let (kind, increasing, touch) = (cred.kind, cred.increasing, cred.touch);
        if kind == Kind::Totp && challenge.is_empty() {
            return Err(Status::IncorrectDataParameter);
        }
        let raises = kind == Kind::Totp
            && increasing
            && match &cred.last_challenge {
                Some(last) if oath::higher(last, challenge) => return Err(Status::SecurityStatusNotSatisfied),
                Some(last) => oath::higher(challenge, last),
                None => true,
            };
        if touch {
            self.touch()?;
        }
        let cred = &mut self.state.oath.credentials[i];
        let message: Vec<u8> = match kind {
            Kind::Hotp => {
                let counter = cred.counter;
                cred.counter = counter.checked_add(1).ok_or(Status::ConditionsOfUseNotSatisfied)?;
                self.commit()?;
                u64::from(counter).to_be_bytes().to_vec()
            }
            Kind::Totp if raises => {
                cred.last_challenge = Some(oath::strip(challenge).to_vec());
                self.commit()?;
                challenge.to_vec()
            }
            Kind::Totp => challenge.to_vec(),
        };
        let mut out = Vec::new();
        response(&self.state.oath.credentials[i], &message, truncate, &mut out)?;
        Ok(out)
    }

    /// VALIDATE: the host's answer to the SELECT challenge, then the card's answer to the
    /// host's challenge: `75 HMAC(key, host challenge)`. A failed VALIDATE leaves the
    /// session not validated, and every VALIDATE uses up the SELECT challenge.
    ///
    /// `9000` + `75`; `6984` no access code set; `6985` no SELECT challenge waiting; `6A80`
    /// wrong response (as a YubiKey 5 answers it).
    fn oath_validate(&mut self, response: &[u8], host_challenge: &[u8]) -> Outcome {
        self.oath.validated = false;
        let access = self.state.oath.access.as_ref().ok_or(Status::ReferenceDataNotUsable)?;
        let challenge = self.oath.challenge.take().ok_or(Status::ConditionsOfUseNotSatisfied)?;
        let want = Zeroizing::new(hmac(access.alg, &access.key, &challenge));
        if !bool::from(want.as_slice().ct_eq(response)) {
            tracing::info!("OATH VALIDATE failed");
            return Err(Status::IncorrectDataParameter);
        }
        let answer = hmac(access.alg, &access.key, host_challenge);
        self.oath.validated = true;
        let mut out = Vec::new();
        push_tlv(&mut out, tag::RESPONSE, &answer);
        Ok(out)
    }

    /// CALCULATE ALL (*auth*): `71 name` and an answer per credential, in LIST order: TOTP
    /// `76`/`75` computed over the challenge; HOTP `77 digits` and touch credentials `7C
    /// digits`, not computed (the host asks for them with CALCULATE). An only-increasing TOTP
    /// credential is computed unless the challenge is lower than its last one (a higher one
    /// is committed before the answer), and left out then.
    ///
    /// `9000`; `6982`; `6581` a last challenge could not be committed (no codes).
    fn oath_calculate_all(&mut self, challenge: &[u8], truncate: bool) -> Outcome {
        self.oath_authorized()?;
        let mut out = Vec::new();
        let mut moved = false;
        for cred in &mut self.state.oath.credentials {
            let marker = match (cred.kind, cred.touch) {
                (Kind::Hotp, _) => Some(tag::HOTP),
                (Kind::Totp, true) => Some(tag::TOUCH),
                (Kind::Totp, false) => None,
            };
            if marker.is_none() && cred.increasing {
                match cred.last_challenge.as_deref() {
                    Some(last) if oath::higher(last, challenge) => continue,
                    Some(last) if !oath::higher(challenge, last) => {}
                    _ => {
                        cred.last_challenge = Some(oath::strip(challenge).to_vec());
                        moved = true;
                    }
                }
            }
            push_tlv(&mut out, tag::NAME, &cred.name);
            match marker {
                Some(t) => push_tlv(&mut out, t, &[cred.digits]),
                None => response(cred, challenge, truncate, &mut out)?,
            }
        }
        if moved {
            self.commit()?;
        }
        Ok(out)
    }
}
