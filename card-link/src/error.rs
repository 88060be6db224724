//! The one error type of the PC/SC layer.

use std::time::Duration;

/// Why talking to a card failed, typed for what a caller does about it. No variant carries
/// APDU data, so every text is safe to print and log.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// pcscd is not running or not reachable.
    #[error("cannot reach pcscd ({0}); is it running? (`sudo bash scripts/setup.sh` starts it)")]
    NoService(pcsc::Error),
    /// PC/SC works but lists no reader at all.
    #[error("no smart-card reader found")]
    NoReader,
    /// A reader was named that PC/SC does not list.
    #[error("no reader named {name:?}; readers present: {}", list(.available))]
    UnknownReader { name: String, available: Vec<String> },
    /// No (usable) card appeared within the wait: in `reader`, or in any reader.
    #[error("{}", no_card(.reader.as_deref(), *.waited))]
    NoCard { reader: Option<String>, waited: Duration },
    /// More than one reader holds a card answering SELECT for the wanted AID.
    #[error("several readers hold the card: {}", list(.readers))]
    SeveralCards { readers: Vec<String> },
    /// The card in `reader` does not answer SELECT for the wanted AID.
    #[error("the card in {reader:?} does not hold the application")]
    NoApplet { reader: String },
    /// Another program held the card in `reader` (exclusively, or shared when we want it
    /// exclusively) for the whole wait.
    #[error(
        "the card in {reader:?} is in use by another program (waited {waited:?}); close that program and try again"
    )]
    CardBusy { reader: String, waited: Duration },
    /// The card was removed, reset by someone else or lost power while in use.
    #[error("the card was removed or reset during the exchange; start again")]
    CardRemoved,
    /// Any other PC/SC failure.
    #[error("PC/SC error: {0}")]
    Pcsc(pcsc::Error),
}

/// Result with the link's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.join(", ")
    }
}

fn no_card(reader: Option<&str>, waited: Duration) -> String {
    match reader {
        Some(r) => format!("no card in reader {r:?} (waited {waited:?})"),
        None => format!("no card in any reader (waited {waited:?})"),
    }
}

impl From<pcsc::Error> for Error {
    /// The PC/SC codes a caller acts on get their own variant: the card's loss (removed,
    /// reset, unpowered, reader gone) is [`Error::CardRemoved`]; a stopped service is
    /// [`Error::NoService`].
    fn from(e: pcsc::Error) -> Self {
        use pcsc::Error as P;
        match e {
            P::RemovedCard | P::ResetCard | P::NoSmartcard | P::UnpoweredCard | P::ReaderUnavailable => {
                Error::CardRemoved
            }
            P::NoService | P::ServiceStopped | P::Shutdown => Error::NoService(e),
            P::NoReadersAvailable => Error::NoReader,
            other => Error::Pcsc(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcsc_codes_map_to_what_a_caller_acts_on() {
        for e in [pcsc::Error::RemovedCard, pcsc::Error::ResetCard, pcsc::Error::NoSmartcard] {
            assert!(matches!(Error::from(e), Error::CardRemoved), "{e:?}");
        }
        assert!(matches!(Error::from(pcsc::Error::NoService), Error::NoService(_)));
        assert!(matches!(Error::from(pcsc::Error::NoReadersAvailable), Error::NoReader));
        assert!(matches!(Error::from(pcsc::Error::SharingViolation), Error::Pcsc(_)));
    }

    #[test]
    fn messages_name_the_reader_and_the_list() {
        let e = Error::UnknownReader { name: "X".into(), available: vec!["A 00".into(), "B 01".into()] };
        assert_eq!(e.to_string(), "no reader named \"X\"; readers present: A 00, B 01");
        let e = Error::UnknownReader { name: "X".into(), available: vec![] };
        assert!(e.to_string().ends_with("readers present: none"));
        let e = Error::NoCard { reader: Some("R".into()), waited: Duration::from_secs(10) };
        assert_eq!(e.to_string(), "no card in reader \"R\" (waited 10s)");
    }
}
